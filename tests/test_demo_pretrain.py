"""The demo's base model: shipped with the package, checked against its manifest, and pretrained by
``python -m lavis_vislinginstruct.demo pretrain`` (here ``--fast``)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_training import one_thread_and_clean_paths

from lavis_vislinginstruct import demo, demo_pretrain
from lavis_vislinginstruct.demo_probes import AIO_FAMILIES, TYPES
from lavis_vislinginstruct.models.loading import load_with_options


def loads_strictly(weights: str) -> None:
    """Every parameter of the demo model comes from ``weights`` (nothing missing, nothing unexpected, same shapes;
    buffers are constants of the architecture)."""
    state = torch.load(weights, map_location="cpu", weights_only=True)["model"]
    model, _, _ = load_with_options(demo_pretrain.ARCH, demo_pretrain.MODEL_TYPE, [f"checkpoint={weights}"])
    full = dict(model.named_parameters())
    assert set(state) == set(full)
    assert all(state[k].shape == full[k].shape for k in state)
    assert model.unloaded_parameters() == []
    assert all(torch.equal(state[k], full[k]) for k in state)


def test_shipped_base_loads_strictly_and_matches_its_manifest():
    weights, read = demo_pretrain.shipped_base()
    manifest = json.loads((Path(demo_pretrain.release_dir()) / demo_pretrain.MANIFEST).read_text())
    assert read == manifest
    assert demo_pretrain.sha256(weights) == manifest["sha256"]
    assert manifest["bytes"] <= 20_000_000  # the budget for weights in the repository
    for key in ("command", "seed", "threads", "torch", "commit", "probes", "stages"):
        assert manifest[key] is not None, key
    assert set(manifest["probes"]) == {"train", "eval"} and set(manifest["probes"]["eval"]) == set(TYPES)
    loads_strictly(weights)


def test_damaged_base_weights_or_manifest_are_refused(tmp_path):
    folder = tmp_path / "demo_base"
    shutil.copytree(demo_pretrain.release_dir(), folder)
    weights = folder / demo_pretrain.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256 .* is not the manifest's"):
        demo_pretrain.shipped_base(str(folder))
    manifest = folder / demo_pretrain.MANIFEST
    manifest.write_text('{"weights": "instructblip.pth"')
    with pytest.raises(ValueError, match="manifest.json is not valid JSON"):
        demo_pretrain.shipped_base(str(folder))
    manifest.write_text('{"weights": "instructblip.pth"}')
    with pytest.raises(ValueError, match="manifest.json has no sha256"):
        demo_pretrain.shipped_base(str(folder))
    manifest.unlink()
    with pytest.raises(FileNotFoundError, match="--from-scratch"):
        demo_pretrain.shipped_base(str(folder))


def test_pretrain_fast_runs_and_writes_a_manifest_of_its_weights(tmp_path):
    with one_thread_and_clean_paths():
        try:
            manifest = demo.main(["pretrain", "--fast", "--threads", "1", "--out", str(tmp_path)])
        finally:
            torch.use_deterministic_algorithms(False)  # the command turns it on for the whole process
    release = tmp_path / "release"
    stored = json.loads((release / demo_pretrain.MANIFEST).read_text())
    assert stored == manifest
    weights = str(release / demo_pretrain.WEIGHTS)
    assert demo_pretrain.shipped_base(str(release)) == (weights, manifest)
    assert manifest["sha256"] == demo_pretrain.sha256(weights)
    assert manifest["threads"] == 1 and manifest["torch"] == torch.__version__
    assert manifest["command"].startswith("python -m lavis_vislinginstruct.demo pretrain --fast")
    size = demo_pretrain.SIZES["fast"]
    assert len(manifest["stages"]["stage_a"]["epoch_losses"]) == size.stage_a_epochs
    assert len(manifest["stages"]["stage_a2"]["epoch_losses"]) == size.stage_a2_epochs
    assert len(manifest["stages"]["second_round"]["epoch_losses"]) == size.second_epochs
    assert len(manifest["stages"]["focus_round"]["epoch_losses"]) == size.focus_epochs
    # each round's comparison pairs, scored by the model it starts from
    rounds = manifest["comparison_scores"]
    assert sum(s["pairs"] for s in rounds["stage_a2"].values()) == size.n_compare
    assert sum(s["pairs"] for s in rounds["second_round"].values()) == size.n_compare_second
    assert sum(s["pairs"] for s in rounds["focus_round"].values()) == size.n_focus_compare
    for split in ("train", "eval"):
        assert {k: v["n"] for k, v in manifest["probes"][split].items()} == {k: size.n_probe for k in TYPES}
        assert {k: v["n"] for k, v in manifest["aio_content"][split].items()} == {
            k: size.n_probe // 2 for k in AIO_FAMILIES}
    loads_strictly(weights)
