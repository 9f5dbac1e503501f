"""Training end to end with LAVIS: the tiny config on CPU through ``train.py``, DDP, checkpoints, resume, configs.

The data are LLaVA-Instruct-150K records (one colour question per solid-colour image) read by the real
``vli_llava_instruct_150k`` builder from a temporary ``cache_root``.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import build_tiny
from lavis.common.config import Config
from lavis.common.registry import registry
from omegaconf import OmegaConf
from PIL import Image

from lavis_vislinginstruct.runners.schedulers import warmup_cosine_lr
from lavis_vislinginstruct.train import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "projects" / "vislinginstruct" / "train" / "tiny.yaml"
GPU_PROJECTS = {"vicuna7b": 32, "vicuna13b": 32, "flant5xl": 128, "flant5xxl": 256}  # Appendix E global batches
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 20)}
N_RECORDS = 24
TRAINABLE = {"llm_proj.weight", "llm_proj.bias"}


def write_llava_data(root: Path, n: int = N_RECORDS, textured: bool = False) -> Path:
    """LLaVA-Instruct-150K layout under ``root`` (a cache_root): the annotation file and COCO-named images.

    ``textured`` adds a fixed pseudo-random pattern to each solid colour, so random crops and flips change pixels.
    """
    images = root / "coco" / "images" / "train2017"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        name = f"{i:012d}.png"
        image = Image.new("RGB", (32, 32), COLOURS[colour])
        if textured:
            noise = torch.randint(0, 60, (32, 32, 3), generator=torch.Generator().manual_seed(i), dtype=torch.uint8)
            image = Image.fromarray((torch.tensor(COLOURS[colour], dtype=torch.uint8) // 2 + noise).numpy())
        image.save(images / name)
        question = "<image>\nWhat colour is the picture?" if i % 2 else "What colour is the picture?\n<image>"
        records.append(
            {
                "id": f"{i:012d}",
                "image": name,
                "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": colour}],
            }
        )
    ann = root / "llava_instruct_150k" / "llava_instruct_150k.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(records))
    return root


@contextlib.contextmanager
def one_thread_and_clean_paths():
    """One torch thread inside the block (tiny models on a shared 2-core machine run about 40x faster on one thread
    than on two); afterwards the thread count is restored and the runner's ``output_dir``/``result_dir`` are removed
    from LAVIS's path registry (it refuses to re-register them)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        for name in ("output_dir", "result_dir"):
            registry.mapping["paths"].pop(name, None)


@pytest.fixture(autouse=True)
def one_thread():
    with one_thread_and_clean_paths():
        yield


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_llava_data(tmp_path_factory.mktemp("llava"))


def options(data_root: Path, out: Path, *extra: str):
    """``--options`` of a short run: 2 epochs, batch 2, warm-up over 2 updates."""
    return [
        f"run.cache_root={data_root}",
        f"run.output_dir={out}",
        "run.max_epoch=2",
        "run.batch_size_train=2",
        "run.warmup_steps=2",
        "run.log_freq=100",
        *extra,
    ]


