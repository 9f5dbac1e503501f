"""AIO on HF image-text-to-text models (``models/hf_vlm.py``, ``inference/hf_pipeline.py``) and the lmms-eval model
``vislinginstruct_hf``, on tiny random LLaVA-1.5, LLaVA-NeXT and Qwen2-VL models saved to folders (offline).

For each family: with AIO off the answers are the model's own ``generate`` on the chat-templated prompt; the IAS is
the mean NLL computed directly with the model's forward; full AIO runs, and batch 1 and batch 4 agree (answers and
traces); multiple-choice scores equal a direct forward per choice. Through lmms-eval's evaluator, the answers equal
lmms-eval's own ``llava_hf`` (LLaVA-1.5, LLaVA-NeXT) and ``qwen2_vl`` (Qwen2-VL) on the same local task, and
``loglikelihood`` equals the direct forward. The optimize CLI and the chat take ``--hf FOLDER``.
"""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

pytest.importorskip("lmms_eval", reason="the lmms extra is not installed: pip install -e '.[lmms]'")

from hf_vlm_fixtures import build  # noqa: E402
from lmms_eval import evaluator  # noqa: E402
from lmms_eval.tasks import TaskManager  # noqa: E402
from test_lmms_eval import CHOICE_TASK, GEN_TASK, write_task  # noqa: E402
from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402

from lavis_vislinginstruct.aio import AIOCfg  # noqa: E402
from lavis_vislinginstruct.inference.hf_pipeline import VisionLanguagePipeline  # noqa: E402
from lavis_vislinginstruct.integrations.lmms_common import cut  # noqa: E402
from lavis_vislinginstruct.aio.config import aio_settings  # noqa: E402
from lavis_vislinginstruct.integrations.lmms_eval_hf import VisLingInstructHFLmms  # noqa: E402
from lavis_vislinginstruct.models.generation import Decoding  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ["llava", "qwen2_vl", "llava_next"]
QUESTIONS = ["What is in the picture?", "Describe the image.", "What color is the cube?", "Is there a ball?"]
GREEDY = Decoding(max_new_tokens=8, min_new_tokens=0, num_beams=1)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_vlm")
    return {family: build(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def loaded(folders):
    return {f: (AutoModelForImageTextToText.from_pretrained(d).eval(), AutoProcessor.from_pretrained(d))
            for f, d in folders.items()}


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path / "hf_datasets"))


def images(n: int = 4, seed: int = 0):
    """56 x 56 images of 8 x 8 grey blocks whose levels are 128 + 5k: JPEG (lmms-eval's qwen2_vl re-encodes every
    image at quality 85) keeps them exactly, so every adapter sees the same pixels; no two images are alike."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        levels = (128 + 5 * torch.randint(-20, 21, (7, 7), generator=g)).to(torch.uint8)
        grey = levels.repeat_interleave(8, 0).repeat_interleave(8, 1)
        out.append(Image.fromarray(grey[..., None].expand(-1, -1, 3).contiguous().numpy()))
    return out


def model_inputs(processor, model, image, text):
    """The processor's inputs of one chat-templated (image, text), as a user of the model builds them."""
    content = [{"type": "image"}, {"type": "text", "text": text}]
    prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    return processor(text=[prompt], images=[image], return_tensors="pt")


def direct_nll(model, processor, image, prompt, target_ids):
    """(per-token NLLs, greedy) of ``target_ids`` right after (image, prompt), one plain forward, no batching."""
    inputs = model_inputs(processor, model, image, prompt)
    n = inputs["input_ids"].size(1)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([target_ids])], 1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    with torch.no_grad():
        logits = model(**inputs).logits[0, n - 1:-1].float()
    targets = torch.tensor(target_ids)
    nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    return nll, bool((logits.argmax(-1) == targets).all())


# ------------------------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("family", FAMILIES)
def test_aio_off_answers_are_the_models_own_generate(loaded, family):
    model, processor = loaded[family]
    pics = images()
    pipeline = VisionLanguagePipeline(model, processor, mode="off", decoding=GREEDY)
    answers, traces = pipeline.generate(pics, QUESTIONS, return_traces=True)
    expected = []
    for image, question in zip(pics, QUESTIONS):
        inputs = model_inputs(processor, model, image, question)
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False, num_beams=1)
        expected.append(processor.batch_decode(out[:, inputs["input_ids"].size(1):], skip_special_tokens=True)[0])
    assert answers == expected
    assert all(a.strip() for a in answers)  # random weights still write something
    assert [t.used for t in traces] == QUESTIONS and all(t.mode == "off" for t in traces)


