"""What a run accepts: the ``run`` keys that LAVIS 1.0.2 and this plugin read, and the checks of ``--options``.

LAVIS's ``Config`` merges ``--options key=value`` into the project config and each runner, task and builder reads
the keys it knows; it drops everything else without a word. So ``cmaa.enabled=False`` (the section left out)
would run, and label, Table 2's EMA row, and ``run.max_epochs=1`` would train three epochs. ``train.py`` and
``evaluate.py`` therefore check the command line and the merged config before anything is built:

* :func:`check_options` (the command line, against the project file): every option is ``key=value``; its first
  part is a section (``model``, ``run``, ``datasets``), with a hint when it is a key of one
  (``cmaa.enabled`` -> ``model.cmaa.enabled``); ``run`` keys are those of :data:`RUN_KEYS`; ``datasets`` options
  name a dataset of the config and one of its keys; ``model.model_type`` and ``model.arch`` must be registered and
  equal the file's (LAVIS merges the defaults of the *file's* model type and looks the class up by the file's arch,
  so an override would only be recorded, not built).
* :func:`check_config` (the merged config): the run section, file and options alike, holds only keys of
  :data:`RUN_KEYS` with values of their type and choices (``run.score=median`` or ``run.max_samples=-1`` fail here,
  not hours later), and ``run.resume_ckpt_path`` is a checkpoint the runner can resume from (before
  the run folder is made); the model section is validated by the typed model config (every key and value, see
  :mod:`lavis_vislinginstruct.models.config`).

:data:`RUN_KEYS` is the one list of run keys: LAVIS 1.0.2's runners (``runner_base``, ``runner_iter``), its
distributed set-up and tasks (captioning, VQA, dialogue), and this plugin's entry points and tasks
(:mod:`lavis_vislinginstruct.tasks.evaluation` documents the evaluation keys).

The optimize CLI (and :func:`lavis_vislinginstruct.models.loading.load_with_options`) takes model settings only, so
its ``--options`` may leave out the ``model.`` prefix; with it, they are spelled as here.
"""
import difflib
import os
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import lavis.common.optims  # noqa: F401  (registers LAVIS's learning-rate schedulers, checked in run.lr_sched)
import torch
from lavis.common.registry import registry
from lavis.common.utils import is_url
from omegaconf import DictConfig, ListConfig, OmegaConf

from .inference.rows import ROWS
from .models.config import LAVIS_KEYS, VisLingInstructCfg

SECTIONS = ("model", "run", "datasets")


@dataclass(frozen=True)
class RunKey:
    """One ``run`` key: what values it takes and who reads it.

    Attributes:
        kind: ``bool``, ``int``, ``number`` (YAML reads ``1e-5`` as a string; LAVIS converts it), ``str``,
            ``scalar`` (a string or number used as a name), ``splits`` (a list of split names), ``path``, ``ratios``
            (a list or mapping of numbers), ``any``.
        reader: Who reads it (for the reader of an error message).
        choices: Allowed values, if fixed.
        minimum: Smallest allowed number.
        nullable: Whether ``null`` is allowed (LAVIS's "not set").
    """

    kind: str
    reader: str
    choices: Tuple[Any, ...] = ()
    minimum: Optional[float] = None
    nullable: bool = False


_BASE, _ITER, _DIST = "LAVIS runner_base", "LAVIS runner_iter", "LAVIS distributed set-up"
_LTASK, _EVAL, _OURS = "LAVIS tasks", "vli_generation / vli_ranking", "train.py / evaluate.py"

