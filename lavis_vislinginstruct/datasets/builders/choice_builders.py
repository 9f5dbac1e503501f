"""Builders of the zero-shot ranking benchmarks (VisLingInstruct, NAACL 2024, Appendix D)."""

from lavis.common.registry import registry

from lavis_vislinginstruct.datasets.builders.base import VliBuilder
from lavis_vislinginstruct.datasets.datasets.choice_datasets import (
    HatefulMemesEvalDataset,
    IconQAEvalDataset,
    ScienceQAEvalDataset,
    VSREvalDataset,
)
from lavis_vislinginstruct.datasets.datasets.dialog_datasets import VisDialEvalDataset


@registry.register_builder("vli_vsr")
class VSRBuilder(VliBuilder):
    """VSR zero-shot test (1222 statements), split ``test``; ranks "true"/"false"."""

    eval_dataset_cls = VSREvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/vsr/defaults.yaml"}


@registry.register_builder("vli_iconqa")
class IconQABuilder(VliBuilder):
    """IconQA multi-text-choice test (6316 problems), split ``test``."""

    eval_dataset_cls = IconQAEvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/iconqa/defaults.yaml"}


@registry.register_builder("vli_scienceqa")
class ScienceQABuilder(VliBuilder):
    """ScienceQA test problems with an image (2017), split ``test``."""

    eval_dataset_cls = ScienceQAEvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/scienceqa/defaults.yaml"}


@registry.register_builder("vli_hateful_memes")
class HatefulMemesBuilder(VliBuilder):
    """Hateful Memes dev_seen + dev_unseen (1040), split ``val``; ranks "no"/"yes" (ROC-AUC)."""

    eval_dataset_cls = HatefulMemesEvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/hateful_memes/defaults.yaml"}


@registry.register_builder("vli_visdial")
class VisDialBuilder(VliBuilder):
    """Visual Dialog v1.0 val, split ``val``: the last round of each of the 2064 dialogs (``rounds: all``: the 20640
    rounds); ranks 100 options per round."""

    eval_dataset_cls = VisDialEvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/visdial/defaults.yaml"}
