"""LAVIS 1.0.2's stock ``RunnerBase``, unchanged, on our model: its own checkpoints and resume (issue 9, section 3).

The GPU configs train with ``runner: runner_base``. On a CPU the stock runner can still be driven, as here, with two
things 1.0.2 ties to CUDA replaced in the test only: its ``PrefetchLoader`` (a CUDA stream) is left out of the
loaders it builds, and the model is wrapped in DDP by the test (1.0.2 wraps it only when it moves the model to
another device, which never happens on a CPU). Everything else, ``_save_checkpoint``, ``_load_checkpoint``,
``train()``, the optimizer and scheduler it builds, its ``IterLoader`` and ``DistributedSampler``, is LAVIS's code.
"""
import contextlib
import io
from pathlib import Path

import lavis.runners.runner_base as runner_base
import lavis.tasks as tasks
import pytest
import torch
import torch.distributed as dist
from lavis.common.registry import registry
from lavis.runners.runner_base import RunnerBase
from omegaconf import OmegaConf
from test_training import TINY, one_thread_and_clean_paths, options, warmup_cosine_lr, write_llava_data
from torch.nn.parallel import DistributedDataParallel as DDP

from lavis_vislinginstruct.models.checkpoint import CheckpointKeyError
from lavis_vislinginstruct.train import setup


