"""lmms-eval integration (``pip install -e ".[lmms]"``): our adapter run by lmms-eval's own evaluator.

* The same benchmark items (our fixtures, laid out as ``evaluate.py`` reads them) as local lmms-eval tasks (task
  YAML + a ``json`` dataset): a generation task (GQA) and a multiple-choice task (ScienceQA); predictions and
  scores equal ``evaluate.py``'s with the same weights.
* Against lmms-eval's built-in ``instructblip`` adapter on a tiny random HF InstructBLIP saved to a folder: ours,
  loading its remapped weights (CMAA and AIO off), generates the same answers.
* ``is_greedy``, request grouping, the command line (entry point) and AIO traces beside ``--log_samples``.

Everything is offline: the tasks read local files (``HF_DATASETS_OFFLINE=1``, conftest) and nothing is downloaded.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

lmms_eval = pytest.importorskip("lmms_eval", reason="the lmms extra is not installed: pip install -e '.[lmms]'")

import lavis.tasks as lavis_tasks  # noqa: E402
from conftest import build_tiny  # noqa: E402
from eval_fixtures import lay_out, load, result_files, tiny_config  # noqa: E402
from lavis.common.config import Config  # noqa: E402
from lmms_eval import evaluator  # noqa: E402
from lmms_eval.api.instance import Instance, unwrap_generation_output  # noqa: E402
from lmms_eval.tasks import TaskManager  # noqa: E402
from transformers import (BertTokenizer, BlipImageProcessor, InstructBlipConfig,  # noqa: E402
                          InstructBlipForConditionalGeneration, InstructBlipProcessor, LlamaConfig, LlamaTokenizer,
                          T5Config, T5TokenizerFast)

from lavis_vislinginstruct import evaluate  # noqa: E402
from lavis_vislinginstruct.integrations import lmms_eval as adapter  # noqa: E402
from lavis_vislinginstruct.metrics.vqa_accuracy import process_digit_article, process_punctuation  # noqa: E402
from lavis_vislinginstruct.paths import package_path  # noqa: E402
from lavis_vislinginstruct.tasks import benchmarks as bm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]

TASK_UTILS = '''"""doc_to_visual and GQA scoring of the local test tasks (lmms-eval imports this file by path)."""
from PIL import Image

from lavis_vislinginstruct import metrics


def doc_to_visual(doc):
    return [Image.open(doc["image"]).convert("RGB")]


def gqa_results(doc, results):
    return {"accuracy": metrics.mean_gqa_accuracy([results[0]], [doc["answer"]])}
'''

GEN_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: text_input
doc_to_target: answer
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  num_beams: 1
  until: ["\\n\\n"]
process_results: !function utils.gqa_results
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
"""

CHOICE_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
output_type: multiple_choice
doc_to_visual: !function utils.doc_to_visual
doc_to_text: text_input
doc_to_choice: candidates
doc_to_target: correct_choice_idx
metric_list:
  - metric: acc
"""


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """lmms-eval's ``datasets`` cache in the test's folder (the JSON loader writes Arrow files there)."""
    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path / "hf_datasets"))


# ------------------------------------------------------------------------------------------------ helpers


def noisy_images(root: Path) -> None:
    """Give every fixture image different pixels, so that a mixed-up image changes the answer."""
    g = torch.Generator().manual_seed(5)
    for i, path in enumerate(sorted(p for p in root.rglob("*") if p.suffix in (".jpg", ".png"))):
        pixels = torch.randint(0, 256, (32, 32, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(path)


def prepare(benchmark: str, tmp_path: Path, llm: str, **run) -> Path:
    """Fixture data laid out for ``evaluate.py`` (with distinct images) and its tiny eval config; returns the config."""
    lay_out(bm.BENCHMARKS[benchmark].builder, tmp_path / "cache")
    noisy_images(tmp_path / "cache")
    return tiny_config(benchmark, tmp_path, llm=llm, **run)


def build_split(benchmark: str, cfg_path: Path):
    """The evaluation split, built from the config exactly as ``evaluate.main`` builds it."""
    bench = bm.BENCHMARKS[benchmark]
    cfg = Config(argparse.Namespace(cfg_path=str(cfg_path), options=[]))
    return lavis_tasks.setup_task(cfg).build_datasets(cfg)[bench.builder][bench.split]


def write_docs(dataset, path: Path, fields, text=lambda t: t) -> list:
    """The split's records as an lmms-eval ``json`` dataset: image path, formatted instruction, ground truth."""
    docs = []
    for ann in dataset.annotation:
        sample = dataset.build_sample(ann)
        docs.append({"instance_id": ann["instance_id"], "image": dataset.image_path(ann),
                     "text_input": text(sample["text_input"]), **{k: sample[k] for k in fields}})
    path.write_text(json.dumps(docs), encoding="utf-8")
    return docs


