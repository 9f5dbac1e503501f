"""``vli_*`` dataset builders (declarative, LAVIS ``vqa_builder.py`` style)."""

from lavis_vislinginstruct.datasets.builders import (  # noqa: F401
    caption_builders,
    choice_builders,
    instruct_builders,
    vqa_builders,
)
from lavis_vislinginstruct.datasets.builders.base import VliBuilder  # noqa: F401