@pytest.mark.parametrize("family", FAMILIES)
def test_ias_is_the_mean_nll_of_instruction_and_eos(loaded, family):
    model, processor = loaded[family]
    pics = images(2)
    pipeline = VisionLanguagePipeline(model, processor, mode="full")
    scores = pipeline.alignment_scores(pics, QUESTIONS[:2])
    cfg, tok = AIOCfg(), processor.tokenizer
    for image, question, score in zip(pics, QUESTIONS, scores):
        target = tok(question, add_special_tokens=False).input_ids + [tok.eos_token_id]
        nll, _ = direct_nll(model, processor, image, cfg.ias_prompt, target)
        assert score == pytest.approx(nll.mean().item(), abs=1e-4)
    assert scores[0] != pytest.approx(scores[1])


def full_aio_batch_equals_single(model, processor, pics):
    """AIO full on a batch of 4 and on each sample alone: equal answers and traces; returns the batch's."""
    aio = AIOCfg(max_new_tokens=6)
    batched, traces = VisionLanguagePipeline(model, processor, "full", GREEDY, aio).generate(
        pics, QUESTIONS, return_traces=True)
    single = VisionLanguagePipeline(model, processor, "full", GREEDY, aio)
    one_by_one = [single.generate([p], [q], return_traces=True) for p, q in zip(pics, QUESTIONS)]
    assert batched == [a[0] for a, _ in one_by_one]
    for trace, (_, (alone,)) in zip(traces, one_by_one):
        assert trace.mode == "full" and trace.rewritten and trace.optimized is not None and trace.used
        assert (trace.rewritten, trace.optimized, trace.used) == (alone.rewritten, alone.optimized, alone.used)
        assert trace.ias_initial == pytest.approx(alone.ias_initial, abs=1e-4)
        assert trace.ias_rewritten == pytest.approx(alone.ias_rewritten, abs=1e-4)
    return batched, traces


@pytest.mark.parametrize("family", FAMILIES)
def test_full_aio_runs_and_batch_1_equals_batch_4(loaded, family):
    model, processor = loaded[family]
    pics = images()
    batched, traces = full_aio_batch_equals_single(model, processor, pics)
    # the answers read trace.used: the same pipeline with AIO off answers the initial instructions differently
    assert VisionLanguagePipeline(model, processor, "off", GREEDY).answer(
        VisionLanguagePipeline(model, processor, "off").prepare(pics, [t.used for t in traces])) == batched


@pytest.mark.parametrize("family", FAMILIES)
def test_choice_scores_equal_a_direct_forward_per_choice(loaded, family):
    model, processor = loaded[family]
    pics = images(2, seed=1)
    candidates = [["yes", "no", "a red ball"], ["cat", "two dogs"]]
    calls = []
    hook = model.register_forward_pre_hook(lambda _, args, kw: calls.append(
        (kw["input_ids"].shape, kw.get("pixel_values") is not None)), with_kwargs=True)
    try:
        out = VisionLanguagePipeline(model, processor, mode="off").predict_class(pics, QUESTIONS[:2], candidates)
    finally:
        hook.remove()
    # one prefill with the image per document, then all its choices in one pass over the cache
    assert [with_image for _, with_image in calls] == [True, False, True, False]
    assert [shape[0] for shape, _ in calls] == [1, 3, 1, 2]
    tok = processor.tokenizer
    for image, question, cands, scores, greedy in zip(pics, QUESTIONS, candidates, out["scores"], out["greedy"]):
        for cand, score, hit in zip(cands, scores, greedy):
            nll, is_greedy = direct_nll(model, processor, image, question,
                                        tok(cand, add_special_tokens=False).input_ids)
            assert score == pytest.approx(nll.sum().item(), abs=1e-3)
            assert hit == is_greedy
    assert out["predictions"] == [min(range(len(s)), key=s.__getitem__) for s in out["scores"]]


# ------------------------------------------------------------------------------------------------ lmms-eval


def run_lmms(folder: Path, task: str, model: str, model_args: str, batch_size: int = 1, force_simple=False):
    """lmms-eval's ``simple_evaluate`` on a local task folder; returns (results, logged samples by doc_id)
    (``force_simple``: lmms-eval's plain adapter of a model that also has a chat one, e.g. ``llava_hf``)."""
    out = evaluator.simple_evaluate(
        model=model, model_args=model_args, tasks=[task], batch_size=batch_size, device="cpu", log_samples=True,
        bootstrap_iters=0, task_manager=TaskManager("WARNING", include_path=str(folder)), force_simple=force_simple,
    )
    return out["results"][task], {s["doc_id"]: s for s in out["samples"][task]}