def write_task(folder: Path, template: str, name: str, docs: Path, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "utils.py").write_text(TASK_UTILS, encoding="utf-8")
    (folder / f"{name}.yaml").write_text(template.format(name=name, docs=docs, **fields), encoding="utf-8")


def run_lmms(folder: Path, task: str, model: str, model_args: str, batch_size: int = 1):
    """lmms-eval's ``simple_evaluate`` on a local task folder; returns (results, logged samples by doc_id)."""
    out = evaluator.simple_evaluate(
        model=model, model_args=model_args, tasks=[task], batch_size=batch_size, device="cpu", log_samples=True,
        bootstrap_iters=0, task_manager=TaskManager("WARNING", include_path=str(folder)),
    )
    return out["results"][task], {s["doc_id"]: s for s in out["samples"][task]}


def save_weights(arch: str, path: Path) -> Path:
    """One tiny model's weights, loaded by both evaluators (random weights depend on the RNG state otherwise)."""
    torch.save(build_tiny(arch).full_state_dict(), path)  # state_dict() holds the trainable parameters only
    return path


def tiny_args(arch: str, weights: Path, **extra) -> str:
    """``--model_args`` of the tiny model (the device comes from lmms-eval's ``--device``, as for its own models)."""
    args = {"arch": arch, "model_type": "tiny", "finetuned": str(weights), "cmaa": "true", "aio": "off", **extra}
    return ",".join(f"{k}={v}" for k, v in args.items())


# ----------------------------------------------------------------------------- equal to evaluate.py


@pytest.mark.parametrize("llm", ["vicuna7b", "flant5xl"])
def test_generation_task_equals_evaluate_py(tmp_path, llm):
    arch = bm.LLMS[llm][0]
    weights = save_weights(arch, tmp_path / "weights.pth")
    cfg_path = prepare("gqa", tmp_path, llm)
    # ground truth: the model's own answers (a direct predict_answers call) for two of the three questions, so that
    # both evaluators must reach 66.67 and not a trivial 0
    model = build_tiny(arch)
    model.load_state_dict(torch.load(weights))
    dataset = build_split("gqa", cfg_path)
    direct = model.eval().predict_answers(dataset.collater([dataset[i] for i in range(len(dataset))]), num_beams=1,
                                          max_len=4, min_len=1)
    assert len(direct) == 3 and all(direct)
    annotations = tmp_path / "cache" / "gqa" / "annotations" / "testdev_balanced_questions.json"
    questions = json.loads(annotations.read_text())
    normalized = [process_digit_article(process_punctuation(text)) for text in direct[:2]]  # GQA compares these
    assert all(normalized)
    for question, answer in zip(questions.values(), normalized + ["not an answer"]):
        question["answer"] = answer
    annotations.write_text(json.dumps(questions))
    dataset = build_split("gqa", cfg_path)

    ours = evaluate.main(["--cfg-path", str(cfg_path), "--options", f"model.finetuned={weights}"])
    records = {r["instance_id"]: r for r in load(result_files(ours["result_dir"], "val")["predictions"])}
    docs = write_docs(dataset, tmp_path / "gqa_docs.json", ["answer"])
    write_task(tmp_path / "tasks", GEN_TASK, "vli_local_gqa", tmp_path / "gqa_docs.json", max_new_tokens=4)
    # evaluate.py's decoding: predict_answers uses generate's repetition penalty 1.5 and at least one new token
    results, samples = run_lmms(tmp_path / "tasks", "vli_local_gqa", "vislinginstruct",
                                tiny_args(arch, weights, repetition_penalty=1.5, min_new_tokens=1), batch_size=2)

    assert [records[d["instance_id"]]["prediction"] for d in docs[:2]] == direct[:2]
    for doc_id, doc in enumerate(docs):
        assert samples[doc_id]["filtered_resps"][0] == records[doc["instance_id"]]["prediction"]
    assert ours["metrics"]["val"]["value"] == pytest.approx(200 / 3)
    assert results["accuracy,none"] == pytest.approx(ours["metrics"]["val"]["value"])


