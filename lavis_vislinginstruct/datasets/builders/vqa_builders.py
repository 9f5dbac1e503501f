"""Builders of the zero-shot open-ended VQA benchmarks (VisLingInstruct, NAACL 2024, Appendix D)."""

from lavis.common.registry import registry

from lavis_vislinginstruct.datasets.builders.base import VliBuilder
from lavis_vislinginstruct.datasets.datasets.vqa_datasets import (
    GQAEvalDataset,
    TextVQAEvalDataset,
    VizWizEvalDataset,
)


@registry.register_builder("vli_gqa")
class GQABuilder(VliBuilder):
    """GQA test-dev balanced (12578 questions), split ``val`` as in LAVIS's GQA configs."""

    eval_dataset_cls = GQAEvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/gqa/defaults.yaml"}


@registry.register_builder("vli_vizwiz")
class VizWizBuilder(VliBuilder):
    """VizWiz-VQA val (4319 questions, the paper's "test-dev"), split ``val``."""

    eval_dataset_cls = VizWizEvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/vizwiz/defaults.yaml"}


@registry.register_builder("vli_textvqa")
class TextVQABuilder(VliBuilder):
    """TextVQA val (5000 questions) with Rosetta OCR tokens, split ``val``."""

    eval_dataset_cls = TextVQAEvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/textvqa/defaults.yaml"}
