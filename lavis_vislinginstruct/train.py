"""Train VisLingInstruct with LAVIS: ``python -m torch.distributed.run --nproc_per_node=8 train.py --cfg-path ...``.

The flow of LAVIS's own ``train.py`` (which pip does not install): ``Config`` → distributed init → seeds → logger →
task → datasets → model → the runner named by ``run.runner``, after ``import lavis_vislinginstruct`` has registered
the plugin's models, builders, tasks, runners and schedulers. Additions:

* **Process group.** Under torchrun/SLURM on GPU, LAVIS's ``init_distributed_mode`` (NCCL) runs unchanged. With
  ``run.device: cpu`` the group uses gloo. Without a launcher (no ``RANK``/``WORLD_SIZE``) the process joins a group
  of one on 127.0.0.1, because LAVIS 1.0.2's runners call ``dist.barrier()`` unconditionally; ``python train.py
  --cfg-path ...`` therefore works on one GPU or on a CPU.
* **Paths.** ``run.cache_root`` (optional) is where relative dataset ``storage`` paths are resolved (LAVIS reads it
  from its own ``configs/default.yaml``, ``/export/home/.cache/lavis``); a relative ``run.output_dir`` is taken from
  the working directory (LAVIS resolves it inside its installed package).
* **Checks before anything is built** (:mod:`lavis_vislinginstruct.options`): ``--options`` keys and the run
  section against the known keys, their values by type and choice, the model section by the typed model config;
  the device against the runner (``runner_base`` on GPU, ``runner_vli`` on CPU). After the model is built, a
  model whose frozen weights no file provided is refused (``model.check_weights_loaded``; ``tiny`` is random on
  purpose, ``run.allow_random_weights=True`` overrides).

``main(argv)`` returns the runner after training, so tests and benchmarks can read its ``output_dir``; it raises on
bad input. On the command line (:func:`run_command`), bad input found before the run starts (a ``ValueError`` or
``FileNotFoundError`` of the checks above, of the dataset readers or of model building) is one ``error:`` line on
stderr and exit status 2, as argparse's own errors; every other error keeps its traceback.
"""

import argparse
import contextlib
import datetime
import logging
import os
import random
import socket
import sys
from typing import Callable, Iterator, List, Optional, Tuple

import lavis.common.optims  # noqa: F401  (registers LAVIS's learning-rate schedulers, as LAVIS's train.py does)
import lavis.tasks as tasks
import numpy as np
import torch
import torch.backends.cudnn as cudnn
import torch.distributed as dist
from lavis.common.config import Config
from lavis.common.dist_utils import get_rank, init_distributed_mode, setup_for_distributed
from lavis.common.logger import setup_logger
from lavis.common.registry import registry
from lavis.common.utils import now

import lavis_vislinginstruct  # noqa: F401  (registers the plugin)
from lavis_vislinginstruct.models.spec import spec_options
from lavis_vislinginstruct.options import check_config, check_options
from lavis_vislinginstruct.paths import set_cache_root
from lavis_vislinginstruct.runners import runner_vli

logger = logging.getLogger(__name__)

#: Runners that can train on a CPU (LAVIS's own need CUDA); on a GPU the stock runner_base is used.
CPU_RUNNERS = ("runner_vli",)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command line of LAVIS's ``train.py``: ``--cfg-path`` and ``--options key=value ...``."""
    parser = argparse.ArgumentParser(description="Train VisLingInstruct (LAVIS)")
    parser.add_argument("--cfg-path", required=True, help="path to the project configuration (YAML)")
    parser.add_argument(
        "--options",
        nargs="+",
        action="extend",
        help="override settings of the configuration, as key=value pairs (e.g. run.max_epoch=1 run.device=cpu); "
        "given more than once, the lists add up (later entries win)",
    )
    parser.add_argument(
        "--model-spec",
        help="a model spec file (e.g. demo_output/model.yaml) merged over the config's model section, below --options",
    )
    args = parser.parse_args(argv)
    if args.model_spec:
        args.options = apply_model_spec(args.cfg_path, args.model_spec) + list(args.options or [])
    check_options(args.options, args.cfg_path)
    return args