def test_multiple_choice_task_equals_evaluate_py(tmp_path):
    arch = "vislinginstruct_vicuna"
    weights = save_weights(arch, tmp_path / "weights.pth")
    cfg_path = prepare("scienceqa", tmp_path, "vicuna7b", score="sum")
    dataset = build_split("scienceqa", cfg_path)
    ours = evaluate.main(["--cfg-path", str(cfg_path), "--options", f"model.finetuned={weights}"])
    records = {r["instance_id"]: r for r in load(result_files(ours["result_dir"], "test")["predictions"])}
    docs = write_docs(dataset, tmp_path / "sqa_docs.json", ["candidates", "correct_choice_idx"])
    write_task(tmp_path / "tasks", CHOICE_TASK, "vli_local_scienceqa", tmp_path / "sqa_docs.json")
    results, samples = run_lmms(tmp_path / "tasks", "vli_local_scienceqa", "vislinginstruct", tiny_args(arch, weights),
                                batch_size=2)

    for doc_id, doc in enumerate(docs):
        record = records[doc["instance_id"]]
        losses = [resp[0] for resp in samples[doc_id]["filtered_resps"]]  # lmms-eval's models return a loss
        assert len(losses) == len(doc["candidates"]) > 1
        torch.testing.assert_close(torch.tensor(losses), torch.tensor(record["scores"]), rtol=1e-5, atol=1e-5)
        assert min(range(len(losses)), key=losses.__getitem__) == record["prediction"]
    assert 100 * results["acc,none"] == pytest.approx(ours["metrics"]["test"]["value"])


# -------------------------------------------------------------------------- lmms-eval's instructblip


def hf_instructblip(arch: str, folder: Path) -> None:
    """A tiny random HF InstructBLIP with our tiny geometry, and its processor built from our bundled tokenizers,
    saved to ``folder`` (the layout of ``Salesforce/instructblip-*``)."""
    from omegaconf import OmegaConf
    from lavis.common.registry import registry

    cfg = OmegaConf.load(registry.get_model_class(arch).default_config_path("tiny")).model
    v, q, llm = cfg.vision, cfg.qformer, dict(cfg.llm.config)
    llm.pop("model_type")
    tokens = Path(package_path("assets/tokenizers"))
    if cfg.llm.family == "decoder_only":  # as HF's conversion script: bos = unk = </s>, [PAD] added
        tok = LlamaTokenizer(str(tokens / "tiny_llama/tokenizer.model"), bos_token="</s>", unk_token="</s>",
                             legacy=True, truncation_side="left")
        tok.add_special_tokens({"pad_token": "[PAD]"})
    else:
        tok = T5TokenizerFast(str(tokens / "tiny_t5/spiece.model"), extra_ids=0, legacy=True, truncation_side="left")
    qtok = BertTokenizer(str(tokens / "tiny_bert/vocab.txt"), truncation_side="left")
    images = BlipImageProcessor(size={"height": v.image_size, "width": v.image_size}, image_mean=CLIP_MEAN,
                                image_std=CLIP_STD)
    processor = InstructBlipProcessor(images, tok, qtok, num_query_tokens=q.num_query_token)  # adds <image>
    image_token = tok.convert_tokens_to_ids("<image>")
    if cfg.llm.family == "decoder_only":
        text = LlamaConfig(**{**llm, "vocab_size": len(tok)}, bos_token_id=2, eos_token_id=2,
                           pad_token_id=tok.pad_token_id).to_dict()
    else:  # LAVIS runs FlanT5 with exact GELU (dense_act_fn="gelu"); HF's "gated-gelu" means tanh-GELU
        text = T5Config(**{**llm, "vocab_size": len(tok), "feed_forward_proj": "gated-gelu_python"}).to_dict()
    hf_cfg = InstructBlipConfig(
        vision_config=dict(hidden_size=v.width, intermediate_size=int(v.width * v.mlp_ratio), num_hidden_layers=v.depth,
                           num_attention_heads=v.num_heads, image_size=v.image_size, patch_size=v.patch_size),
        qformer_config=dict(vocab_size=q.vocab_size, hidden_size=q.hidden_size, num_hidden_layers=q.num_hidden_layers,
                            num_attention_heads=q.num_attention_heads, intermediate_size=q.intermediate_size,
                            max_position_embeddings=q.max_position_embeddings, encoder_hidden_size=v.width),
        text_config=text, num_query_tokens=q.num_query_token, image_token_index=image_token,
    )
    torch.manual_seed(3)
    model = InstructBlipForConditionalGeneration(hf_cfg).eval()
    with torch.no_grad():  # rows of ids LAVIS's tokenizer does not have (<image>, padding): never the argmax
        model.language_model.get_output_embeddings().weight[image_token:] = 0
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


