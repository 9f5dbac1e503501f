"""Model specs: one file names a trained model; every loader reads it the same way."""
import os

import pytest
import torch
from omegaconf import OmegaConf

from lavis_vislinginstruct.models.checkpoint import trainable_state_dict
from lavis_vislinginstruct.models.loading import load_with_options
from lavis_vislinginstruct.models.spec import read_model_spec, spec_options, write_model_spec
from lavis_vislinginstruct.train import parse_args


@pytest.fixture
def spec_dir(tmp_path):
    model, _, _ = load_with_options("vislinginstruct_vicuna", "tiny")
    with torch.no_grad():
        model.llm_proj.weight.add_(1.0)  # distinguishable from a fresh random build
    os.makedirs(tmp_path / "run" / "stage_b")
    torch.save({"model": trainable_state_dict(model)}, tmp_path / "run" / "stage_b" / "ckpt.pth")
    return tmp_path / "run", model.llm_proj.weight.detach().clone()


def test_spec_round_trip_with_relative_paths(spec_dir):
    root, weight = spec_dir
    path = write_model_spec(
        str(root / "model.yaml"),
        {"arch": "vislinginstruct_vicuna", "model_type": "tiny", "finetuned": str(root / "stage_b" / "ckpt.pth")},
        comment="test spec",
    )
    text = open(path).read()
    assert text.startswith("# test spec\n") and "finetuned: stage_b/ckpt.pth" in text  # written relative
    moved = root.parent / "moved"
    os.rename(root, moved)  # the folder moves as a whole
    spec = read_model_spec(str(moved / "model.yaml"))
    assert spec.finetuned == str(moved / "stage_b" / "ckpt.pth")
    model, _, _ = load_with_options(spec=str(moved / "model.yaml"))
    assert torch.equal(model.llm_proj.weight, weight)
    assert "model.finetuned=" + str(moved / "stage_b" / "ckpt.pth") in spec_options(str(moved / "model.yaml"))


def test_spec_errors_name_the_problem(tmp_path, spec_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  arch: vislinginstruct_vicuna\n")
    with pytest.raises(ValueError, match="needs a 'model' section with 'arch' and 'model_type'"):
        read_model_spec(str(bad))
    missing = tmp_path / "missing.yaml"
    missing.write_text("model:\n  arch: vislinginstruct_vicuna\n  model_type: tiny\n  finetuned: nope.pth\n")
    with pytest.raises(ValueError, match="finetuned 'nope.pth' not found"):
        read_model_spec(str(missing))
    with pytest.raises(FileNotFoundError, match="model spec not found"):
        read_model_spec(str(tmp_path / "absent.yaml"))
    ok = tmp_path / "ok.yaml"
    ok.write_text("model:\n  arch: vislinginstruct_vicuna\n  model_type: tiny\n")
    with pytest.raises(ValueError, match="names model type 'tiny', but 'demo' was asked for"):
        load_with_options(model_type="demo", spec=str(ok))


def test_train_and_evaluate_take_the_spec_below_options(tmp_path):
    spec = tmp_path / "model.yaml"
    spec.write_text("model:\n  arch: vislinginstruct_vicuna\n  model_type: tiny\n  cmaa: {enabled: false}\n")
    cfg = "projects/vislinginstruct/train/tiny.yaml"
    args = parse_args(["--cfg-path", cfg, "--model-spec", str(spec), "--options", "model.cmaa.enabled=True"])
    assert args.options[-1] == "model.cmaa.enabled=True"
    assert "model.cmaa.enabled=False" in args.options
    t5 = tmp_path / "t5.yaml"
    t5.write_text("model:\n  arch: vislinginstruct_t5\n  model_type: tiny\n")
    if OmegaConf.load(cfg).model.arch != "vislinginstruct_t5":
        with pytest.raises(ValueError, match="is a vislinginstruct_t5 model but"):
            parse_args(["--cfg-path", cfg, "--model-spec", str(t5)])
