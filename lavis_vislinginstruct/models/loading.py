"""Build a registered model and its processors from its packaged config, a model spec and ``key=value`` overrides.

``load_model_and_preprocess`` of LAVIS takes no overrides; command-line tools use this so that real weights can
be pointed at with ``--options llm.model=/path/vicuna-7b checkpoint=/path/ckpt.pth``, or a trained model named by
one spec file (``--model-spec demo_output/model.yaml``, see :mod:`.spec`).

Options are model settings, so the ``model.`` prefix that ``train.py``/``evaluate.py`` need may be left out:
``cmaa.enabled=False`` and ``model.cmaa.enabled=False`` are the same option here. ``run.*``/``datasets.*`` keys
and the model's name and type (use the arguments) are refused; unknown keys and bad values are refused by the
typed config, which names them.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from lavis.common.registry import registry
from lavis.models import load_preprocess
from omegaconf import OmegaConf

from .spec import read_model_spec


def model_class(name: str):
    """The registered VisLingInstruct class ``name``, or a ValueError listing the registered ones."""
    cls = registry.get_model_class(name)
    if cls is None:
        known = sorted(n for n in registry.mapping["model_name_mapping"] if n.startswith("vislinginstruct"))
        raise ValueError(f"Unknown model {name!r}; VisLingInstruct models: {known}")
    return cls


def resolve_model(name: Optional[str], model_type: Optional[str], spec: Optional[str]) -> Tuple[str, str, dict]:
    """(arch, model_type, overrides) from explicit names and/or a spec; names that contradict the spec are an error."""
    overrides: dict = {}
    if spec:
        section = OmegaConf.to_container(read_model_spec(spec))
        arch, kind = section.pop("arch"), section.pop("model_type")
        for given, found, what in ((name, arch, "model"), (model_type, kind, "model type")):
            if given and given != found:
                raise ValueError(f"{spec} names {what} {found!r}, but {given!r} was asked for")
        name, model_type, overrides = arch, kind, section
    if not name or not model_type:
        raise ValueError("name a model and model type, or give a model spec")
    return name, model_type, overrides


def load_with_options(
    name: Optional[str] = None,
    model_type: Optional[str] = None,
    options: Sequence[str] = (),
    device: str = "cpu",
    spec: Optional[str] = None,
) -> Tuple:
    """(model in eval mode on ``device``, vis_processors, txt_processors).

    Args:
        name: Registered model name (``vislinginstruct_vicuna``); optional with ``spec``.
        model_type: Its model type (``vicuna7b``, ``tiny``, ``demo``); optional with ``spec``.
        options: ``key=value`` overrides of the model config (applied last).
        device: Where the model goes.
        spec: A model spec file (its settings sit between the packaged config and ``options``).
    """
    name, model_type, overrides = resolve_model(name, model_type, spec)
    cls = model_class(name)
    cfg = OmegaConf.load(cls.default_config_path(model_type))
    cfg.model = OmegaConf.merge(cfg.model, overrides, OmegaConf.from_dotlist(model_options(options)))
    model = cls.from_config(cfg.model).eval()
    if torch.device(device).type == "cpu":
        model = model.float()
    vis, txt = load_preprocess(cfg.preprocess)
    return model.to(device), vis, txt


def model_options(options: Sequence[str]) -> List[str]:
    """``key=value`` model options with the optional ``model.`` prefix removed (module docstring).

    Raises:
        ValueError: For an option that is not ``key=value``, a ``run``/``datasets`` key, or ``arch``/``model_type``.
    """
    out = []
    for option in options:
        key, sep, value = str(option).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"option {option!r} is not key=value (e.g. cmaa.enabled=False)")
        if key.startswith("model."):
            key = key[len("model."):]
        head = key.split(".")[0]
        if head in ("run", "datasets"):
            raise ValueError(f"option {option!r}: only model settings apply here ({head}.* are train.py/evaluate.py's)")
        if head in ("arch", "model_type"):
            raise ValueError(f"option {option!r}: name the model and its type with their own arguments (or a spec)")
        out.append(f"{key}={value}")
    return out
