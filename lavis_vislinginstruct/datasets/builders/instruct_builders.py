"""Builder of the training data, LLaVA-Instruct-150K (VisLingInstruct, NAACL 2024, section 4.1)."""

from lavis.common.registry import registry

from lavis_vislinginstruct.datasets.builders.base import VliBuilder
from lavis_vislinginstruct.datasets.datasets.instruct_datasets import LLaVAInstructDataset


@registry.register_builder("vli_llava_instruct_150k")
class LLaVAInstruct150kBuilder(VliBuilder):
    """LLaVA-Instruct-150K on COCO train2017, split ``train``: one sample per conversation."""

    train_dataset_cls = LLaVAInstructDataset
    DATASET_CONFIG_DICT = {"default": "configs/datasets/llava_instruct_150k/defaults.yaml"}
