"""Zero-shot evaluation of VisLingInstruct with LAVIS (NAACL 2024, section 4.3, Tables 1 and 2).

    python -m torch.distributed.run --nproc_per_node=8 evaluate.py \\
        --cfg-path projects/vislinginstruct/eval/scienceqa_vicuna7b.yaml [--options key=value ...]

The flow of LAVIS's own ``evaluate.py`` (``Config`` → task → datasets → model → runner → ``evaluate(skip_reload=True)``)
with the set-up of :mod:`lavis_vislinginstruct.train` (process group, also gloo on CPU; seeds; ``run.cache_root``;
``run.output_dir`` relative to the working directory). Differences:

* **Ablation switches** are model settings: ``model.cmaa.enabled`` (EMA, section 3.1) and ``model.aio.mode``
  (``off`` | ``rewrite`` | ``full``, section 3.2). Table 2's rows: vanilla = ``cmaa.enabled=False aio.mode=off``,
  EMA = ``True``/``off``, EMA + Rewriting = ``True``/``rewrite``, EMA + AIO = ``True``/``full`` (the configs' default).
  YAML reads a bare ``off`` as false; both spellings are accepted.
* **Job id**: ``run.job_id`` if given, else the ablation row (``vanilla``, ``ema``, ``ema_rewrite``, ``ema_aio``),
  instead of LAVIS's timestamp. Results go to ``<run.output_dir>/<job id>/result/``; running the same command again
  resumes an interrupted run (``run.resume=False`` starts over), and each row has its own directory.
* ``run.test_splits`` defaults to the benchmark's evaluation split (Appendix D).

``main(argv)`` returns ``{"output_dir", "result_dir", "metrics": {split: summary}}``; the summaries are also in
``<result_dir>/<split>_metrics.json``, which ``python -m lavis_vislinginstruct.report`` turns into the paper's tables.
"""

import logging
from typing import Any, Dict, List, Optional

import lavis.tasks as tasks
import torch.distributed as dist
from omegaconf import OmegaConf

import lavis_vislinginstruct  # noqa: F401  (registers the plugin)
from lavis_vislinginstruct.tasks.benchmarks import benchmark_for, variant_name
from lavis_vislinginstruct.train import build_runner, setup

logger = logging.getLogger(__name__)

AIO_MODES = ("off", "rewrite", "full")


def normalize_switches(cfg) -> None:
    """Validate the ablation switches and the run keys evaluation needs, filling defaults in place.

    Raises:
        ValueError: On an unknown AIO mode or a non-boolean ``model.cmaa.enabled``.
    """
    model = cfg.config.model
    mode = OmegaConf.select(model, "aio.mode", default=None)
    if mode is False:  # YAML/--options read a bare `off` as false
        OmegaConf.update(model, "aio.mode", "off", force_add=True)
    elif mode is not None and mode not in AIO_MODES:
        raise ValueError(f"model.aio.mode must be one of {', '.join(AIO_MODES)}, got {mode!r}")
    enabled = OmegaConf.select(model, "cmaa.enabled", default=None)
    if enabled is not None and not isinstance(enabled, bool):
        raise ValueError(f"model.cmaa.enabled must be True or False, got {enabled!r}")

    run = cfg.run_cfg
    run.evaluate = True
    if not run.get("test_splits"):
        bench = benchmark_for(run.get("benchmark"), list(cfg.datasets_cfg.keys()))
        run.test_splits = [bench.split]


def default_job_id(cfg) -> str:
    """``run.job_id``, else the ablation row of the model settings (see module docstring)."""
    if cfg.run_cfg.get("job_id"):
        return str(cfg.run_cfg.job_id)
    model = cfg.model_cfg
    return variant_name(
        bool(OmegaConf.select(model, "cmaa.enabled", default=True)),
        OmegaConf.select(model, "aio.mode", default="off"),
        OmegaConf.select(model, "aio.select", default="generated"),
        OmegaConf.select(model, "aio.order", default="ias"),
    )


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Evaluate as the configuration says (module docstring)."""
    cfg, _, created = setup(argv)
    try:
        normalize_switches(cfg)
        job_id = default_job_id(cfg)
        task = tasks.setup_task(cfg)
        datasets = task.build_datasets(cfg)
        model = task.build_model(cfg)
        runner = build_runner(cfg, job_id, task, model, datasets)
        logs = runner.evaluate(skip_reload=True)
    finally:
        if created:
            dist.destroy_process_group()
    return {"output_dir": str(runner.output_dir), "result_dir": str(runner.result_dir), "metrics": logs}


if __name__ == "__main__":
    main()