@pytest.mark.parametrize("arch", ["vislinginstruct_vicuna", "vislinginstruct_t5"])
def test_same_answers_as_lmms_eval_instructblip(tmp_path, arch):
    hf_instructblip(arch, tmp_path / "hf")
    dataset = build_split("gqa", prepare("gqa", tmp_path, "vicuna7b" if arch.endswith("vicuna") else "flant5xl"))
    # The instruction's " \n " is written as one space: the bundled tiny LLaMA sentencepiece model normalizes text
    # (nmt_nfkc: newline -> space, spaces collapsed), which LAVIS's slow LlamaTokenizer applies and the fast one
    # that HF's processor loads does not (it keeps "\n" as the byte piece <0x0A>). The real LLaMA model does not
    # normalize, so there both keep the newline; the difference is the tiny asset's, not the adapters'.
    docs = write_docs(dataset, tmp_path / "docs.json", ["answer"], text=lambda t: " ".join(t.split()))
    processor = InstructBlipProcessor.from_pretrained(tmp_path / "hf")
    tiny = build_tiny(arch)
    for doc in docs:  # the two adapters feed the LLM and the Q-Former the same token ids
        assert processor.tokenizer(doc["text_input"]).input_ids == tiny.adapter.tokenizer(doc["text_input"]).input_ids
        assert processor.qformer_tokenizer(doc["text_input"]).input_ids == tiny.tokenizer(doc["text_input"]).input_ids
    write_task(tmp_path / "tasks", GEN_TASK, "vli_local_gen", tmp_path / "docs.json", max_new_tokens=6)

    _, theirs = run_lmms(tmp_path / "tasks", "vli_local_gen", "instructblip", f"pretrained={tmp_path / 'hf'}")
    _, ours = run_lmms(tmp_path / "tasks", "vli_local_gen", "vislinginstruct",
                       f"arch={arch},model_type=tiny,hf_checkpoint={tmp_path / 'hf'},cmaa=false,aio=off",
                       batch_size=2)
    for doc_id, doc in enumerate(docs):
        answer, reference = ours[doc_id]["filtered_resps"][0], theirs[doc_id]["filtered_resps"][0]
        assert answer  # random weights still write something: an empty pair would prove nothing
        if arch.endswith("vicuna"):
            # transformers 4.55 returns prompt + answer for decoder-only LLMs, and lmms-eval decodes all of it
            assert reference.startswith(doc["text_input"])
            reference = reference[len(doc["text_input"]):].strip()
        assert answer == reference


# ------------------------------------------------------------------------------ adapter behaviour


