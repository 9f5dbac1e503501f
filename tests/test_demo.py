"""The demo end to end, smaller (``python -m lavis_vislinginstruct.demo --fast``): world -> the shipped base model
-> stage B -> model spec -> five rows through ``evaluate.py`` and the bare chat questions -> figures.

What the fast run must show is the plumbing *and* the method at work (issue 11's acceptance): AIO changes the
instruction of a real share of the held-out questions and keeps their content in most of them, VSR-like statements
are learned above chance, every figure carries its interval, and two runs give the same tables. Not asserted: that
AIO or EMA wins.
"""

import json
import os
import random

import pytest
import torch
from test_training import one_thread_and_clean_paths

from lavis_vislinginstruct import demo, demo_stages
from lavis_vislinginstruct.models.loading import load_with_options
from lavis_vislinginstruct.world import instructions as ins
from lavis_vislinginstruct.world import scenes

VSR_CHANCE = 50.0


def fast_demo(out, workers=0):
    """One fast demo run on one thread (tiny models on a shared 2-core machine are much faster that way)."""
    with one_thread_and_clean_paths():
        try:
            return demo.main(["--out", str(out), "--fast", "--threads", "1", "--workers", str(workers)])
        finally:
            torch.use_deterministic_algorithms(False)  # demo.main turns it on for the whole process


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, fast_demo(out)


