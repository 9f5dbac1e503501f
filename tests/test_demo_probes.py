"""The demo's probes: AIO's content probe counts what :func:`content_kept` reads, per family."""
from types import SimpleNamespace

import torch

from lavis_vislinginstruct import demo_probes as probes
from lavis_vislinginstruct.world.content import read_content
from lavis_vislinginstruct.world.scenes import scene_split


class ScriptedPipeline:
    """Stands in for a full-AIO pipeline: its rewrite keeps the instruction, its used instruction is the one the
    script gives for each initial (the probe must read both back)."""

    def __init__(self, used):
        self.used = used
        self.seen = []

    def optimize(self, samples):
        assert samples["image"].shape[1:] == (3, 32, 32)
        self.seen += samples["text_input"]
        return [SimpleNamespace(initial=t, rewritten=t, used=self.used(t)) for t in samples["text_input"]]


def test_aio_items_are_fresh_user_style_instructions_of_each_family_and_split():
    items = probes.aio_items("train", 6, seed=0)
    assert [f for f, _, _ in items] == [f for f in probes.AIO_FAMILIES for _ in range(6)]
    assert all(scene_split(scene) == "train" for _, scene, _ in items)
    assert all(read_content(text) is not None for _, _, text in items)  # the world reads each back
    assert {scene_split(s) for _, s, _ in probes.aio_items("eval", 3, seed=0)} == {"eval"}
    assert probes.aio_items("train", 6, seed=0) == items and probes.aio_items("train", 6, seed=1) != items


def test_aio_content_counts_kept_and_lost_instructions_per_family():
    items = probes.aio_items("train", 10, seed=0)
    lost = {text for k, (_, _, text) in enumerate(items) if k % 5 == 0}  # two of every ten
    pipeline = ScriptedPipeline(lambda t: "Question: what? Short answer:" if t in lost else t)
    out = probes.aio_content(pipeline, lambda image: torch.zeros(3, 32, 32), items, 32, batch_size=7)
    assert pipeline.seen == [text for _, _, text in items]
    assert set(out) == set(probes.AIO_FAMILIES)
    for family in probes.AIO_FAMILIES:
        assert out[family]["n"] == 10
        assert out[family]["rewrite_content_kept"]["estimate"] == 100.0
        assert out[family]["content_kept"]["estimate"] == 80.0
        low, high = out[family]["content_kept"]["ci"]
        assert low < 80.0 < high
