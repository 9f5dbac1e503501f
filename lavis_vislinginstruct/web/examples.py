"""Example images and questions of the web demo, from the demo world (:mod:`lavis_vislinginstruct.world`).

Images: the held-out GQA-format scenes of ``demo_output/world`` when ``make demo`` has written it, else a handful
of held-out scenes rendered into a temporary folder. Questions: bare questions as a person types them in a chat (the
world's ``chat`` family, which the demo's base model learned to answer and AIO to rewrite), then one in the GQA
benchmark format (paper Table 4).
"""
import glob
import os
import random
import tempfile
from typing import List, Optional

from ..processors.templates import TEMPLATES, format_instruction

WORLD_IMAGES = os.path.join("demo_output", "world", "gqa", "images")
IMAGE_SIZE = 32  # the demo world's image size (lavis_vislinginstruct.demo.IMAGE_SIZE)


def example_images(n: int = 6, folder: Optional[str] = None, seed: int = 0) -> List[str]:
    """Paths of ``n`` example images (see the module docstring); ``folder`` overrides the demo world's."""
    folder = folder or WORLD_IMAGES
    found = sorted(glob.glob(os.path.join(folder, "*.jpg")) + glob.glob(os.path.join(folder, "*.png")))
    if found:
        return [os.path.abspath(p) for p in found[:n]]
    from ..world import render_scene, sample_scene

    out = tempfile.mkdtemp(prefix="vli_web_examples_")
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        path = os.path.join(out, f"scene_{i}.png")
        render_scene(sample_scene(rng, "eval"), IMAGE_SIZE).save(path)
        paths.append(path)
    return paths


def example_questions() -> List[str]:
    """A few questions about the demo world: bare chat questions in user style, then one GQA-format question."""
    bare = ("hey, so what colour would you say the shape on the left is?", "what shape is the yellow thing?",
            "how many shapes can you see?", "is the thing at the bottom small or big?")
    return [*bare, format_instruction(TEMPLATES["gqa"], question="What color is the left object?")]
