"""Model specs: one YAML file that names a trained VisLingInstruct (architecture, type, weights, switches).

A spec is the ``model:`` section of a LAVIS config, on its own::

    model:
      arch: vislinginstruct_vicuna
      model_type: demo
      checkpoint: stage_a/checkpoint_3.pth     # relative paths are relative to the spec's folder
      finetuned: stage_b/checkpoint_1.pth

``make demo`` writes ``demo_output/model.yaml``; every entry point takes it with ``--model-spec FILE``
(``evaluate.py``/``train.py`` merge it over the project config's model section, below ``--options``; the optimize
CLI, chat and web front ends build the model from it). The keys are those of the model type's packaged config and
are validated the same way (``models.config``).
"""
import os
from typing import Any, Dict, List, Optional

from lavis.common.utils import is_url
from omegaconf import DictConfig, OmegaConf

#: Sections of a run config (``--cfg-path``) that a spec never has: such a file is refused, since only its model
#: section would be read (the eval configs name no trained weights, so the model would be random).
RUN_SECTIONS = ("run", "datasets")
#: Keys that hold files; a relative value is resolved against the spec's folder when that file exists there.
PATH_KEYS = ("checkpoint", "finetuned", "hf_checkpoint", "vision.checkpoint", "llm.model", "llm.tokenizer")


def read_model_spec(path: str) -> DictConfig:
    """The spec's ``model`` section with its relative weight paths made absolute.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If it is not a spec (no ``model`` section with ``arch`` and ``model_type``, or a run config
            with ``run``/``datasets`` sections) or names a weight file that does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model spec not found: {path}")
    try:
        data = OmegaConf.load(path)
    except Exception as err:  # noqa: BLE001  (YAML errors of several kinds, re-raised with the file named)
        raise ValueError(f"{path} is not a readable YAML model spec: {err}") from err
    run_sections = [name for name in RUN_SECTIONS if isinstance(data, DictConfig) and name in data]
    if run_sections:
        raise ValueError(
            f"{path} is a run config (it has {' and '.join(run_sections)} sections), not a model spec: pass it as "
            "--cfg-path; a model spec holds only a 'model' section naming trained weights (make demo writes "
            "demo_output/model.yaml)"
        )
    model = data.get("model") if isinstance(data, DictConfig) else None
    if not isinstance(model, DictConfig) or not model.get("arch") or not model.get("model_type"):
        raise ValueError(f"{path} is not a model spec: it needs a 'model' section with 'arch' and 'model_type'")
    root = os.path.dirname(os.path.abspath(path))
    for key in PATH_KEYS:
        value = OmegaConf.select(model, key, default=None)
        if not value or not isinstance(value, str) or is_url(value) or os.path.isabs(value):
            continue
        candidate = os.path.join(root, value)
        if os.path.exists(candidate):
            OmegaConf.update(model, key, os.path.abspath(candidate))
        elif key in ("checkpoint", "finetuned", "hf_checkpoint", "vision.checkpoint"):
            raise ValueError(f"{path}: {key} {value!r} not found (looked for {candidate})")
    return model


def spec_options(path: str) -> List[str]:
    """The spec as ``--options`` entries (``model.<key>=<value>``) for LAVIS's ``Config``."""
    return [f"model.{key}={value}" for key, value in _flatten(OmegaConf.to_container(read_model_spec(path)))]


def write_model_spec(path: str, model: Dict[str, Any], comment: str = "") -> str:
    """Write ``model`` (``arch``, ``model_type`` and overrides) as a spec; paths under the spec's folder are
    written relative to it, so the folder can be moved. Returns ``path``."""
    root = os.path.dirname(os.path.abspath(path))
    cfg = OmegaConf.create({"model": model})
    for key in PATH_KEYS:
        value = OmegaConf.select(cfg.model, key, default=None)
        if isinstance(value, str) and os.path.isabs(value) and _inside(value, root):
            OmegaConf.update(cfg.model, key, os.path.relpath(value, root))
    header = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines()) if comment else ""
    os.makedirs(root, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header + OmegaConf.to_yaml(cfg))
    return path


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([os.path.abspath(path), root]) == root


def _flatten(data: Any, prefix: str = "") -> List[tuple]:
    if isinstance(data, dict):
        out: List[tuple] = []
        for key, value in data.items():
            out += _flatten(value, f"{prefix}{key}.")
        return out
    return [(prefix.rstrip("."), _dotlist_value(data))]


def _dotlist_value(value: Any) -> Optional[str]:
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return value