def reference_scores(model, samples, candidates):
    """Sum NLL and greedy flag of each candidate from one plain forward pass per (image, prompt, candidate) row:
    no KV cache, no packing (what ``llm_adapters.rank`` computes in one prefill per image)."""
    from lavis_vislinginstruct.models.losses import IGNORE_INDEX, sequence_nll

    rows = [(i, c) for i, cands in enumerate(candidates) for c in cands]
    index = torch.tensor([i for i, _ in rows])
    image_embeds = model.encode_image(samples["image"]).index_select(0, index)
    prompts = [samples["text_input"][i] for i in index.tolist()]
    prefix, prefix_mask = model.visual_prefix(image_embeds, prompts)
    embeds, mask, labels = model.adapter._lm_inputs(prefix, prefix_mask, prompts, [c for _, c in rows], add_eos=False)
    with torch.no_grad():
        logits = model.llm(inputs_embeds=embeds, attention_mask=mask).logits
    nll = sequence_nll(logits[:, :-1], labels[:, 1:], "sum")
    targets = labels[:, 1:]
    greedy = ((logits[:, :-1].argmax(-1) == targets) | (targets == IGNORE_INDEX)).all(-1)
    return nll.tolist(), greedy.tolist()


def greedy_answer(lm, image):
    """A prompt and the model's greedy 3-token answer to it that tokenizes back to the same ids (a piece without a
    word boundary would not: as a candidate it gains a leading "▁")."""
    model, tok = lm.model, lm.model.llm_tokenizer
    for prompt in ("What is in the picture?", "Describe the image.", "What color is it?", "Is there a cube?"):
        prefix, prefix_mask = model.visual_prefix(model.encode_image(lm._vis_processor(image)[None]), [prompt])
        tok.padding_side = "left"
        ids = tok([prompt], return_tensors="pt")
        with torch.no_grad():
            out = model.llm.generate(inputs_embeds=torch.cat([prefix, model.adapter.embed(ids.input_ids)], 1),
                                     attention_mask=torch.cat([prefix_mask, ids.attention_mask], 1), max_new_tokens=3,
                                     num_beams=1, do_sample=False)[0].tolist()
        out = out[: out.index(tok.eos_token_id)] if tok.eos_token_id in out else out
        text = tok.decode(out, skip_special_tokens=True)
        if out and text.strip() and tok(text).input_ids[1:] == out:
            return prompt, text
    raise AssertionError("no prompt with a round-tripping greedy answer")


def test_loglikelihood_is_greedy_and_one_prefix_per_document(tmp_path, monkeypatch):
    torch.manual_seed(0)
    lm = adapter.VisLingInstructLmms(arch="vislinginstruct_vicuna", model_type="tiny", cmaa=True, aio="off",
                                     device="cpu", batch_size=4)
    g = torch.Generator().manual_seed(2)
    docs = [{"image": Image.fromarray(torch.randint(0, 256, (32, 32, 3), generator=g, dtype=torch.uint8).numpy())}
            for _ in range(2)]
    lm.task_dict = {"t": {"test": docs}}
    prompt, greedy_text = greedy_answer(lm, docs[0]["image"])

    calls = []
    real = lm.pipeline.predict_class
    monkeypatch.setattr(lm.pipeline, "predict_class",
                        lambda s, candidates, **kw: calls.append(candidates) or real(s, candidates, **kw))
    asked = [(0, greedy_text), (1, "zebra"), (0, "zebra"), (1, greedy_text)]
    requests = [
        Instance("loglikelihood", (prompt, f" {cont}", lambda doc: [doc["image"]], doc_id, "t", "test"), idx=i,
                 metadata={"task": "t", "doc_id": doc_id, "repeats": 1})
        for i, (doc_id, cont) in enumerate(asked)
    ]
    out = [unwrap_generation_output(result)[0] for result in lm.loglikelihood(requests)]  # as lmms-eval reads it

    assert calls == [[[greedy_text, "zebra"], ["zebra", greedy_text]]]  # one call; one prefix per document
    samples = {"image": torch.stack([lm._vis_processor(d["image"]) for d in docs]), "text_input": [prompt] * 2}
    nll, greedy = reference_scores(lm.model, samples, [[greedy_text, "zebra"], ["zebra", greedy_text]])
    by_request = [0, 2, 1, 3]  # reference rows: doc 0 (greedy, zebra), doc 1 (zebra, greedy)
    assert [o[0] for o in out] == pytest.approx([nll[r] for r in by_request], abs=1e-4)
    assert [o[1] for o in out] == [greedy[r] for r in by_request]
    assert out[0][1] is True and out[2][1] is False  # the model's own greedy answer is greedy, "zebra" is not
    with pytest.raises(ValueError, match="no image"):
        lm.loglikelihood([Instance("loglikelihood", ("", "zebra"), idx=0, metadata={"task": "t", "doc_id": 0,
                                                                                    "repeats": 1})])


