"""Builders of the zero-shot captioning benchmarks (VisLingInstruct, NAACL 2024, Appendix D)."""

from lavis.common.registry import registry

from lavis_vislinginstruct.datasets.builders.base import VliBuilder
from lavis_vislinginstruct.datasets.datasets.caption_datasets import Flickr30kEvalDataset, NoCapsEvalDataset


@registry.register_builder("vli_flickr30k")
class Flickr30kBuilder(VliBuilder):
    """Flickr30K Karpathy test (1000 images), split ``test``."""

    eval_dataset_cls = Flickr30kEvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/flickr30k/defaults.yaml"}


@registry.register_builder("vli_nocaps")
class NoCapsBuilder(VliBuilder):
    """NoCaps val (4500 images), split ``val``."""

    eval_dataset_cls = NoCapsEvalDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/nocaps/defaults.yaml"}
