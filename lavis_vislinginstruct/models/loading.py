"""Build a registered model and its processors from its packaged config plus ``key=value`` overrides.

``load_model_and_preprocess`` of LAVIS takes no overrides; command-line tools use this so that real weights can
be pointed at with ``--options llm.model=/path/vicuna-7b checkpoint=/path/ckpt.pth``.
"""
from typing import Sequence, Tuple

import torch
from lavis.common.registry import registry
from lavis.models import load_preprocess
from omegaconf import OmegaConf


def load_with_options(name: str, model_type: str, options: Sequence[str] = (), device: str = "cpu") -> Tuple:
    """(model in eval mode on ``device``, vis_processors, txt_processors) for ``name``/``model_type``."""
    cls = registry.get_model_class(name)
    if cls is None:
        known = sorted(n for n in registry.mapping["model_name_mapping"] if n.startswith("vislinginstruct"))
        raise ValueError(f"Unknown model {name!r}; VisLingInstruct models: {known}")
    cfg = OmegaConf.load(cls.default_config_path(model_type))
    for option in options:
        if "=" not in option:
            raise ValueError(f"option {option!r} is not key=value")
    cfg.model = OmegaConf.merge(cfg.model, OmegaConf.from_dotlist(list(options)))
    model = cls.from_config(cfg.model).eval()
    if torch.device(device).type == "cpu":
        model = model.float()
    vis, txt = load_preprocess(cfg.preprocess)
    return model.to(device), vis, txt