def test_generation_kwargs_and_stop_strings(tmp_path):
    lm = adapter.VisLingInstructLmms(arch="vislinginstruct_t5", model_type="tiny", device="cpu")
    decoding, until = lm._decoding({"max_new_tokens": 7, "temperature": 0.7, "top_p": 0.5, "num_beams": 2,
                                    "until": "###", "image_aspect_ratio": "pad"})
    assert until == ["###"]
    assert decoding.to_dict() == {"repetition_penalty": 1.0, "length_penalty": 1.0, "min_new_tokens": 0,
                                  "do_sample": True, "num_beams": 2, "max_new_tokens": 7, "top_p": 0.5,
                                  "temperature": 0.7, "num_return_sequences": 1}
    greedy, _ = lm._decoding({"temperature": 0, "top_p": None})
    assert greedy.do_sample is False and greedy.max_new_tokens == 1024 and greedy.top_p == 1.0
    assert adapter._cut(" red ball### and more\n\nmore", ["\n\n", "###"]) == "red ball"

    red, blue = Image.new("RGB", (40, 20), (255, 0, 0)), Image.new("L", (10, 10), 255)
    assert lm._one_image([red], "t", 0) is red
    tiled = lm._one_image([red, blue], "t", 0)  # one image holding both, as lmms-eval's instructblip reads them
    assert tiled.size == (60, 20) and tiled.getpixel((39, 10)) == (255, 0, 0) and tiled.getpixel((45, 10)) == (
        255, 255, 255)
    with pytest.raises(ValueError, match="t document 3 has no image"):
        lm._one_image([], "t", 3)
    with pytest.raises(ValueError, match="reads images, got str"):
        lm._one_image(["clip.mp4"], "t", 3)


@pytest.mark.parametrize("args, message", [
    ({"aio": "fancy"}, "aio must be one of"),
    ({"cmaa": "maybe"}, "cmaa must be true or false"),
    ({"dtype": "int3"}, "dtype must be one of"),
    ({"score": "max"}, "score must be sum or mean"),
    ({"batch_size": "auto"}, "batch_size must be a positive integer"),
    ({"device": "cuda"}, "no CUDA device"),
    ({"options": "llm.bogus=1"}, "llm.bogus"),
    ({"model_type": "vicuna70b"}, "vicuna70b"),
])
def test_bad_model_arguments_name_the_problem(args, message):
    if args.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    with pytest.raises((ValueError, TypeError), match=message):
        adapter.VisLingInstructLmms(**{"arch": "vislinginstruct_vicuna", "model_type": "tiny", "device": "cpu", **args})


def test_8bit_needs_the_config_field():
    import dataclasses

    from lavis_vislinginstruct.models.config import LLMCfg

    if "load_in_8bit" in {f.name for f in dataclasses.fields(LLMCfg)}:
        assert "llm.load_in_8bit=True" in adapter._model_options("", "", "", "", None, None, "auto", True, False)
    else:
        with pytest.raises(ValueError, match="llm.load_in_8bit"):
            adapter._model_options("", "", "", "", None, None, "auto", True, False)


def test_trace_folder_follows_the_command_line(tmp_path):
    argv = [str(Path(lmms_eval.__file__).parent / "__main__.py"), "--model", "vislinginstruct", "--model_args",
            "arch=vislinginstruct_vicuna,model_type=tiny", "--output_path", str(tmp_path / "out"), "--log_samples"]
    assert adapter._cli_samples_folder(argv) == str(tmp_path / "out")  # no "pretrained=": lmms-eval's name is ""
    argv[4] = "arch=vislinginstruct_vicuna,model_type=vicuna7b,options=llm.model=/ckpt/lmsys/vicuna-7b"
    assert adapter._cli_samples_folder(argv) == str(tmp_path / "out" / "lmsys__vicuna-7b")  # lmms-eval's "model="
    assert adapter._cli_samples_folder(["pytest", "--output_path", "x"]) == ""


# ------------------------------------------------------------------------------- command line + AIO