def write_docs(tmp_path: Path, candidates=None) -> list:
    docs = []
    for i, (image, question) in enumerate(zip(images(3, seed=2), QUESTIONS)):
        path = tmp_path / f"img{i}.png"
        image.save(path)
        docs.append({"image": str(path), "text_input": question, "answer": "x",
                     **({"candidates": candidates[i], "correct_choice_idx": 0} if candidates else {})})
    (tmp_path / "docs.json").write_text(json.dumps(docs))
    return docs


def test_images_survive_lmms_eval_qwen2_vl_jpeg():
    import base64

    from lmms_eval.models.model_utils.media_encoder import encode_image_to_data_url

    for image in images():
        url = encode_image_to_data_url(image, image_format="JPEG", mime_type="image/jpeg", convert_rgb=True,
                                       quality=85)
        back = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        assert list(back.getdata()) == list(image.getdata())


@pytest.mark.parametrize("family, theirs, their_args", [
    ("llava", "llava_hf", ",device_map=cpu"),
    ("llava_next", "llava_hf", ",device_map=cpu"),
    ("qwen2_vl", "qwen2_vl", ",device_map=cpu"),
])
def test_same_answers_as_lmms_eval_own_adapter(tmp_path, folders, family, theirs, their_args):
    docs = write_docs(tmp_path)
    write_task(tmp_path / "tasks", GEN_TASK, "vli_hf_gen", tmp_path / "docs.json", max_new_tokens=8)
    folder = folders[family]
    _, reference = run_lmms(tmp_path / "tasks", "vli_hf_gen", theirs, f"pretrained={folder}{their_args}",
                            force_simple=True)
    _, ours = run_lmms(tmp_path / "tasks", "vli_hf_gen", "vislinginstruct_hf", f"pretrained={folder},aio=off",
                       batch_size=2)
    for doc_id in range(len(docs)):
        answer = ours[doc_id]["filtered_resps"][0]
        assert answer  # random weights still write something
        # lmms-eval's llava_hf does not cut at the task's `until`; the adapters agree up to it
        assert answer == cut(reference[doc_id]["filtered_resps"][0], ["\n\n"])


def test_loglikelihood_through_lmms_eval_equals_a_direct_forward(tmp_path, folders, loaded):
    candidates = [["red", "blue", "a green ball"], ["yes", "no"], ["cat", "dog", "bird"]]
    docs = write_docs(tmp_path, candidates)
    write_task(tmp_path / "tasks", CHOICE_TASK, "vli_hf_choice", tmp_path / "docs.json")
    _, samples = run_lmms(tmp_path / "tasks", "vli_hf_choice", "vislinginstruct_hf",
                          f"pretrained={folders['qwen2_vl']},aio=off", batch_size=2)
    model, processor = loaded["qwen2_vl"]
    for doc_id, doc in enumerate(docs):
        losses = [resp[0] for resp in samples[doc_id]["filtered_resps"]]
        image = Image.open(doc["image"]).convert("RGB")
        direct = [direct_nll(model, processor, image, doc["text_input"],
                             processor.tokenizer(c, add_special_tokens=False).input_ids)[0].sum().item()
                  for c in doc["candidates"]]
        assert losses == pytest.approx(direct, abs=1e-3)