#: Every key a ``run`` section may hold.
RUN_KEYS: Dict[str, RunKey] = {
    # what runs
    "task": RunKey("str", "LAVIS tasks.setup_task"),
    "runner": RunKey("str", "train.py (LAVIS: registry)"),
    "device": RunKey("str", _BASE),
    "amp": RunKey("bool", _BASE),
    "seed": RunKey("int", "LAVIS setup_seeds; vli_instruct_training (per-epoch seeds)"),
    "evaluate": RunKey("bool", _BASE),
    "output_dir": RunKey("str", _BASE),
    "resume_ckpt_path": RunKey("path", _BASE, nullable=True),
    # distributed set-up (rank, gpu, dist_backend are written at start-up)
    "distributed": RunKey("bool", _DIST),
    "world_size": RunKey("int", _DIST, minimum=1),
    "rank": RunKey("int", _DIST, minimum=0),
    "gpu": RunKey("int", _DIST, minimum=0),
    "dist_url": RunKey("str", _DIST),
    "dist_backend": RunKey("str", _DIST),
    # optimization
    "lr_sched": RunKey("str", _BASE),
    "init_lr": RunKey("number", _BASE, minimum=0),
    "min_lr": RunKey("number", _BASE, minimum=0),
    "warmup_lr": RunKey("number", _BASE),
    "warmup_steps": RunKey("int", _BASE, minimum=0),
    "lr_decay_rate": RunKey("number", _BASE, nullable=True),
    "weight_decay": RunKey("number", _BASE, minimum=0),
    "beta2": RunKey("number", _BASE, minimum=0),
    "max_epoch": RunKey("int", _BASE, minimum=1),
    "max_iters": RunKey("int", _ITER, minimum=1),
    "iters_per_inner_epoch": RunKey("int", _ITER, minimum=1),
    "accum_grad_iters": RunKey("int", _BASE, minimum=1),
    # data
    "batch_size_train": RunKey("int", _BASE, minimum=1),
    "batch_size_eval": RunKey("int", _BASE, minimum=1),
    "num_workers": RunKey("int", _BASE, minimum=0),
    "train_splits": RunKey("splits", _BASE),
    "valid_splits": RunKey("splits", _BASE),
    "test_splits": RunKey("splits", _BASE),
    "train_dataset_ratios": RunKey("ratios", _BASE, nullable=True),
    "use_dist_eval_sampler": RunKey("bool", _BASE),
    "log_freq": RunKey("int", _BASE, minimum=1),
    # decoding (LAVIS's captioning/VQA tasks and vli_generation)
    "num_beams": RunKey("int", f"{_LTASK}, {_EVAL}", minimum=1),
    "max_len": RunKey("int", f"{_LTASK}, {_EVAL}", minimum=1),
    "min_len": RunKey("int", f"{_LTASK}, {_EVAL}", minimum=0),
    "inference_method": RunKey("str", f"{_LTASK}, {_EVAL}"),
    "length_penalty": RunKey("number", _EVAL, nullable=True),
    "repetition_penalty": RunKey("number", _EVAL, nullable=True),
    "num_ans_candidates": RunKey("int", _LTASK, minimum=1),
    "prompt": RunKey("str", _LTASK),
    "report_metric": RunKey("bool", _LTASK),
    # evaluation (tasks/evaluation.py)
    "row": RunKey("str", f"{_EVAL} (Table 2's row)", choices=tuple(ROWS), nullable=True),
    "allow_untrained_projection": RunKey("bool", "evaluate.py (a row with CMAA on without model.finetuned)"),
    "benchmark": RunKey("str", _EVAL),
    "resume": RunKey("bool", _EVAL),
    "max_samples": RunKey("int", _EVAL, minimum=0, nullable=True),
    "score": RunKey("str", "vli_ranking", choices=("mean", "sum")),
    "chunk_size": RunKey("int", "vli_ranking", minimum=1),
    "visdial_dense_annotations": RunKey("path", "vli_ranking (Visual Dialog NDCG)", nullable=True),
    # this plugin's entry points
    "cache_root": RunKey("str", _OURS),
    "job_id": RunKey("scalar", _OURS, nullable=True),
    "allow_random_weights": RunKey("bool", _OURS + " (run with weights no file provided, e.g. speed checks)"),
}

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


# ------------------------------------------------------------------------------------------------ options


def split_options(options: Optional[Sequence[str]]) -> List[Tuple[str, str]]:
    """``[(key, value), ...]`` of ``key=value`` options.

    Raises:
        ValueError: For an option without ``=`` or with an empty key (LAVIS would pair bare tokens up, or keep
            them as keys with no value).
    """
    pairs = []
    for option in options or []:
        key, sep, value = str(option).partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"--options {option!r} is not key=value (e.g. model.cmaa.enabled=False or run.max_epoch=1)"
            )
        pairs.append((key.strip(), value))
    return pairs


def check_options(options: Optional[Sequence[str]], cfg_path: str) -> None:
    """Check ``--options`` of train.py/evaluate.py against the project config ``cfg_path`` (module docstring).

    Raises:
        ValueError: Naming the first bad option and the valid keys.
    """
    pairs = split_options(options)
    if not pairs:
        return
    project = OmegaConf.load(cfg_path)
    for key, value in pairs:
        section, _, rest = key.partition(".")
        if section not in SECTIONS:
            raise ValueError(f"--options {key}: {section!r} is not a section of the config ({', '.join(SECTIONS)})"
                             f"{_section_hint(key, project)}")
        if not rest:
            raise ValueError(f"--options {key} names the whole {section} section; give one of its keys")
        first = rest.split(".")[0]
        if section == "run":
            _check_run_key(first, f"--options {key}")
        elif section == "datasets":
            _check_dataset_key(rest, project, key)
        elif first in ("arch", "model_type"):
            _check_model_name(first, value, project)