def test_entry_point_is_light_and_names_the_adapter():
    code = ("import sys, lmms_eval.models as m; assert 'vislinginstruct' in m.list_available_models(); "
            "assert 'lavis' not in sys.modules, 'registering the model imported LAVIS'; "
            "print(m.get_model('vislinginstruct').__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == adapter.__name__


def test_command_line_with_aio_writes_traces_beside_logged_samples(tmp_path):
    dataset = build_split("gqa", prepare("gqa", tmp_path, "vicuna7b"))
    docs = write_docs(dataset, tmp_path / "docs.json", ["answer"])
    write_task(tmp_path / "tasks", GEN_TASK, "vli_local_gqa", tmp_path / "docs.json", max_new_tokens=4)
    env = {**os.environ, "LMMS_EVAL_DATASETS_CACHE": str(tmp_path / "hf_datasets"), "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "vislinginstruct", "--model_args",
           "arch=vislinginstruct_vicuna,model_type=tiny,aio=full,options=aio.max_new_tokens=6",
           "--tasks", "vli_local_gqa", "--include_path", str(tmp_path / "tasks"), "--batch_size", "2",
           "--device", "cpu", "--output_path", str(tmp_path / "out"), "--log_samples"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, log
    assert "Error during evaluation" not in log, log  # lmms-eval logs a failed run and still exits with 0

    (samples_file,) = (tmp_path / "out").rglob("*_samples_vli_local_gqa.jsonl")
    (traces_file,) = (tmp_path / "out").rglob("*_aio_traces_vli_local_gqa.jsonl")
    assert traces_file.parent == samples_file.parent
    samples = {s["doc_id"]: s for s in map(json.loads, samples_file.read_text().splitlines())}
    traces = {t["doc_id"]: t for t in map(json.loads, traces_file.read_text().splitlines())}
    assert sorted(traces) == sorted(samples) == list(range(len(docs)))
    for doc_id, record in traces.items():
        trace = record["trace"]
        assert record["request"] == "generate_until" and record["variant"] == "ema_aio"
        assert trace["mode"] == "full" and trace["initial"] == docs[doc_id]["text_input"]
        assert trace["rewritten"] is not None and trace["ias_initial"] is not None and trace["used"]


def test_row_argument_picks_the_projection_and_switches(tmp_path):
    """``row=vanilla`` on a model with a fine-tuned projection answers with InstructBLIP's projection and CMAA off;
    switches that contradict the row are refused."""
    from conftest import write_base_and_finetuned

    base, finetuned = write_base_and_finetuned("vislinginstruct_vicuna", tmp_path, seed=4)
    common = dict(arch="vislinginstruct_vicuna", model_type="tiny", checkpoint=str(base), finetuned=str(finetuned),
                  device="cpu")
    lm = adapter.VisLingInstructLmms(row="vanilla", **common)
    assert (lm.row.cmaa, lm.row.projection, lm.aio_mode, lm.variant) == (False, "base", "off", "vanilla")
    embeds = lm.model.encode_image(torch.rand(1, 3, 32, 32))
    with torch.no_grad():
        prefix = lm.pipeline.backend.visual_prefix(embeds, [0], ["what is it?"])[0]
        text = lm.model.tokenizer(["what is it?"], return_tensors="pt")
        q = lm.model.query_tokens.size(1)
        queries = lm.model.Qformer.bert(
            text.input_ids, query_embeds=lm.model.query_tokens, encoder_hidden_states=embeds,
            attention_mask=torch.cat([torch.ones(1, q, dtype=torch.long), text.attention_mask], 1), return_dict=True,
        ).last_hidden_state[:, :q]  # CMAA off: the query outputs alone
        state = torch.load(base)["model"]
        expected = torch.nn.functional.linear(queries, state["llm_proj.weight"], state["llm_proj.bias"])
    torch.testing.assert_close(prefix, expected, atol=1e-5, rtol=1e-5)
    assert adapter.VisLingInstructLmms(row="ema_aio", **common).row.projection == "finetuned"
    with pytest.raises(ValueError, match="aio=off contradicts row=ema_aio"):
        adapter.VisLingInstructLmms(row="ema_aio", aio="off", **common)