def train_log(output_dir: Path):
    lines = (output_dir / "log.txt").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith('{"train_')]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_cpu_ddp_run_lowers_loss_and_saves_only_trainable_weights(data_root, tmp_path):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    cmd = [*launcher, f"--master_port={free_port()}", "train.py", "--cfg-path", str(TINY), "--options"]
    cmd += options(data_root, out)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    (run_dir,) = out.iterdir()
    losses = [float(entry["train_loss"]) for entry in train_log(run_dir)]
    assert len(losses) == 2 and losses[1] < losses[0] - 0.02, losses

    ckpt_path = run_dir / "checkpoint_1.pth"
    assert ckpt_path.stat().st_size < 200_000  # a projection, not a model
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert set(ckpt["model"]) == TRAINABLE and ckpt["epoch"] == 1
    # 24 records / 2 processes / batch 2 = 6 iterations per epoch, 12 updates; the last one ran at lr(11)
    lr = ckpt["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(warmup_cosine_lr(11, 12, 2, 1e-8, 1e-2, 0.0))


@pytest.fixture(scope="module")
def full_run(data_root, tmp_path_factory) -> Path:
    """An uninterrupted 2-epoch run in this process (no launcher: a gloo group of one); its output folder."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runner = main(["--cfg-path", str(TINY), "--options", *options(data_root, tmp_path_factory.mktemp("full"))])
    torch.set_num_threads(threads)
    return Path(runner.output_dir)


def test_resume_after_epoch_one_ends_with_the_uninterrupted_weights(data_root, full_run, tmp_path):
    """Epochs shuffle differently and images are augmented, so resuming must restore both, not only the weights."""
    resume = f"run.resume_ckpt_path={full_run / 'checkpoint_0.pth'}"
    resumed = main(["--cfg-path", str(TINY), "--options", *options(data_root, tmp_path / "resumed", resume)])
    resumed_dir = Path(resumed.output_dir)
    assert len(train_log(full_run)) == 2 and len(train_log(resumed_dir)) == 1  # only epoch 1 ran again

    a = torch.load(full_run / "checkpoint_1.pth", weights_only=True)
    b = torch.load(resumed_dir / "checkpoint_1.pth", weights_only=True)
    first = torch.load(full_run / "checkpoint_0.pth", weights_only=True)
    assert set(a["model"]) == set(b["model"]) == TRAINABLE
    for key in TRAINABLE:
        assert not torch.equal(a["model"][key], first["model"][key])  # epoch 1 did train
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=1e-6, atol=1e-7)
    assert b["optimizer"]["param_groups"][0]["lr"] == a["optimizer"]["param_groups"][0]["lr"]
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        torch.testing.assert_close(state_b["exp_avg_sq"], state_a["exp_avg_sq"], rtol=1e-6, atol=1e-12)


def test_checkpoint_loads_as_finetuned_weights_over_the_base_model(full_run):
    """What evaluation configs do with ``model.finetuned: <checkpoint_N.pth>``."""
    saved = torch.load(full_run / "checkpoint_1.pth", weights_only=True)["model"]
    base = build_tiny("vislinginstruct_vicuna")
    tuned = build_tiny("vislinginstruct_vicuna", finetuned=str(full_run / "checkpoint_1.pth"))
    assert not torch.equal(base.llm_proj.weight, saved["llm_proj.weight"])
    torch.testing.assert_close(tuned.llm_proj.weight.detach(), saved["llm_proj.weight"])
    torch.testing.assert_close(tuned.llm_proj.bias.detach(), saved["llm_proj.bias"])


def test_resume_from_a_checkpoint_without_the_trainable_weights_fails(data_root, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"model": {}, "optimizer": {}, "epoch": 0}, bad)
    with pytest.raises(KeyError, match="llm_proj.weight"):
        main(
            ["--cfg-path", str(TINY), "--options", *options(data_root, tmp_path / "out", f"run.resume_ckpt_path={bad}")]
        )


@pytest.mark.parametrize(
    "extra, error",
    [
        (["run.runner=runner_base"], "needs CUDA"),
        (["run.amp=True"], "run.amp"),
        (["run.device=cuda", "run.runner=runner_base"], "no CUDA device"),
        (["run.device=cuda"], "runner_vli is the CPU runner.*runner_base"),
    ],
)
def test_configurations_that_cannot_run_here_fail_before_building(tmp_path, extra, error):
    if error == "no CUDA device" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises((ValueError, RuntimeError), match=error):
        main(["--cfg-path", str(TINY), "--options", f"run.output_dir={tmp_path}", *extra])


def load_project(name: str):
    args = OmegaConf.create(
        {"cfg_path": str(ROOT / "projects" / "vislinginstruct" / "train" / f"{name}.yaml"), "options": None}
    )
    return Config(args).config


@pytest.mark.parametrize("name", sorted(GPU_PROJECTS))
def test_gpu_projects_follow_appendix_e(name):
    cfg = load_project(name)
    run = cfg.run
    assert run.runner == "runner_base" and registry.get_task_class(run.task)  # LAVIS's stock runner on GPU
    assert registry.get_lr_scheduler_class(run.lr_sched) is registry.get_lr_scheduler_class("vli_linear_warmup_cosine")
    expected = dict(init_lr=1e-5, min_lr=0, warmup_lr=1e-8, warmup_steps=1000, weight_decay=0.05, beta2=0.999)
    assert {k: float(run[k]) for k in expected} == expected
    assert (run.max_epoch, run.amp, run.device) == (3, True, "cuda")
    assert 8 * run.batch_size_train * run.accum_grad_iters == GPU_PROJECTS[name]
    # model defaults merged under the project; InstructBLIP's train-time image processing per LLM
    assert cfg.model.model_type == name and cfg.model.checkpoint
    vis = cfg.datasets.vli_llava_instruct_150k.vis_processor.train
    assert (vis.name, vis.image_size) == ("blip2_image_train" if "vicuna" in name else "blip_image_train", 224)
    script = (ROOT / "run_scripts" / "vislinginstruct" / "train" / f"{name}.sh").read_text()
    assert "torch.distributed.run" in script and f"projects/vislinginstruct/train/{name}.yaml" in script
