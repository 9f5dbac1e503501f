"""The demo end to end, smaller (``python -m lavis_vislinginstruct.demo --fast``): world → stage A → stage B →
the four Table 2 rows through ``evaluate.py`` → table, chart and AIO traces.

The fast run trains for about a minute on one thread: enough to learn the answer formats and to read the OCR
token that TextVQA-style questions carry (held-out TextVQA accuracy near 100 against a chance level of 16.7), not
enough to see the shapes; the full demo (``make demo``) is where the image is learned (GQA-like accuracy above
the blind answer prior).
"""

import json
import os

import pytest
import torch
from lavis.common.registry import registry

from lavis_vislinginstruct import demo
from lavis_vislinginstruct.tasks.benchmarks import VARIANTS
from lavis_vislinginstruct.world import instructions as ins
from lavis_vislinginstruct.world import scenes

MARGIN = 30.0  # points (x100 scale) above chance that the fast run must reach on some held-out set


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    """One fast demo run on one thread (tiny models on a shared 2-core machine are much faster that way)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("demo")
        summary = demo.main(["--out", str(out), "--fast"])
    finally:
        torch.set_num_threads(threads)
        for name in ("output_dir", "result_dir"):
            registry.mapping["paths"].pop(name, None)
    return out, summary


def test_fast_demo_beats_chance_on_a_held_out_set(fast_run):
    _, summary = fast_run
    best = max(
        (m["over_chance"], bench) for row in summary["margins"].values() for bench, m in row.items()
    )
    assert best[0] >= MARGIN, summary["table"]


def test_fast_demo_stage_b_loss_falls(fast_run):
    _, summary = fast_run
    losses = summary["stage_b"]["epoch_losses"]
    assert len(losses) == demo.SIZES["fast"].stage_b_epochs and losses[-1] < losses[0], losses
    assert summary["stage_a"]["epoch_losses"][-1] < summary["stage_a"]["epoch_losses"][0]


def test_fast_demo_writes_table_chart_and_traces(fast_run):
    out, summary = fast_run
    size = demo.SIZES["fast"]
    assert set(summary["table"]) == set(VARIANTS)
    assert all(set(row) == set(size.benchmarks) for row in summary["table"].values())
    text = (out / "results.md").read_text()
    assert all(VARIANTS[row][2] in text for row in VARIANTS) and "answer prior" in text and "chance" in text
    with open(out / "ablation.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert len(summary["traces"]) == 3
    assert all({"initial", "rewritten", "used"} <= set(t) for t in summary["traces"])
    assert json.loads((out / "results.json").read_text())["table"] == summary["table"]
    # stage B trained only the projection: its checkpoint holds nothing else
    ckpt = torch.load(summary["stage_b"]["checkpoint"], map_location="cpu", weights_only=True)
    assert set(ckpt["model"]) == {"llm_proj.weight", "llm_proj.bias"}


def test_initialization_scales_only_the_qformer_cross_attention(tmp_path):
    path = demo.write_initialization(str(tmp_path / "init.pth"), seed=0)
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    cross = [k for k in state if ".crossattention." in k and k.endswith(".weight") and "LayerNorm" not in k]
    assert len(cross) == 4  # query, key, value, output.dense of the one cross-attention layer (every 2nd of 2)
    for key in cross:
        weight = state[key]
        assert weight.std().item() == pytest.approx(weight.shape[1] ** -0.5, rel=0.2), key
    assert state["Qformer.bert.encoder.layer.0.attention.self.value.weight"].std().item() < 0.03  # BERT's 0.02


def test_visual_mix_is_mostly_short_benchmark_questions(tmp_path):
    import random

    rng = random.Random(0)
    kinds = [ins.build_training_record(scenes.sample_scene(rng, "train"), rng, "visual").kind for _ in range(400)]
    assert kinds.count("chat") == 0 and 0 < kinds.count("rewrite") < 40
    with pytest.raises(ValueError, match="unknown training mix"):
        ins.build_training_record(scenes.sample_scene(rng, "train"), rng, "nope")
    assert os.path.isfile(demo.project_file("stage_a.yaml"))