def apply_model_spec(cfg_path: str, spec: str) -> List[str]:
    """The spec's settings as ``--options`` entries, after checking that it names the config's architecture.

    LAVIS looks the model class up by the project config's ``model.arch`` (an ``--options`` override of the arch is
    not honoured there), so a spec for another architecture is refused instead of half-applied.
    """
    from omegaconf import OmegaConf

    from lavis_vislinginstruct.models.spec import read_model_spec

    project = OmegaConf.load(cfg_path)
    model = read_model_spec(spec)
    for key, what in (("arch", "a"), ("model_type", "model type")):
        mine, theirs = OmegaConf.select(project, f"model.{key}", default=None), model[key]
        if mine and mine != theirs:
            raise ValueError(f"{spec} is {what} {theirs} model but {cfg_path} configures {mine}; use a {theirs} config")
    return spec_options(spec)


def setup_seeds(cfg: Config) -> None:
    """Seed every generator with ``run.seed + rank`` and make cuDNN deterministic (LAVIS's ``setup_seeds``)."""
    seed = int(cfg.run_cfg.seed) + get_rank()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    cudnn.benchmark = False
    cudnn.deterministic = True


def _launched() -> bool:
    return ("RANK" in os.environ and "WORLD_SIZE" in os.environ) or "SLURM_PROCID" in os.environ


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_distributed(run_cfg) -> bool:
    """Join (or create) the process group and record rank, world size and device in ``run_cfg``.

    Returns:
        Whether :func:`main` should destroy the group at the end: only the group of one made here without a
        launcher. A launcher's group (torchrun, SLURM) lives as long as the process, as in LAVIS's ``train.py``:
        destroying it and joining again through the same store in the same process can pass a barrier on the
        old group's keys (seen as a rank merging before another had written, when ``main`` ran twice).
    """
    run_cfg.distributed = True
    if not run_cfg.get("dist_url"):
        run_cfg.dist_url = "env://"
    use_cuda = str(run_cfg.device).startswith("cuda")
    if dist.is_available() and dist.is_initialized():  # a caller's group (or a previous main() call)
        run_cfg.rank, run_cfg.world_size = dist.get_rank(), dist.get_world_size()
        run_cfg.gpu = torch.cuda.current_device() if use_cuda else 0
        return False
    if use_cuda and _launched():
        init_distributed_mode(run_cfg)  # LAVIS: NCCL, torch.cuda.set_device(LOCAL_RANK)
        return False
    if _launched():
        run_cfg.rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0)))
        run_cfg.world_size = int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", 1)))
        init_method = run_cfg.dist_url
    else:
        run_cfg.rank, run_cfg.world_size = 0, 1
        init_method = f"tcp://127.0.0.1:{_free_port()}"
    run_cfg.gpu = int(os.environ.get("LOCAL_RANK", 0)) if use_cuda else 0
    if use_cuda:
        torch.cuda.set_device(run_cfg.gpu)
    backend = "nccl" if use_cuda else "gloo"
    logger.info("process group: %s, rank %d of %d", backend, run_cfg.rank, run_cfg.world_size)
    dist.init_process_group(
        backend=backend,
        init_method=init_method,
        world_size=run_cfg.world_size,
        rank=run_cfg.rank,
        timeout=datetime.timedelta(minutes=60),
    )
    if run_cfg.world_size > 1:
        setup_for_distributed(run_cfg.rank == 0)  # LAVIS: only rank 0 prints
    return not _launched()


def prepare_paths(run_cfg) -> None:
    """Apply ``run.cache_root`` and make ``run.output_dir`` absolute (relative to the working directory)."""
    if run_cfg.get("cache_root"):
        run_cfg.cache_root = set_cache_root(str(run_cfg.cache_root))
    run_cfg.output_dir = os.path.abspath(os.path.expanduser(str(run_cfg.get("output_dir", "output"))))


