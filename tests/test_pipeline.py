"""One model, one inference path (issue "One model, one inference path"): the rows of Table 2 on one loaded model,
tokenizers nobody else's call changes, and each visual prefix computed once per call."""
import contextlib
import dataclasses

import pytest
import torch

from conftest import build_tiny
from lavis_vislinginstruct.inference.pipeline import VisLingInstructPipeline
from lavis_vislinginstruct.inference.rows import ROWS, TABLE2, get_row, row_for
from lavis_vislinginstruct.models.generation import Decoding
from lavis_vislinginstruct.models.loading import load_with_options

QUESTIONS = ["Question: what colour is the circle? Short answer:", "Question: how many shapes? Short answer:"]
GREEDY = dict(num_beams=1, max_length=4, repetition_penalty=1.0)


def loaded(arch, *options):
    return load_with_options(arch, "tiny", list(options))[0]


def test_rows_are_defined_once():
    assert list(ROWS) == ["vanilla", "ema", "ema_rewrite", "ema_aio", "ema_aio_shuffled"]
    assert TABLE2 == ("vanilla", "ema", "ema_rewrite", "ema_aio")
    vanilla, ema_aio = get_row("vanilla"), get_row("ema_aio")
    assert (vanilla.cmaa, vanilla.projection, vanilla.aio) == (False, "base", "off")
    assert (ema_aio.cmaa, ema_aio.projection, ema_aio.aio, ema_aio.order) == (True, "finetuned", "full", "ias")
    assert get_row("ema_aio_shuffled").order == "shuffled"
    assert row_for(True, "rewrite") is ROWS["ema_rewrite"] and row_for(False, "off") is ROWS["vanilla"]
    with pytest.raises(ValueError, match="unknown row 'ema_plus'; rows: vanilla, ema"):
        get_row("ema_plus")


def test_one_loaded_model_answers_every_row_as_separately_configured_models(arch, weights, images):
    base, finetuned = weights
    model = loaded(arch, f"checkpoint={base}", f"finetuned={finetuned}", "aio.max_new_tokens=5")
    samples = {"image": images[:2], "text_input": QUESTIONS}
    decoding = Decoding.from_lavis(**GREEDY)
    for name, row in ROWS.items():
        got, traces = VisLingInstructPipeline(model, name, decoding).generate(dict(samples), return_traces=True)
        # the same row as its own run: a model configured with the row's switches and only the row's projection
        options = [f"checkpoint={base}", f"cmaa.enabled={row.cmaa}", f"aio.mode={row.aio}",
                   f"aio.order={row.order}", "aio.max_new_tokens=5"]
        if row.projection == "finetuned":
            options.append(f"finetuned={finetuned}")
        separate = loaded(arch, *options)
        expected, expected_traces = separate.generate(dict(samples), return_traces=True, **GREEDY)
        assert got == expected, name
        strip = [{k: v for k, v in t.to_dict().items() if k != "timings"} for t in traces]
        assert strip == [{k: v for k, v in t.to_dict().items() if k != "timings"} for t in expected_traces], name
    # the rows differ where they should: vanilla reads InstructBLIP's projection, EMA the fine-tuned one
    embeds = model.encode_image(images[:1])
    vanilla = VisLingInstructPipeline(model, "vanilla").backend.visual_prefix(embeds, [0], QUESTIONS[:1])[0]
    ema = VisLingInstructPipeline(model, "ema").backend.visual_prefix(embeds, [0], QUESTIONS[:1])[0]
    assert vanilla.shape[1] * 2 == ema.shape[1] and not torch.allclose(vanilla, ema[:, : vanilla.shape[1]])


def _sides(model):
    toks = [model.tokenizer] + ([model.llm_tokenizer] if model.cfg.llm.family == "decoder_only"
                                else [model.t5_tokenizer, model.t5_output_tokenizer])
    return [(t.padding_side, t.truncation_side) for t in toks], toks