@pytest.fixture(autouse=True)
def cpu_stock_runner(monkeypatch):
    """One thread; 1.0.2's loaders without the CUDA prefetcher; LAVIS's path registry cleaned after each test."""
    monkeypatch.setattr(runner_base, "PrefetchLoader", lambda loader: loader)
    with one_thread_and_clean_paths():
        yield


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Textured images: the train-time crops and flips then change what the model sees, so RNG state matters."""
    return write_llava_data(tmp_path_factory.mktemp("llava"), textured=True)


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    """tiny.yaml for each LLM family (LAVIS reads the arch from the file, not from --options)."""
    root = tmp_path_factory.mktemp("cfg")
    out = {"vislinginstruct_vicuna": TINY}
    cfg = OmegaConf.load(TINY)
    cfg.model.arch = "vislinginstruct_t5"
    OmegaConf.save(cfg, root / "tiny_t5.yaml")
    out["vislinginstruct_t5"] = root / "tiny_t5.yaml"
    return out


@contextlib.contextmanager
def stock_runner(cfg_path, data_root, out, *extra):
    """LAVIS's ``RunnerBase`` for a tiny run, built as train.py builds its runner (gloo group of one)."""
    cfg, job_id, created = setup(["--cfg-path", str(cfg_path), "--options", *options(data_root, out, *extra)])
    try:
        task = tasks.setup_task(cfg)
        datasets = task.build_datasets(cfg)
        model = task.build_model(cfg)
        for name in ("output_dir", "result_dir"):
            registry.mapping["paths"].pop(name, None)
        runner = RunnerBase(cfg=cfg, task=task, model=model, datasets=datasets, job_id=job_id)
        runner._wrapped_model = DDP(model)  # what 1.0.2 does on a GPU (module docstring)
        yield runner, model
    finally:
        if created:
            dist.destroy_process_group()


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def lavis_1_0_2_keys(model):
    """What 1.0.2's ``_save_checkpoint`` keeps from PyTorch's state dict: all but the frozen named parameters."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return {k for k in model.full_state_dict() if k not in frozen}


def model_bytes(state) -> int:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.tell()


@pytest.mark.parametrize("arch", ["vislinginstruct_vicuna", "vislinginstruct_t5"])
def test_stock_save_checkpoint_holds_only_the_trainable_parameters(arch, configs, data_root, tmp_path):
    with stock_runner(configs[arch], data_root, tmp_path) as (runner, model):
        runner._save_checkpoint(0)
        path = Path(runner.output_dir) / "checkpoint_0.pth"
        saved = torch.load(path, weights_only=True)
        proj = model.adapter.proj_attr
        assert set(saved["model"]) == trainable(model) == {f"{proj}.weight", f"{proj}.bias"}
        for key, value in saved["model"].items():
            assert torch.equal(value, model.full_state_dict()[key])
        # PyTorch's state dict filtered as 1.0.2 does would also keep the Q-Former's position_ids buffer and, for
        # T5, the two tied copies of the embedding (encoder/decoder.embed_tokens.weight)
        legacy = lavis_1_0_2_keys(model) - trainable(model)
        assert "Qformer.bert.embeddings.position_ids" in legacy
        if arch == "vislinginstruct_t5":
            assert {"t5_model.encoder.embed_tokens.weight", "t5_model.decoder.embed_tokens.weight"} <= legacy
        params = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)
        assert model_bytes(saved["model"]) < 4 * params + 4_000  # fp32 values and the zip file's bookkeeping
        assert saved["epoch"] == 0 and saved["scaler"] is None


@pytest.mark.parametrize("arch", ["vislinginstruct_vicuna", "vislinginstruct_t5"])
def test_stock_load_checkpoint_restores_the_trained_weights_into_a_fresh_model(arch, configs, data_root, tmp_path):
    with stock_runner(configs[arch], data_root, tmp_path / "a") as (runner, model):
        proj = model.proj
        with torch.no_grad():
            proj.weight.add_(0.5)  # trained weights, not the initialization a fresh model has
            proj.bias.sub_(0.25)
        runner.optimizer.state[proj.weight] = {"step": torch.tensor(7.0), "exp_avg": torch.ones_like(proj.weight),
                                               "exp_avg_sq": torch.ones_like(proj.weight)}
        runner._save_checkpoint(2)
        path = Path(runner.output_dir) / "checkpoint_2.pth"
        expected = {k: v.clone() for k, v in model.full_state_dict().items()}
    with stock_runner(configs[arch], data_root, tmp_path / "b") as (runner, fresh):
        before = {k: v.clone() for k, v in fresh.full_state_dict().items()}
        weight = f"{fresh.adapter.proj_attr}.weight"
        assert not torch.equal(before[weight], expected[weight])
        runner._load_checkpoint(str(path))
        after = fresh.full_state_dict()
        for key, value in after.items():  # the projection from the checkpoint, the rest as the config built it
            torch.testing.assert_close(value, expected[key] if key in trainable(fresh) else before[key])
        assert runner.start_epoch == 3
        (state,) = [s for s in runner.optimizer.state.values() if "exp_avg" in s]
        assert float(state["step"]) == 7.0


@pytest.mark.parametrize("arch", ["vislinginstruct_vicuna", "vislinginstruct_t5"])
@pytest.mark.parametrize("damage, named", [("extra", "Qformer.cls.predictions.bias"), ("drop", "bias")])
def test_stock_load_checkpoint_refuses_wrong_keys(arch, damage, named, configs, data_root, tmp_path):
    with stock_runner(configs[arch], data_root, tmp_path) as (runner, model):
        runner._save_checkpoint(0)
        path = Path(runner.output_dir) / "checkpoint_0.pth"
        saved = torch.load(path, weights_only=True)
        proj = model.adapter.proj_attr
        if damage == "extra":
            saved["model"][named] = torch.zeros(3)
            message = f"unexpected keys.*{named}"
        else:
            del saved["model"][f"{proj}.{named}"]
            message = f"lacks trainable parameters.*{proj}.{named}"
        torch.save(saved, path)
        with pytest.raises(CheckpointKeyError, match=message):
            runner._load_checkpoint(str(path))


def last_lr(ckpt) -> float:
    return ckpt["optimizer"]["param_groups"][0]["lr"]


def test_stock_runner_resumed_after_epoch_one_repeats_the_uninterrupted_run(data_root, tmp_path):
    """2 epochs straight vs 1 epoch then ``run.resume_ckpt_path``: same data order (sampler epoch), augmentations
    (blip2_image_train crops and flips, reseeded per epoch), learning rates and Adam state, so the same weights."""
    with stock_runner(TINY, data_root, tmp_path / "full") as (runner, _):
        runner.train()
        full = Path(runner.output_dir)
    first = torch.load(full / "checkpoint_0.pth", weights_only=True)
    resume = f"run.resume_ckpt_path={full / 'checkpoint_0.pth'}"
    with stock_runner(TINY, data_root, tmp_path / "resumed", resume) as (runner, _):
        runner.train()
        resumed = Path(runner.output_dir)
        loader = runner.train_loader
        assert loader.epoch == 1 and loader._dataloader.sampler.epoch == 1
    assert not (resumed / "checkpoint_0.pth").exists()  # epoch 0 did not run again
    a = torch.load(full / "checkpoint_1.pth", weights_only=True)
    b = torch.load(resumed / "checkpoint_1.pth", weights_only=True)
    for key in a["model"]:
        assert not torch.equal(a["model"][key], first["model"][key])  # epoch 1 trained
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=1e-6, atol=1e-7)
    # 24 records, batch 2: 12 updates per epoch, warm-up 2, cosine to 0 over 24; the last update ran at lr(23)
    assert last_lr(b) == last_lr(a) == pytest.approx(warmup_cosine_lr(23, 24, 2, 1e-8, 1e-2, 0.0))
    assert last_lr(first) == pytest.approx(warmup_cosine_lr(11, 24, 2, 1e-8, 1e-2, 0.0))
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        torch.testing.assert_close(state_b["exp_avg_sq"], state_a["exp_avg_sq"], rtol=1e-6, atol=1e-12)