def test_fast_demo_results_carry_every_figure(fast_run):
    out, summary = fast_run
    stored = json.loads((out / "results.json").read_text())
    size = demo.SIZES["fast"]
    for key in ("table", "differences", "aio", "premise", "traces", "baselines", "stages", "base", "chat", "seeds",
                "robust"):
        assert stored[key], key
    assert set(stored["table"]) == set(demo.ROWS)
    for row, cells in stored["table"].items():  # every cell with its interval, on all the held-out questions
        assert set(cells) == set(size.benchmarks)
        for cell in cells.values():
            assert cell["low"] <= cell["estimate"] <= cell["high"] and cell["n"] == size.n_eval
    for name in ("EMA - vanilla", "AIO - EMA", "AIO shuffled - AIO"):
        for diff in stored["differences"][name].values():
            assert diff["low"] <= diff["estimate"] <= diff["high"]
    for bench, premise in stored["premise"].items():
        if bench != "all" and premise["pairs"]:
            assert premise["rewrite_mismatches"] == 0  # the rewrite row answered the rewrite the AIO row scored
            assert premise["correct_lower_ias"]["n"] == premise["pairs"]
    text = (out / "results.md").read_text()
    for label in demo.LABELS.values():
        assert label in text
    assert "[" in text and "IAS premise" in text and "answer:" in text
    with open(out / "ablation.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_two_fast_demo_runs_give_equal_tables(fast_run, tmp_path):
    _, first = fast_run
    second = fast_demo(tmp_path / "again", workers=2)  # the evaluation in two worker processes: the same numbers
    for key in ("table", "differences", "aio", "chat", "robust"):
        assert second[key] == first[key], key
    assert second["base"]["sha256"] == first["base"]["sha256"]


def test_fast_demo_answers_bare_chat_questions_per_row(fast_run):
    _, summary = fast_run
    size = demo.SIZES["fast"]
    assert set(summary["chat"]) == set(demo.CHAT_ROWS)
    for row, cell in summary["chat"].items():
        assert cell["n"] == size.n_chat and cell["ci"][0] <= cell["accuracy"] <= cell["ci"][1]
        for example in cell["examples"]:
            assert "Question:" not in example["question"] and example["question"].strip()
    assert summary["seeds"][0]["chat"] == summary["chat"] and summary["robust"].keys() == summary["differences"].keys()


def test_fast_demo_aio_rewrites_a_real_share_and_keeps_the_content(fast_run):
    _, summary = fast_run
    figures = summary["aio"]["ema_aio"]
    samples = sum(f["samples"] for f in figures.values())
    changed = sum(f["counts"]["changed"] for f in figures.values())
    kept = sum(f["counts"]["content_kept_when_changed"] for f in figures.values())
    assert changed >= samples / 3, figures
    assert kept > changed / 2, figures


def test_fast_demo_learns_vsr_statements_above_chance(fast_run):
    _, summary = fast_run
    best = max(summary["table"].values(), key=lambda cells: cells["vsr"]["estimate"])["vsr"]
    assert best["low"] > VSR_CHANCE, summary["table"]  # above chance beyond the 95 % interval, not by noise


def test_fast_demo_model_spec_names_the_trained_model(fast_run):
    out, summary = fast_run
    spec = summary["files"]["model_spec"]
    assert spec == str(out / "model.yaml") and "weights/instructblip.pth" in (out / "model.yaml").read_text()
    model, vis, _ = load_with_options(spec=spec)
    text = (out / "model.yaml").read_text()
    assert model.cfg.aio.guard == "none" and "mode:" not in text and "enabled:" not in text  # weights, not a row
    assert model.has_base_projection  # InstructBLIP's projection kept beside the EMA one: the spec runs every row
    trained = torch.load(out / "weights" / "ema_projection.pth", map_location="cpu", weights_only=True)["model"]
    assert set(trained) == {"llm_proj.weight", "llm_proj.bias"}  # stage B trained only the projection
    assert torch.equal(model.llm_proj.weight, trained["llm_proj.weight"])


def test_fast_demo_evaluation_resumes_on_a_rerun(fast_run):
    out, summary = fast_run
    world = summary["files"]["world"]
    again = demo.evaluate_rows(world, str(out), summary["files"]["model_spec"], ["gqa"])
    for row, per_bench in again.items():
        assert per_bench["gqa"]["rank0"]["new_samples"] == 0, row  # every prediction reused
        assert round(per_bench["gqa"]["value"], 2) == summary["table"][row]["gqa"]["estimate"]


def test_initialization_scales_only_the_qformer_cross_attention(tmp_path):
    path = demo_stages.write_initialization(str(tmp_path / "init.pth"), seed=0)
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    cross = [k for k in state if ".crossattention." in k and k.endswith(".weight") and "LayerNorm" not in k]
    assert len(cross) == 16  # query, key, value, output.dense of the cross-attention of each of the 4 layers
    for key in cross:
        weight = state[key]
        assert weight.std().item() == pytest.approx(weight.shape[1] ** -0.5, rel=0.2), key
    assert state["Qformer.bert.encoder.layer.0.attention.self.value.weight"].std().item() < 0.03  # BERT's 0.02
    assert state["visual_encoder.pos_embed"].std().item() == pytest.approx(demo_stages.POS_EMBED_STD, rel=0.1)


def test_demo_mix_is_mostly_common_phrasings(tmp_path):
    """Stage A ("demo") answers questions in the common phrasings only; stage A2 ("demo_text") shows user-style
    questions mostly as rewrite inputs, and answers to user-style questions stay rare (issue 11); the focus round
    ("demo_focus") weighs spatial statements and multiple choice, and user-style wordings, most."""
    rng = random.Random(0)
    stage_a = [ins.build_training_record(scenes.sample_scene(rng, "train"), rng, "demo").kind for _ in range(1000)]
    stage_a2 = [ins.build_training_record(scenes.sample_scene(rng, "train"), rng, "demo_text").kind
                for _ in range(1000)]
    assert set(stage_a) == {"benchmark"}
    assert 0 < stage_a2.count("user_benchmark") < 100 and stage_a2.count("user_rewrite") > 300
    assert "chat" not in stage_a2
    focus = [ins.build_training_record(scenes.sample_scene(rng, "train"), rng, "demo_focus") for _ in range(1000)]
    kinds = [r.kind for r in focus]
    assert 250 < kinds.count("user_benchmark") < 450 and kinds.count("user_rewrite") > 400
    assert "rewrite" not in kinds and "chat" not in kinds
    families = [r.family for r in focus]
    assert families.count("vsr") + families.count("scienceqa") > 500 and "flickr30k" not in families
    bare = [ins.build_training_record(scenes.sample_scene(rng, "train"), rng, "demo") for _ in range(300)]
    bare = [r.turns[0][0].replace(ins.IMAGE_TOKEN, "").strip() for r in bare if r.family == "chat"]
    assert len(bare) > 20 and all("?" in q and "Question:" not in q for q in bare)  # questions as people type them
    with pytest.raises(ValueError, match="unknown training mix"):
        ins.build_training_record(scenes.sample_scene(rng, "train"), rng, "nope")
    assert os.path.isfile(demo_stages.project_file("stage_a2.yaml"))


def test_row_options_name_the_row_and_nothing_else():
    from lavis_vislinginstruct.inference.rows import ROWS

    assert demo.ROWS == ROWS  # the demo's table has the one definition of a row
    assert "run.row=ema_aio_shuffled" in demo.row_options("ema_aio_shuffled")
    for row in demo.ROWS:
        options = demo.row_options(row)
        assert "model.aio.guard=none" in options and f"run.row={row}" in options
        assert not any(o.startswith(("model.cmaa", "model.aio.mode", "model.aio.order", "model.finetuned"))
                       for o in options)  # one loaded spec serves every row
