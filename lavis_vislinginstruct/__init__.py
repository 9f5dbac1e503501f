"""lavis-vislinginstruct: VisLingInstruct (NAACL 2024) as a plugin for Salesforce LAVIS.

``import lavis_vislinginstruct`` registers the models, processors, datasets, tasks and runners with LAVIS's
registry, after which ``lavis.models.load_model_and_preprocess("vislinginstruct_vicuna", "vicuna7b")`` works.
:class:`VisLingInstructPipeline` answers with a loaded model as one row of Table 2 (AIO around the model).
"""
import importlib
import logging
import warnings

warnings.filterwarnings("ignore", category=FutureWarning, module="timm")

import lavis  # noqa: E402,F401  (LAVIS registers its own classes first)

__version__ = "0.1.0"

_SUBPACKAGES = ("models", "processors", "datasets", "tasks", "runners")

for _name in _SUBPACKAGES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as err:  # a subpackage without modules yet
        if err.name != f"{__name__}.{_name}":
            raise
        logging.getLogger(__name__).debug("subpackage %s not present", _name)

from .inference import ROWS, VisLingInstructPipeline  # noqa: E402,F401
