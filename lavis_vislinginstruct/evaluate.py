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
* **Checks**: the ``--options`` keys and every run and model value are checked before anything is built
  (:mod:`lavis_vislinginstruct.options`), and a model whose weights no file provided (no InstructBLIP
  ``checkpoint``/``hf_checkpoint``, no ViT or LLM files) is refused after it is built, naming what is missing,
  unless its model type is random on purpose (``tiny``) or ``run.allow_random_weights=True``: such a run would
  score near zero without a word.

On the command line, bad input is one ``error:`` line and exit status 2
(:func:`~lavis_vislinginstruct.train.run_command`).

``main(argv)`` returns ``{"output_dir", "result_dir", "metrics": {split: summary}}``; the summaries are also in
``<result_dir>/<split>_metrics.json``, which ``python -m lavis_vislinginstruct.report`` turns into the paper's tables.
"""

import logging
from typing import Any, Dict, List, Optional

import lavis.tasks as tasks
import torch.distributed as dist
from omegaconf import OmegaConf

import lavis_vislinginstruct  # noqa: F401  (registers the plugin)
from lavis_vislinginstruct.models.config import VisLingInstructCfg
from lavis_vislinginstruct.tasks.benchmarks import benchmark_for, variant_name
from lavis_vislinginstruct.train import build_runner, checking_inputs, require_weights, run_command, setup

logger = logging.getLogger(__name__)


def normalize_switches(cfg) -> None:
    """Fill the evaluation defaults in place: ``aio.mode`` spelled ``off``, ``run.evaluate``, ``run.test_splits``.

    The values themselves were checked when the config was loaded (``train.setup``).
    """
    model = cfg.config.model
    if OmegaConf.select(model, "aio.mode", default=None) is False:  # YAML/--options read a bare `off` as false
        OmegaConf.update(model, "aio.mode", "off", force_add=True)

    run = cfg.run_cfg
    run.evaluate = True
    if not run.get("test_splits"):
        bench = benchmark_for(run.get("benchmark"), list(cfg.datasets_cfg.keys()))
        run.test_splits = [bench.split]


def default_job_id(cfg) -> str:
    """``run.job_id``, else the ablation row of the model settings (see module docstring)."""
    if cfg.run_cfg.get("job_id"):
        return str(cfg.run_cfg.job_id)
    typed = VisLingInstructCfg.from_omegaconf(cfg.model_cfg)
    return variant_name(typed.cmaa.enabled, typed.aio.mode, typed.aio.select, typed.aio.order)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Evaluate as the configuration says (module docstring)."""
    cfg, _, created = setup(argv)
    try:
        with checking_inputs():
            normalize_switches(cfg)
            job_id = default_job_id(cfg)
            task = tasks.setup_task(cfg)
            datasets = task.build_datasets(cfg)
            model = task.build_model(cfg)
            require_weights(cfg, model, "evaluate", frozen_only=False)
        runner = build_runner(cfg, job_id, task, model, datasets)
        logs = runner.evaluate(skip_reload=True)
    finally:
        if created:
            dist.destroy_process_group()
    return {"output_dir": str(runner.output_dir), "result_dir": str(runner.result_dir), "metrics": logs}


if __name__ == "__main__":
    run_command(main)
