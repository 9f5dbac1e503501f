"""HF's InstructBLIP through the generic HF path (``models/hf_vlm.py``, ``inference/hf_pipeline.py``, lmms-eval's
``vislinginstruct_hf``), on a tiny random InstructBLIP (Vicuna-style LLaMA) saved to a folder and loaded with
``AutoModelForImageTextToText`` + ``AutoProcessor`` (offline).

Every expected value comes from the HF model itself: its own ``generate`` on its processor's inputs, and its own
``forward`` with the Q-Former reading one text and the LLM another (the IAS: the candidate instruction, then
Appendix C's prompt). With AIO off the answers equal lmms-eval's own ``instructblip`` adapter on a local task. A
FlanT5-style InstructBLIP checks the encoder-decoder case (answers and IAS).
"""
import json

import pytest
import torch

pytest.importorskip("lmms_eval", reason="the lmms extra is not installed: pip install -e '.[lmms]'")

from hf_vlm_fixtures import build  # noqa: E402
from test_hf_vlm import QUESTIONS, full_aio_batch_equals_single, images, run_lmms, write_docs  # noqa: E402
from test_lmms_eval import GEN_TASK, write_task  # noqa: E402
from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402

from lavis_vislinginstruct.aio import AIOCfg  # noqa: E402
from lavis_vislinginstruct.inference.hf_pipeline import VisionLanguagePipeline  # noqa: E402
from lavis_vislinginstruct.integrations.lmms_common import cut  # noqa: E402
from lavis_vislinginstruct.models.generation import Decoding  # noqa: E402
from lavis_vislinginstruct.models.hf_backend import HFInstructBlipBackend  # noqa: E402
from lavis_vislinginstruct.models.hf_vlm import HFVisionLanguageBackend  # noqa: E402

GREEDY = Decoding(max_new_tokens=8, min_new_tokens=0, num_beams=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build("instructblip", tmp_path_factory.mktemp("hf_ib") / "instructblip")


@pytest.fixture(scope="module")
def loaded(folder):
    return AutoModelForImageTextToText.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path / "hf_datasets"))


