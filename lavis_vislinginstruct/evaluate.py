"""Zero-shot evaluation of VisLingInstruct with LAVIS (NAACL 2024, section 4.3, Tables 1 and 2).

    python -m torch.distributed.run --nproc_per_node=8 evaluate.py \\
        --cfg-path projects/vislinginstruct/eval/scienceqa_vicuna7b.yaml [--options key=value ...]

The flow of LAVIS's own ``evaluate.py`` (``Config`` → task → datasets → model → runner → ``evaluate(skip_reload=True)``)
with the set-up of :mod:`lavis_vislinginstruct.train` (process group, also gloo on CPU; seeds; ``run.cache_root``;
``run.output_dir`` relative to the working directory). Differences:

* **Rows of Table 2** are chosen by ``run.row``: ``vanilla`` (InstructBLIP's projection, CMAA off, AIO off),
  ``ema`` (the fine-tuned projection, CMAA on), ``ema_rewrite`` (+ rewriting), ``ema_aio`` (+ full AIO, the paper's
  method) and ``ema_aio_shuffled`` (an ablation: the comparison's scores shuffled); one loaded model runs each
  (:mod:`lavis_vislinginstruct.inference.rows`). Without ``run.row``, the row is the one ``model.cmaa.enabled``,
  ``model.aio.mode`` and ``model.aio.order`` describe. A model spec names weights, not rows: a spec or an option
  whose switch contradicts the row is refused, naming both. A row with CMAA on needs the fine-tuned projection
  (``model.finetuned``) unless the model type is random on purpose or ``run.allow_untrained_projection=True``.
* **Job id**: ``run.job_id`` if given, else the row's name (``vanilla``, ``ema``, ``ema_rewrite``, ``ema_aio``, ...),
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
from lavis_vislinginstruct.inference.rows import Row
from lavis_vislinginstruct.models.checkpoint_contract import CheckpointContract
from lavis_vislinginstruct.models.config import VisLingInstructCfg
from lavis_vislinginstruct.models.spec import spec_options
from lavis_vislinginstruct.tasks.benchmarks import benchmark_for, run_row, variant_name
from lavis_vislinginstruct.train import build_runner, checking_inputs, require_weights, run_command, setup

#: Model settings a row decides: option key -> the row's attribute.
ROW_SWITCHES = {
    "model.cmaa.enabled": "cmaa",
    "model.aio.mode": "aio",
    "model.aio.order": "order",
}

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
    """``run.job_id``, else the name of the run's row (see module docstring)."""
    if cfg.run_cfg.get("job_id"):
        return str(cfg.run_cfg.job_id)
    typed = VisLingInstructCfg.from_omegaconf(cfg.model_cfg)
    return variant_name(run_row(cfg.run_cfg.get("row"), typed), typed.aio.select)


def check_row(cfg) -> Row:
    """The run's row, after refusing switches that contradict it (module docstring).

    Raises:
        ValueError: A model spec or ``--options`` entry sets ``cmaa.enabled``/``aio.mode``/``aio.order`` against
            ``run.row``, or a spec sets one against the project config.
    """
    args = cfg.args
    spec = getattr(args, "model_spec", None)
    spec_entries = spec_options(spec) if spec else []
    from_spec = _switches(spec_entries)
    given = _switches(list(args.options or [])[len(spec_entries):])  # parse_args put the spec's entries first
    typed = VisLingInstructCfg.from_omegaconf(cfg.model_cfg)
    row = run_row(cfg.run_cfg.get("row"), typed)
    if cfg.run_cfg.get("row"):
        for source, switches in ((f"model spec {spec}", from_spec), ("--options", given)):
            for key, value in switches.items():
                wanted = getattr(row, ROW_SWITCHES[key])
                if value == wanted:
                    continue
                raise ValueError(
                    f"{source} sets {key}={value}, but run.row={row.name} runs {key}={wanted}: the row "
                    f"alone chooses CMAA, the projection and AIO (a model spec names weights, not rows); remove "
                    f"{key} or choose the row that has it"
                )
    elif from_spec:
        for key, value in from_spec.items():
            configured = _config_value(cfg, key)
            if key not in given and value != configured:
                raise ValueError(
                    f"model spec {spec} sets {key}={value}, but {args.cfg_path} sets {configured}: a model spec "
                    f"names weights, not rows; choose the row with run.row (e.g. run.row={row.name}) and remove "
                    f"{key} from the spec"
                )
    return row


def check_projection(cfg, row: Row) -> None:
    """Refuse a row with CMAA on and no fine-tuned projection (module docstring), unless the model type is random
    on purpose or the run allows it (``run.allow_untrained_projection``, or ``run.allow_random_weights``)."""
    typed = VisLingInstructCfg.from_omegaconf(cfg.model_cfg)
    untrained = row.projection == "finetuned" and row.cmaa and not typed.finetuned
    random_type = str(cfg.model_cfg.get("model_type")) in CheckpointContract.RANDOM_MODEL_TYPES
    allowed = cfg.run_cfg.get("allow_untrained_projection", False) or cfg.run_cfg.get("allow_random_weights", False)
    if untrained and not random_type and not allowed:
        raise ValueError(
            f"run.row={row.name} turns CMAA on, but no fine-tuned projection is loaded (model.finetuned is empty): "
            "InstructBLIP's projection was never trained with CMAA's extra tokens. Set model.finetuned to the "
            "checkpoint train.py wrote (ablation.sh/eval.sh: --finetuned PATH), or run.allow_untrained_projection="
            "True to run anyway"
        )


def _switches(options: List[str]) -> Dict[str, Any]:
    """The row switches among ``key=value`` options, with values as the row holds them."""
    out: Dict[str, Any] = {}
    for option in options:
        key, _, value = str(option).partition("=")
        key = key.strip()
        key = key if key.startswith("model.") else "model." + key
        if key in ROW_SWITCHES:
            out[key] = _as_switch(key, value.strip())
    return out


def _as_switch(key: str, value: Any) -> Any:
    if key == "model.cmaa.enabled":
        return str(value).lower() in ("true", "1", "yes", "on")
    if key == "model.aio.mode" and str(value).lower() in ("false", "off", "none"):
        return "off"
    return str(value)


def _config_value(cfg, key: str) -> Any:
    """The value of a switch in the project config alone (without the spec and --options)."""
    project = OmegaConf.load(cfg.args.cfg_path)
    value = OmegaConf.select(project, key, default=None)
    if value is None:  # the model type's packaged default
        typed = VisLingInstructCfg()
        value = {"model.cmaa.enabled": typed.cmaa.enabled, "model.aio.mode": typed.aio.mode,
                 "model.aio.order": typed.aio.order}[key]
    return _as_switch(key, value)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Evaluate as the configuration says (module docstring)."""
    cfg, _, created = setup(argv)
    try:
        with checking_inputs():
            normalize_switches(cfg)
            row = check_row(cfg)
            job_id = default_job_id(cfg)
            task = tasks.setup_task(cfg)
            datasets = task.build_datasets(cfg)
            model = task.build_model(cfg)
            require_weights(cfg, model, "evaluate", frozen_only=False)
            check_projection(cfg, row)
        runner = build_runner(cfg, job_id, task, model, datasets)
        logs = runner.evaluate(skip_reload=True)
    finally:
        if created:
            dist.destroy_process_group()
    return {"output_dir": str(runner.output_dir), "result_dir": str(runner.result_dir), "metrics": logs}


if __name__ == "__main__":
    run_command(main)