def test_no_public_call_changes_a_shared_tokenizer(arch, images):
    model = build_tiny(arch).eval()
    _, toks = _sides(model)
    for tok, sides in zip(toks, [("left", "right"), ("right", "right"), ("left", "left")]):
        tok.padding_side, tok.truncation_side = sides  # whatever the user set
    before, _ = _sides(model)
    samples = {"image": images[:2], "text_input": QUESTIONS, "text_output": ["red", "two"]}
    with torch.no_grad():
        model(samples)
        model.generate(dict(samples), max_length=3, num_beams=1)
        model.predict_answers(dict(samples), max_len=3, num_beams=1)
        model.predict_class(dict(samples), [["red", "blue"], ["one", "two"]])
        pipeline = VisLingInstructPipeline(model, "ema_aio", aio=dataclasses.replace(model.cfg.aio, max_new_tokens=3))
        pipeline.generate(dict(samples), Decoding(max_new_tokens=3, num_beams=1))
        pipeline.predict_class(dict(samples), [["red", "blue"], ["one", "two"]])
        pipeline.alignment_scores({"image": images[:2]}, QUESTIONS)
    assert _sides(model)[0] == before


class _Canned:
    """The adapter's generate with canned rewrites and comparison outputs; answers are real."""

    def __init__(self, model, compare):
        self.real, self.compare, self.model = model.adapter.generate, compare, model
        model.adapter.generate = self

    def __call__(self, prefix, mask, prompts, *args, **kwargs):
        if prefix is None:
            return ["Rewritten: " + p[-20:] for p in prompts]
        if prompts[0].endswith(self.model.cfg.aio.compare_cue):
            return [self.compare for _ in prompts]
        return self.real(prefix, mask, prompts, *args, **kwargs)


@pytest.mark.parametrize("select, compare, computed", [
    ("generated", "", 2),  # empty output: the best-IAS of initial and rewritten is used, its prefix is reused
    ("generated", "Describe it.", 2),  # the content guard falls back to the initial instruction
    ("best_ias", "Name the colour of the circle.", 3),  # the optimized one's IAS prefix serves the answer
])
def test_each_visual_prefix_is_computed_once_per_call(arch, images, monkeypatch, select, compare, computed):
    model = build_tiny(arch).eval()
    _Canned(model, compare)
    texts = []
    real = model.visual_prefix
    monkeypatch.setattr(model, "visual_prefix", lambda e, t, *a, **k: texts.extend(t) or real(e, t, *a, **k))
    aio = dataclasses.replace(model.cfg.aio, guard="content", select=select, max_new_tokens=4)
    samples = {"image": images[:2], "text_input": QUESTIONS, "keep_spans": [["what colour"], ["how many"]]}
    with torch.no_grad():
        _, traces = VisLingInstructPipeline(model, "ema_aio", aio=aio).generate(
            samples, Decoding(max_new_tokens=3, num_beams=1), return_traces=True)
    assert len(texts) == computed * len(QUESTIONS)  # (image, instruction) pairs, each once
    assert {t.used for t in traces} <= set(texts)  # the answer read a prefix computed for AIO


# ------------------------------------------------------------------------------- evaluate.py and run.row


def _eval(tmp_path, *options, spec=None):
    from eval_fixtures import lay_out, tiny_config

    from lavis_vislinginstruct import evaluate
    from lavis_vislinginstruct.tasks import benchmarks as bm

    if not (tmp_path / "cache").exists():
        lay_out(bm.BENCHMARKS["gqa"].builder, tmp_path / "cache")
    cfg = tiny_config("gqa", tmp_path, max_samples=2)
    argv = ["--cfg-path", str(cfg)] + (["--model-spec", str(spec)] if spec else [])
    return evaluate.main(argv + (["--options", *options] if options else []))