def own_generate(model, processor, image, text, max_new_tokens=8):
    """The HF model's own greedy answer to (image, text) on its processor's inputs, decoded after the prompt (which
    HF's ``generate`` returns with the answer for a decoder-only LLM); stripped for Vicuna, as LAVIS strips it."""
    inputs = processor(images=[image], text=[text], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    if model.config.text_config.is_encoder_decoder:
        return processor.batch_decode(out, skip_special_tokens=True)[0]
    return processor.batch_decode(out[:, inputs["input_ids"].size(1):], skip_special_tokens=True)[0].strip()


def direct_nll(model, processor, image, qformer_text, prompt, target_ids):
    """(per-token NLLs, greedy) of ``target_ids`` after (image, ``prompt``) with the Q-Former reading
    ``qformer_text``: one plain forward of the HF model on its processor's inputs, no batching."""
    read = processor(images=[image], text=[qformer_text], return_tensors="pt")
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    n = inputs["input_ids"].size(1)
    ids = torch.cat([inputs["input_ids"], torch.tensor([target_ids])], 1)
    with torch.no_grad():
        logits = model(pixel_values=inputs["pixel_values"], qformer_input_ids=read["qformer_input_ids"],
                       qformer_attention_mask=read["qformer_attention_mask"], input_ids=ids,
                       attention_mask=torch.ones_like(ids)).logits[0, n - 1:-1].float()
    targets = torch.tensor(target_ids)
    nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    return nll, bool((logits.argmax(-1) == targets).all())


def test_the_generic_backend_runs_instructblip_as_its_family(loaded):
    model, processor = loaded
    assert type(model).__name__ == "InstructBlipForConditionalGeneration"
    backend = HFVisionLanguageBackend(model, processor)
    assert isinstance(backend.family, HFInstructBlipBackend)
    # no chat template: the LLM reads the instruction itself, earlier chat turns before it
    assert backend.chat_prompt("What is it?", True) == "What is it?"
    assert backend.chat_prompt("And now?", True, [("What is it?", "a cube")]) == "Q: What is it?\nA: a cube\nAnd now?"
    with pytest.raises(ValueError, match="instructblip has no chat template"):
        HFVisionLanguageBackend(model, processor, chat_template="{{ messages }}")
    # the chat's history budget is what the LLM reads of a prompt (InstructBLIP's max_txt_len), not 2048 tokens
    from lavis_vislinginstruct.chat.hf_engine import HFChatEngine

    assert backend.prompt_limit() == 128 and HFChatEngine(model, processor).history_budget == 128
    assert HFChatEngine(model, processor, history_budget=300).history_budget == 300


def test_aio_off_answers_are_the_models_own_generate(loaded):
    model, processor = loaded
    pics = images()
    answers, traces = VisionLanguagePipeline(model, processor, "off", GREEDY).generate(pics, QUESTIONS,
                                                                                      return_traces=True)
    assert answers == [own_generate(model, processor, p, q) for p, q in zip(pics, QUESTIONS)]
    assert all(answers) and len(set(answers)) > 1  # random weights still write something, not the same thing
    assert [t.used for t in traces] == QUESTIONS and all(t.mode == "off" for t in traces)


def test_ias_is_the_mean_nll_with_the_qformer_reading_the_candidate(loaded):
    model, processor = loaded
    pics = images(2)
    scores = VisionLanguagePipeline(model, processor, "full").alignment_scores(pics, QUESTIONS[:2])
    tok, prompt = processor.tokenizer, AIOCfg().ias_prompt
    for image, question, score in zip(pics, QUESTIONS, scores):
        target = tok(question, add_special_tokens=False).input_ids + [tok.eos_token_id]
        nll, _ = direct_nll(model, processor, image, question, prompt, target)
        assert score == pytest.approx(nll.mean().item(), abs=1e-4)
        # the Q-Former reads the candidate: with another text it reads, the same tokens score otherwise
        other, _ = direct_nll(model, processor, image, prompt, prompt, target)
        assert other.mean().item() != pytest.approx(score, abs=1e-4)


def test_full_aio_runs_and_batch_1_equals_batch_4(loaded):
    model, processor = loaded
    pics = images()
    batched, traces = full_aio_batch_equals_single(model, processor, pics)
    # the answers are the model's own generate on trace.used (the Q-Former and the LLM both read it)
    assert batched == [own_generate(model, processor, p, t.used) for p, t in zip(pics, traces)]


def test_choice_scores_equal_a_direct_forward_per_choice(loaded):
    model, processor = loaded
    pics = images(2, seed=1)
    candidates = [["yes", "no", "a red ball"], ["cat", "two dogs"]]
    out = VisionLanguagePipeline(model, processor, "off").predict_class(pics, QUESTIONS[:2], candidates)
    tok = processor.tokenizer
    for image, question, cands, scores, greedy in zip(pics, QUESTIONS, candidates, out["scores"], out["greedy"]):
        for cand, score, hit in zip(cands, scores, greedy):
            nll, is_greedy = direct_nll(model, processor, image, question, question,
                                        tok(cand, add_special_tokens=False).input_ids)
            assert score == pytest.approx(nll.sum().item(), abs=1e-3)
            assert hit == is_greedy
    assert out["predictions"] == [min(range(len(s)), key=s.__getitem__) for s in out["scores"]]


def test_lmms_eval_same_answers_as_its_instructblip_and_aio_traces(tmp_path, folder):
    docs = write_docs(tmp_path)
    write_task(tmp_path / "tasks", GEN_TASK, "vli_ib_gen", tmp_path / "docs.json", max_new_tokens=8)
    _, reference = run_lmms(tmp_path / "tasks", "vli_ib_gen", "instructblip", f"pretrained={folder}")
    _, ours = run_lmms(tmp_path / "tasks", "vli_ib_gen", "vislinginstruct_hf", f"pretrained={folder},aio=off",
                       batch_size=2)
    for doc_id, doc in enumerate(docs):
        answer = ours[doc_id]["filtered_resps"][0]
        assert answer  # random weights still write something
        # lmms-eval's instructblip decodes the prompt with the answer (HF's generate returns both for a decoder-only
        # LLM) and does not cut at the task's `until`
        theirs = cut(reference[doc_id]["filtered_resps"][0], ["\n\n"])
        assert theirs.startswith(doc["text_input"]) and theirs[len(doc["text_input"]):].strip() == answer
    _, full = run_lmms(tmp_path / "tasks", "vli_ib_gen", "vislinginstruct_hf",
                       f"pretrained={folder},aio=full,aio_traces={tmp_path / 'traces'},options=aio.max_new_tokens=6",
                       batch_size=2)
    (traces_file,) = (tmp_path / "traces").glob("*_aio_traces_vli_ib_gen.jsonl")
    traces = {t["doc_id"]: t for t in map(json.loads, traces_file.read_text().splitlines())}
    assert sorted(traces) == list(range(len(docs)))
    for doc_id, record in traces.items():
        assert record["variant"] == "InstructBlipForConditionalGeneration_aio-full"
        trace = record["trace"]
        assert trace["initial"] == docs[doc_id]["text_input"] and trace["rewritten"] and trace["used"]
        assert isinstance(trace["ias_initial"], float) and isinstance(trace["ias_rewritten"], float)
        assert full[doc_id]["filtered_resps"][0]


def test_chat_and_optimize_cli_take_an_instructblip_folder(tmp_path, folder, loaded):
    import io

    from PIL import Image

    from lavis_vislinginstruct import optimize
    from lavis_vislinginstruct.chat.__main__ import main
    from lavis_vislinginstruct.processors.templates import normalize_text

    path = tmp_path / "img.png"
    images(1)[0].save(path)
    model, processor = loaded
    image = Image.open(path).convert("RGB")
    trace = optimize.main(["--hf", str(folder), "--image", str(path), "--instruction", QUESTIONS[0], "--answer",
                           "--json", "--device", "cpu", "--options", "aio.max_new_tokens=6"])
    assert trace["mode"] == "full" and trace["rewritten"] and isinstance(trace["ias_initial"], float)
    assert trace["answer"] == own_generate(model, processor, image, trace["used"], max_new_tokens=30)
    lines = io.StringIO("What is in the picture?\n/aio full\nDescribe the image.\n/save "
                        f"{tmp_path / 'chat.json'}\n/quit\n")
    assert main(["--hf", str(folder), "--image", str(path), "--device", "cpu", "--max-new-tokens", "6"],
                stdin=lines, stdout=io.StringIO()) == 0
    first, second = json.loads((tmp_path / "chat.json").read_text())["turns"]
    assert first["answer"] == own_generate(model, processor, image, first["question"], max_new_tokens=6)
    # turn 2: the LLM reads the conversation, the Q-Former the (optimized) question alone
    used = second["trace"]["used"]
    assert second["prompt"] == f"Q: {first['question']}\nA: {normalize_text(first['answer'])}\n{used}"
    read = processor(images=[image], text=[used], return_tensors="pt")
    inputs = processor(images=[image], text=[second["prompt"]], return_tensors="pt")
    inputs.update(qformer_input_ids=read["qformer_input_ids"], qformer_attention_mask=read["qformer_attention_mask"])
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False, num_beams=1)
    expected = processor.batch_decode(out[:, inputs["input_ids"].size(1):], skip_special_tokens=True)[0].strip()
    assert second["answer"] == expected