def _section_hint(key: str, project) -> str:
    first = key.split(".")[0]
    model_keys = {f.name for f in VisLingInstructCfg.__dataclass_fields__.values()} | LAVIS_KEYS
    if first in model_keys:
        return f"; did you mean model.{key}?"
    if first in RUN_KEYS:
        return f"; did you mean run.{key}?"
    if first in (project.get("datasets") or {}):
        return f"; did you mean datasets.{key}?"
    return ""


def _check_run_key(name: str, where: str) -> None:
    if name not in RUN_KEYS:
        close = difflib.get_close_matches(name, list(RUN_KEYS), n=3)
        hint = f" (did you mean {', '.join('run.' + c for c in close)}?)" if close else ""
        raise ValueError(f"{where}: run.{name} is not a run key{hint}; valid run keys: {', '.join(sorted(RUN_KEYS))}")


def _check_dataset_key(rest: str, project, key: str) -> None:
    names = list(project.get("datasets") or {})
    name, _, sub = rest.partition(".")
    if name not in names:
        raise ValueError(f"--options {key}: dataset {name!r} is not in this config (it has: {', '.join(names)})")
    if not sub:
        return
    merged = dataset_defaults(name, project)
    first = sub.split(".")[0]
    if first not in merged:
        raise ValueError(
            f"--options {key}: {first!r} is not a key of datasets.{name}; valid keys: {', '.join(sorted(merged))}"
        )


def dataset_defaults(name: str, project) -> DictConfig:
    """``datasets.<name>`` as LAVIS's ``Config`` builds it: the builder's defaults, then the project's section."""
    section = project.datasets[name]
    builder = registry.get_builder_class(name)
    if builder is None:
        raise ValueError(f"dataset {name!r} has no registered builder")
    defaults = OmegaConf.load(builder.default_config_path(type=section.get("type", "default")))
    return OmegaConf.merge(defaults.datasets[name], section)


def _check_model_name(field_name: str, value: str, project) -> None:
    """``model.arch`` / ``model.model_type`` options: registered, and the project file's (LAVIS builds from it)."""
    value = value.strip()
    arch = OmegaConf.select(project, "model.arch", default=None)
    given = OmegaConf.select(project, f"model.{field_name}", default=None)
    if field_name == "model_type":
        cls = registry.get_model_class(arch) if arch else None
        known = sorted(getattr(cls, "PRETRAINED_MODEL_CONFIG_DICT", {}) or {})
        if known and value not in known:
            raise ValueError(f"--options model.model_type={value}: unknown model type for {arch}; "
                             f"valid model types: {', '.join(known)}")
    if given is not None and value != str(given):
        raise ValueError(
            f"--options model.{field_name}={value}: the config file builds {field_name} {given!r} (LAVIS merges the "
            f"defaults of the file's model type and looks the class up by the file's arch, so this override would "
            f"only relabel the run); use a config of {value}"
        )


# ------------------------------------------------------------------------------------------ merged config


def check_config(cfg) -> VisLingInstructCfg:
    """Check the merged LAVIS ``Config``: run keys and values, and the model section (typed); returns the latter.

    Raises:
        ValueError: Naming the key and what it accepts; for ``run.resume_ckpt_path``, a file that is not a checkpoint
            LAVIS's runner can resume from (:func:`check_resume_checkpoint`).
        FileNotFoundError: If ``run.resume_ckpt_path`` is a local path that does not exist.
    """
    check_run(cfg.run_cfg)
    return VisLingInstructCfg.from_omegaconf(cfg.model_cfg)


def check_run(run_cfg) -> None:
    """Every key of the ``run`` section is in :data:`RUN_KEYS` and its value has the key's kind and choices."""
    for name in run_cfg:
        _check_run_key(name, "run section")
        check_run_value(name, run_cfg[name])
    for name, mapping, what in (
        ("task", "task_name_mapping", "task"),
        ("runner", "runner_name_mapping", "runner"),
        ("lr_sched", "lr_scheduler_name_mapping", "learning-rate scheduler"),
    ):
        value = run_cfg.get(name)
        if value is not None and value not in registry.mapping[mapping]:
            known = ", ".join(sorted(registry.mapping[mapping]))
            raise ValueError(f"run.{name} {value!r} is not a registered {what}; registered: {known}")
    path = run_cfg.get("resume_ckpt_path")
    if path and not is_url(str(path)):
        check_resume_checkpoint(str(path))