def test_command_line_with_aio_writes_traces_beside_logged_samples(tmp_path, folders):
    docs = write_docs(tmp_path)
    write_task(tmp_path / "tasks", GEN_TASK, "vli_hf_gen", tmp_path / "docs.json", max_new_tokens=4)
    env = {**os.environ, "LMMS_EVAL_DATASETS_CACHE": str(tmp_path / "hf_datasets"),
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           # this checkout's entry-point module and package, whichever checkout the environment was installed from
           "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "vislinginstruct_hf", "--model_args",
           f"pretrained={folders['llava']},aio=full,options=aio.max_new_tokens=6;aio.guard=none",
           "--tasks", "vli_hf_gen", "--include_path", str(tmp_path / "tasks"), "--batch_size", "2",
           "--device", "cpu", "--output_path", str(tmp_path / "out"), "--log_samples"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0 and "Error during evaluation" not in log, log
    (samples_file,) = (tmp_path / "out").rglob("*_samples_vli_hf_gen.jsonl")
    (traces_file,) = (tmp_path / "out").rglob("*_aio_traces_vli_hf_gen.jsonl")
    assert traces_file.parent == samples_file.parent
    traces = {t["doc_id"]: t for t in map(json.loads, traces_file.read_text().splitlines())}
    assert sorted(traces) == list(range(len(docs)))
    for doc_id, record in traces.items():
        trace = record["trace"]
        assert record["variant"] == "LlavaForConditionalGeneration_aio-full" and trace["guard"] == "none"
        assert trace["initial"] == docs[doc_id]["text_input"] and trace["ias_initial"] is not None and trace["used"]


@pytest.mark.parametrize("args, message", [
    ({"aio": "fancy"}, "aio must be one of"),
    ({"options": "aio.guard=maybe"}, "aio.guard must be one of"),
    ({"options": "aio.max_new_tokens=many"}, "aio.max_new_tokens='many' is not a int"),
    ({"options": "llm.x=1"}, "is not aio.<field>=value"),
    ({"pretrained": "/nonexistent/folder"}, "pretrained=/nonexistent/folder"),
])
def test_bad_arguments_name_the_problem(folders, args, message):
    with pytest.raises(ValueError, match=message):
        VisLingInstructHFLmms(**{"pretrained": str(folders["llava"]), "device": "cpu", **args})


def test_aio_settings():
    assert aio_settings("aio.guard=none; aio.max_new_tokens=7;aio.memoize_rewrites=false") == AIOCfg(
        guard="none", max_new_tokens=7, memoize_rewrites=False)


# --------------------------------------------------------------------------------------------- the CLI


def test_optimize_cli_takes_an_hf_folder(tmp_path, folders, loaded, capsys):
    from lavis_vislinginstruct import optimize

    path = tmp_path / "img.png"
    images(1)[0].save(path)
    question = QUESTIONS[0]
    trace = optimize.main(["--hf", str(folders["qwen2_vl"]), "--image", str(path), "--instruction", question,
                           "--keep", question, "--answer", "--json", "--device", "cpu",
                           "--options", "aio.max_new_tokens=6", "aio.guard=content"])
    assert json.loads(capsys.readouterr().out) == trace
    assert trace["mode"] == "full" and trace["rewritten"] and isinstance(trace["ias_initial"], float)
    assert question in trace["used"]  # the content guard keeps the question
    model, processor = loaded["qwen2_vl"]
    expected = VisionLanguagePipeline(model, processor, "full", aio=AIOCfg(max_new_tokens=6)).generate(
        [Image.open(path).convert("RGB")], [question], keep_spans=[[question]])
    assert trace["answer"] == expected[0]
    with pytest.raises(SystemExit, match="--hf replaces --model"):
        optimize.main(["--hf", str(folders["llava"]), "--model", "vislinginstruct_vicuna", "--image", str(path),
                       "--instruction", "hi", "--device", "cpu"])
    with pytest.raises(SystemExit, match="aio.bogus=1"):
        optimize.main(["--hf", str(folders["llava"]), "--image", str(path), "--instruction", "hi", "--device", "cpu",
                       "--options", "aio.bogus=1"])


def test_blip2_is_refused_by_name():
    from types import SimpleNamespace

    from lavis_vislinginstruct.models.hf_vlm import HFVisionLanguageBackend

    with pytest.raises(ValueError, match="blip-2: not supported, its Q-Former does not read the instruction"):
        HFVisionLanguageBackend(SimpleNamespace(config=SimpleNamespace(model_type="blip-2")),
                                SimpleNamespace(tokenizer=None))


def test_chat_takes_an_hf_folder(tmp_path, folders, loaded):
    from lavis_vislinginstruct.chat.__main__ import main
    from lavis_vislinginstruct.processors.templates import normalize_text

    path = tmp_path / "img.png"
    images(1)[0].save(path)
    out = io.StringIO()
    lines = io.StringIO("What is in the picture?\n/aio full\nDescribe the image.\n/save "
                        f"{tmp_path / 'chat.json'}\n/quit\n")
    assert main(["--hf", str(folders["llava"]), "--image", str(path), "--device", "cpu", "--max-new-tokens", "6"],
                stdin=lines, stdout=out) == 0
    saved = json.loads((tmp_path / "chat.json").read_text())
    first, second = saved["turns"]
    assert (first["aio"], second["aio"]) == ("off", "full") and second["trace"]["rewritten"]
    model, processor = loaded["llava"]
    image = Image.open(path).convert("RGB")
    # turn 1: the model's own generate on (image, question); turn 2: the conversation in its chat template
    pipeline = VisionLanguagePipeline(model, processor, "off", Decoding(max_new_tokens=6, num_beams=1))
    assert first["answer"] == pipeline.generate([image], [first["question"]])[0]
    history = [(first["question"], normalize_text(first["answer"]))]  # the engine's history: whitespace normalized
    conversation = pipeline.backend.chat_prompt(second["trace"]["used"], True, history)
    assert second["prompt"] == conversation
    assert conversation.count("<image>") == 1 and conversation.index("<image>") < conversation.index(
        first["question"])
    expected = pipeline.backend.answer([image], [conversation], Decoding(max_new_tokens=6, num_beams=1),
                                       templated=True)
    assert second["answer"] == expected[0]
    assert "ASSISTANT: " in out.getvalue()