def check_device(run_cfg) -> None:
    """Fail early, with the fix, when the configuration cannot run (``runner_base`` on GPU, ``runner_vli`` on CPU)."""
    runner = run_cfg.get("runner", "runner_base")
    if registry.get_runner_class(runner) is None:
        raise ValueError(f"run.runner {runner!r} is not registered")
    if runner in CPU_RUNNERS:
        runner_vli.check_device(run_cfg.device)
    if run_cfg.device == "cpu" and runner not in CPU_RUNNERS:
        raise ValueError(f"run.runner {runner!r} needs CUDA; on a CPU use one of {', '.join(CPU_RUNNERS)}")
    if run_cfg.device == "cpu" and run_cfg.get("amp", False):
        raise ValueError("run.amp (fp16 autocast with a GradScaler) needs CUDA; set run.amp=False on a CPU")
    if str(run_cfg.device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"run.device is {run_cfg.device!r} but no CUDA device is visible; on a CPU use "
            "projects/vislinginstruct/train/tiny.yaml or --options run.device=cpu run.runner=runner_vli run.amp=False"
        )


@contextlib.contextmanager
def checking_inputs() -> Iterator[None]:
    """Mark a ``ValueError``/``FileNotFoundError`` raised inside as bad input, which :func:`run_command` prints as one
    line. Only the steps before the run starts are wrapped: the checks of the config, data and model raise these
    with messages that name the problem; once the run has started they may be bugs, which keep their traceback."""
    try:
        yield
    except (ValueError, FileNotFoundError) as err:
        err.bad_input = True
        raise


def run_command(main_fn: Callable, argv: Optional[List[str]] = None) -> None:
    """Run ``main_fn(argv)`` as a command: bad input ends it with ``error: <message>`` on stderr and exit status 2.

    Raises:
        SystemExit: With status 2, for an error that :func:`checking_inputs` marked (its traceback is logged at
            debug level).
    """
    try:
        main_fn(argv)
    except (ValueError, FileNotFoundError) as err:
        if not getattr(err, "bad_input", False):
            raise
        logger.debug("bad input", exc_info=err)
        sys.stderr.write(f"error: {err}\n")
        raise SystemExit(2) from None


def setup(argv: Optional[List[str]] = None) -> Tuple[Config, str, bool]:
    """Parse the command line, build the config, join the process group, seed, and set up logging and paths.

    Returns:
        The config, the job id (LAVIS's timestamp) and whether the process group was created here.
    """
    job_id = now()
    with checking_inputs():
        cfg = Config(parse_args(argv))
        check_config(cfg)
        check_device(cfg.run_cfg)
    created = init_distributed(cfg.run_cfg)
    setup_seeds(cfg)
    setup_logger()
    prepare_paths(cfg.run_cfg)
    cfg.pretty_print()
    return cfg, job_id, created


def build_runner(cfg: Config, job_id: str, task, model, datasets):
    """The runner named by ``run.runner`` (default ``runner_base``, as LAVIS)."""
    runner_cls = registry.get_runner_class(cfg.run_cfg.get("runner", "runner_base"))
    return runner_cls(cfg=cfg, job_id=job_id, task=task, model=model, datasets=datasets)


def require_weights(cfg: Config, model, purpose: str, frozen_only: bool) -> None:
    """Refuse a model whose weights (``frozen_only``: frozen ones) no file provided, unless the run allows it."""
    if hasattr(model, "check_weights_loaded") and not cfg.run_cfg.get("allow_random_weights", False):
        model.check_weights_loaded(purpose, frozen_only=frozen_only)


def main(argv: Optional[List[str]] = None):
    """Train as the configuration says; returns the runner (its ``output_dir`` holds log and checkpoints)."""
    cfg, job_id, created = setup(argv)
    try:
        with checking_inputs():
            task = tasks.setup_task(cfg)
            datasets = task.build_datasets(cfg)
            model = task.build_model(cfg)
            require_weights(cfg, model, "train", frozen_only=True)
        runner = build_runner(cfg, job_id, task, model, datasets)
        runner.train()
    finally:
        if created:
            dist.destroy_process_group()
    return runner


if __name__ == "__main__":
    run_command(main)
