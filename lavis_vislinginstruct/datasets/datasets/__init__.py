"""Dataset classes: official annotation files → samples of the plugin's ``samples`` contract."""

from lavis_vislinginstruct.datasets.datasets.base import VliDataset, collate_samples
from lavis_vislinginstruct.datasets.datasets.caption_datasets import Flickr30kEvalDataset, NoCapsEvalDataset
from lavis_vislinginstruct.datasets.datasets.choice_datasets import (
    HatefulMemesEvalDataset,
    IconQAEvalDataset,
    ScienceQAEvalDataset,
    VSREvalDataset,
)
from lavis_vislinginstruct.datasets.datasets.dialog_datasets import VisDialEvalDataset
from lavis_vislinginstruct.datasets.datasets.instruct_datasets import LLaVAInstructDataset
from lavis_vislinginstruct.datasets.datasets.vqa_datasets import GQAEvalDataset, TextVQAEvalDataset, VizWizEvalDataset

__all__ = [
    "VliDataset",
    "collate_samples",
    "Flickr30kEvalDataset",
    "NoCapsEvalDataset",
    "HatefulMemesEvalDataset",
    "IconQAEvalDataset",
    "ScienceQAEvalDataset",
    "VSREvalDataset",
    "VisDialEvalDataset",
    "LLaVAInstructDataset",
    "GQAEvalDataset",
    "TextVQAEvalDataset",
    "VizWizEvalDataset",
]
