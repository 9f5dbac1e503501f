"""Entry points refuse a model whose weights would stay random (issue 9, section 5), unless it is random on purpose.

Before, a ``demo``/``vicuna7b`` model without its base ``checkpoint`` evaluated with random frozen parts and scored
near zero without a word. ``tiny`` stays random on purpose (every other test relies on it).
"""
from pathlib import Path

import pytest
import torch
from eval_fixtures import lay_out, tiny_config
from omegaconf import OmegaConf
from test_training import one_thread_and_clean_paths, write_llava_data

from lavis_vislinginstruct import evaluate, train
from lavis_vislinginstruct.tasks import benchmarks as bm

DEMO = Path(__file__).resolve().parents[1] / "projects" / "vislinginstruct" / "demo"


@pytest.fixture(autouse=True)
def one_thread():
    with one_thread_and_clean_paths():
        yield


def demo_eval_config(tmp_path):
    """The shipped GQA eval config on CPU with the demo model type, and its fixture data."""
    lay_out(bm.BENCHMARKS["gqa"].builder, tmp_path / "cache")
    path = tiny_config("gqa", tmp_path, max_samples=2)
    cfg = OmegaConf.load(path)
    cfg.model.model_type = "demo"
    OmegaConf.save(cfg, path)
    return path


def demo_initialization(tmp_path):
    from lavis_vislinginstruct.models.vislinginstruct import VisLingInstructVicuna

    cfg = OmegaConf.load(VisLingInstructVicuna.default_config_path("demo")).model
    path = tmp_path / "init.pth"
    torch.save({"model": VisLingInstructVicuna.from_config(cfg).full_state_dict()}, path)
    return path


def test_evaluating_a_demo_model_without_checkpoint_is_refused(tmp_path):
    cfg = demo_eval_config(tmp_path)
    with pytest.raises(ValueError, match=r"cannot evaluate: .*Qformer .*\[model.checkpoint or model.hf_checkpoint"):
        evaluate.main(["--cfg-path", str(cfg)])
    assert not (tmp_path / "out").exists()  # refused before the runner made its folders


def test_evaluating_a_demo_model_with_its_checkpoint_runs(tmp_path):
    cfg = demo_eval_config(tmp_path)
    checkpoint = f"model.checkpoint={demo_initialization(tmp_path)}"
    with pytest.raises(ValueError, match="run.row=ema turns CMAA on, but no fine-tuned projection is loaded"):
        evaluate.main(["--cfg-path", str(cfg), "--options", checkpoint])  # CMAA on InstructBLIP's projection
    out = evaluate.main(["--cfg-path", str(cfg), "--options", checkpoint, "run.row=vanilla"])
    assert out["metrics"]["val"]["num_samples"] == 2 and out["metrics"]["val"]["model"]["row"] == "vanilla"


def test_evaluating_with_random_weights_on_purpose_runs(tmp_path):
    cfg = demo_eval_config(tmp_path)
    out = evaluate.main(["--cfg-path", str(cfg), "--options", "run.allow_random_weights=True"])
    assert out["metrics"]["val"]["num_samples"] == 2


class Reached(Exception):
    """Training got past the weight check."""


def run_stage(name, tmp_path, monkeypatch, *options):
    monkeypatch.setattr(train, "build_runner", lambda *a, **k: (_ for _ in ()).throw(Reached()))
    data = write_llava_data(tmp_path / "data")
    return train.main(["--cfg-path", str(DEMO / name), "--options", f"run.cache_root={data}",
                       f"run.output_dir={tmp_path / 'out'}", *options])


def test_training_over_random_frozen_parts_is_refused(tmp_path, monkeypatch):
    """The demo's stage B freezes everything but the projection: without stage A's weights it would train on noise."""
    with pytest.raises(ValueError, match=r"cannot train: .*visual_encoder .*llm_model"):
        run_stage("stage_b.yaml", tmp_path, monkeypatch)


def test_training_everything_from_scratch_passes(tmp_path, monkeypatch):
    """The demo's stage A trains every weight, so none has to come from a file."""
    with pytest.raises(Reached):
        run_stage("stage_a.yaml", tmp_path, monkeypatch)