def test_flant5_instructblip_answers_and_ias_are_the_models_own(tmp_path):
    folder = build("instructblip_t5", tmp_path / "instructblip_t5")
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    pics = images()
    pipeline = VisionLanguagePipeline(model, processor, "full", GREEDY, AIOCfg(max_new_tokens=6))
    assert VisionLanguagePipeline(model, processor, "off", GREEDY).generate(pics, QUESTIONS) == [
        own_generate(model, processor, p, q) for p, q in zip(pics, QUESTIONS)]
    answers, traces = pipeline.generate(pics, QUESTIONS, return_traces=True)
    assert answers == [own_generate(model, processor, p, t.used) for p, t in zip(pics, traces)]
    # IAS: the candidate + EOS (the T5 tokenizer's own) in the decoder, Appendix C's prompt in the encoder
    prompt = AIOCfg().ias_prompt
    for image, question, trace in zip(pics, QUESTIONS, traces):
        read = processor(images=[image], text=[question], return_tensors="pt")
        inputs = processor(images=[image], text=[prompt], return_tensors="pt")
        inputs.update(qformer_input_ids=read["qformer_input_ids"],
                      qformer_attention_mask=read["qformer_attention_mask"])
        labels = processor.tokenizer([question], return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(**inputs, labels=labels).logits[0].float()
        nll = torch.nn.functional.cross_entropy(logits, labels[0])
        assert trace.ias_initial == pytest.approx(nll.item(), abs=1e-4)