@pytest.mark.parametrize("arch", ["vislinginstruct_vicuna"])
def test_evaluate_runs_a_row_on_one_spec_as_a_separately_configured_run(arch, weights, tmp_path):
    from lavis_vislinginstruct.models.spec import write_model_spec

    base, finetuned = weights
    spec = write_model_spec(str(tmp_path / "model.yaml"), {"arch": arch, "model_type": "tiny", "checkpoint": base,
                                                           "finetuned": finetuned})
    by_row = _eval(tmp_path, "run.row=vanilla", spec=spec)["metrics"]["val"]
    assert by_row["model"]["row"] == "vanilla" and by_row["model"]["projection"] == "base"
    assert by_row["model"]["projection_file"] == base and len(by_row["model"]["projection_sha256"]) == 64
    # the old way: a model configured without the fine-tuned projection and with CMAA off
    separate = _eval(tmp_path, f"model.checkpoint={base}", "model.cmaa.enabled=False", "model.aio.mode=off",
                     "run.row=null", "run.job_id=separate")
    predictions = [load_predictions(by_row), load_predictions(separate["metrics"]["val"])]
    assert predictions[0] == predictions[1]
    ema = _eval(tmp_path, "run.row=ema", spec=spec)["metrics"]["val"]
    assert ema["model"]["projection_file"] == finetuned and ema["model"]["cmaa"] is True


def load_predictions(summary):
    import json

    with open(summary["files"]["predictions"]) as handle:
        return [(r["instance_id"], r["prediction"]) for r in json.load(handle)]


@pytest.mark.parametrize("arch", ["vislinginstruct_vicuna"])
def test_a_spec_names_weights_not_rows(arch, tmp_path):
    """Issue 22, row 11: a spec saying ``aio.mode: full`` on a config saying ``off`` ran the AIO row silently."""
    from lavis_vislinginstruct.models.spec import write_model_spec

    spec = write_model_spec(str(tmp_path / "model.yaml"), {"arch": arch, "model_type": "tiny",
                                                           "aio": {"mode": "full"}})
    with pytest.raises(ValueError, match=r"model spec .*model.yaml sets model.aio.mode=full, but run.row=ema runs "
                                         r"model.aio.mode=off: the row alone chooses"):
        _eval(tmp_path, "run.row=ema", spec=spec)
    with pytest.raises(ValueError, match=r"model spec .*model.yaml sets model.aio.mode=full, but .* sets off: a model "
                                         r"spec names weights, not rows; choose the row with run.row"):
        _eval(tmp_path, spec=spec)  # a config without run.row: its model switches say AIO off
    with pytest.raises(ValueError, match=r"--options sets model.cmaa.enabled=False, but run.row=ema_aio runs"):
        _eval(tmp_path, "run.row=ema_aio", "model.cmaa.enabled=False")
    out = _eval(tmp_path, "run.row=ema_aio", spec=spec)["metrics"]["val"]  # the spec agrees with the row
    assert out["variant"] == "ema_aio" and out["aio"]["samples"] == 2


def test_a_very_long_instruction_is_cut_where_training_cuts_it_and_recorded(images, caplog):
    """Issue 22, row 1: a 5,000-word instruction reached the LLM whole (6,450 tokens past a 512-token context)."""
    model = build_tiny("vislinginstruct_vicuna").eval()
    long = " ".join(["what colour is the circle"] * 1000)  # 5,000 words
    limit = model.cfg.qformer.max_txt_len
    seen = []
    real = model.llm.forward
    model.llm.forward = lambda *a, **k: seen.append((k.get("inputs_embeds") if k.get("inputs_embeds") is not None
                                                     else k["input_ids"]).shape[1]) or real(*a, **k)
    pipeline = VisLingInstructPipeline(model, "ema")
    with caplog.at_level("WARNING", logger="lavis_vislinginstruct.inference.pipeline"):
        for _ in range(2):
            _, (trace,) = pipeline.generate({"image": images[:1], "text_input": [long]},
                                            Decoding(max_new_tokens=2, num_beams=1), return_traces=True)
    tokens = len(model.llm_tokenizer(long).input_ids)
    assert trace.truncated == {"qformer": [len(model.tokenizer(long).input_ids), limit], "llm": [tokens, limit]}
    prefix = 2 * model.cfg.qformer.num_query_token
    assert seen[0] == prefix + limit  # the LLM read the visual tokens and the instruction's last max_txt_len tokens
    warned = [r.getMessage() for r in caplog.records if "the LLM reads" in r.getMessage()]
    assert len(warned) == 1 and f"first: {tokens} tokens" in warned[0]  # once per run
    # ... and what it read is the instruction's end, as training's left truncation keeps it
    kept = model.adapter._prompt_tok([long], truncation=True, max_length=limit).input_ids[0]
    assert kept[0] == model.llm_tokenizer.bos_token_id and kept[1:] == model.llm_tokenizer(long).input_ids[-limit + 1:]