#: What LAVIS's ``RunnerBase._load_checkpoint`` reads from ``run.resume_ckpt_path`` (its ``_save_checkpoint`` writes
#: them, with ``config`` and ``scaler``).
RESUME_KEYS = ("model", "optimizer", "epoch")


def check_resume_checkpoint(path: str) -> None:
    """Check that ``path`` is a checkpoint LAVIS's runner can resume from, before any run folder is made.

    The file is read as the runner reads it (``torch.load`` with its defaults), memory-mapped when it is a zip
    archive (what ``torch.save`` writes), so the tensors are not read into memory here.

    Raises:
        FileNotFoundError: ``<path> is not a checkpoint: no such file``.
        ValueError: ``<path> is not a checkpoint: <reason>`` (unreadable by ``torch.load``, not a dict, or without
            the ``model``, ``optimizer`` and ``epoch`` entries).
    """
    local = os.path.expanduser(path)
    where = f"run.resume_ckpt_path {path} is not a checkpoint"
    if not os.path.exists(local):
        raise FileNotFoundError(f"{where}: no such file")
    if os.path.isdir(local):
        raise ValueError(f"{where}: it is a folder (give the checkpoint_<epoch>.pth file a training run wrote)")
    archive = zipfile.is_zipfile(local)  # torch.save's format since PyTorch 1.6
    try:
        ckpt = torch.load(local, map_location="cpu", mmap=archive)
    except Exception as err:  # noqa: BLE001 - any failure to read it means it is not a checkpoint; named below
        detail = (str(err).strip().splitlines() or [""])[0][:200]
        what = "torch.load cannot read it" if archive else "it is not a file torch.save wrote"
        raise ValueError(f"{where}: {what} (torch.load: {type(err).__name__}: {detail})") from err
    if not isinstance(ckpt, dict):
        reason = f"it holds a {type(ckpt).__name__}, not a dict with {', '.join(map(repr, RESUME_KEYS))}"
    elif any(key not in ckpt for key in RESUME_KEYS):
        missing = [key for key in RESUME_KEYS if key not in ckpt]
        shown = ", ".join(map(repr, list(ckpt)[:10])) or "nothing"
        reason = f"it has no {', '.join(map(repr, missing))} entr{'y' if len(missing) == 1 else 'ies'} (it has {shown})"
    elif not isinstance(ckpt["model"], dict):
        reason = f"its 'model' entry is a {type(ckpt['model']).__name__}, not a state dict"
    else:
        return
    raise ValueError(f"{where}: {reason}; resume from a checkpoint_<epoch>.pth a training run wrote")


def check_run_value(name: str, value: Any) -> None:
    """``value`` fits ``RUN_KEYS[name]``.

    Raises:
        ValueError: ``run.<name> must be ..., got ...``.
    """
    spec = RUN_KEYS[name]
    what = f"run.{name}"
    if value is None:
        if spec.nullable or spec.kind in ("any",):
            return
        raise ValueError(f"{what} must be set ({_kind_text(spec)}), got null")
    number = None
    if spec.kind == "bool":
        ok = isinstance(value, bool)
    elif spec.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        number = value if ok else None
    elif spec.kind == "number":
        number = _as_number(value)
        ok = number is not None
    elif spec.kind in ("str", "path"):
        ok = isinstance(value, str)
    elif spec.kind == "scalar":
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    elif spec.kind == "splits":
        ok = isinstance(value, (list, ListConfig)) and all(isinstance(v, str) for v in value)
    elif spec.kind == "ratios":
        items = list(value.values()) if isinstance(value, (dict, DictConfig)) else value
        ok = isinstance(items, (list, ListConfig)) and all(_as_number(v) is not None for v in items)
    else:
        ok = True
    if not ok:
        raise ValueError(f"{what} must be {_kind_text(spec)}, got {value!r} ({type(value).__name__})")
    if spec.kind == "str" and name == "device" and not _DEVICE.match(value):
        raise ValueError(f"{what} must be cpu, cuda or cuda:<index>, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{what} must be one of {', '.join(map(str, spec.choices))}, got {value!r}")
    if spec.minimum is not None and number is not None and number < spec.minimum:
        raise ValueError(f"{what} must be at least {spec.minimum:g}, got {value!r}")


def _as_number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _kind_text(spec: RunKey) -> str:
    text = {
        "bool": "True or False",
        "int": "an integer",
        "number": "a number",
        "str": "a string",
        "scalar": "a name",
        "path": "a path",
        "splits": "a list of split names",
        "ratios": "a list or mapping of numbers",
    }.get(spec.kind, "a value")
    return text + (" or null" if spec.nullable else "")