def _comparable(trace):
    """A trace without its timings, IAS rounded to what batching may change (float sums in another order)."""
    out = {k: v for k, v in trace.to_dict().items() if k != "timings"}
    for key in ("ias_initial", "ias_rewritten", "ias_optimized"):
        if out[key] is not None:
            out[key] = round(out[key], 4)
    return out


def test_batch_1_and_batch_8_give_the_same_predictions_scores_and_traces(arch):
    """lmms-eval issue 236 saw ScienceQA move from 69.56 to 58.70 between batch 1 and 2; ours must not move."""
    model = build_tiny(arch).eval()
    g = torch.Generator().manual_seed(21)
    images = torch.randn(8, 3, 32, 32, generator=g)
    texts = [f"Question: is shape {i} {'very ' * i}red? Short answer:" for i in range(8)]
    candidates = [["yes", "no", "maybe"][: 2 + i % 2] for i in range(8)]
    decoding = Decoding(max_new_tokens=4, num_beams=1)
    aio = dataclasses.replace(model.cfg.aio, max_new_tokens=5)

    def run(rows, mode):
        pipeline = VisLingInstructPipeline(model, mode, aio=aio)  # a fresh rewrite cache for every run
        samples = {"image": images[rows], "text_input": [texts[i] for i in rows]}
        answers, traces = pipeline.generate(samples, decoding, return_traces=True)
        ranked = VisLingInstructPipeline(model, mode, aio=aio).predict_class(
            samples, [candidates[i] for i in rows], return_traces=True)
        return answers, [_comparable(t) for t in traces], ranked

    for mode in ("ema", "ema_aio"):
        answers, traces, ranked = run(list(range(8)), mode)
        for i in range(8):
            (answer,), (trace,), single = run([i], mode)
            assert answer == answers[i] and trace == traces[i], (mode, i)
            assert single["rankings"][0] == ranked["rankings"][i]
            assert single["scores"][0] == pytest.approx(ranked["scores"][i], abs=1e-4)
            assert _comparable(single["traces"][0]) == _comparable(ranked["traces"][i])


def test_vicuna_ranks_under_bf16_autocast_and_generates_under_fp16(images):
    """LAVIS main's Blip2VicunaInstruct._predict_class ranks under bf16 (line 592); we autocast to fp16 there."""
    model = build_tiny("vislinginstruct_vicuna").eval()
    asked = []
    real = model.adapter.autocast
    model.adapter.autocast = lambda dtype=None: asked.append(dtype or model.adapter.autocast_dtype) or real(dtype)
    with torch.no_grad():
        model.predict_class({"image": images[:1], "text_input": QUESTIONS[:1]}, [["red", "blue"]])
        ranked = set(asked)
        asked.clear()
        model.generate({"image": images[:1], "text_input": QUESTIONS[:1]}, max_length=2, num_beams=1)
    assert ranked == {torch.bfloat16} and set(asked) == {torch.float16}
    assert isinstance(real(torch.bfloat16), contextlib.nullcontext)  # on CPU: no autocast, fp32
