"""The demo's generated visual world: seeded scenes, questions and the official-format files built from them.

``python -m lavis_vislinginstruct.world --out DIR --seed 0 --n-train N --n-eval M`` writes a LLaVA-Instruct-150K style
training set and five small evaluation sets (Flickr30K Karpathy, GQA, VSR, ScienceQA, TextVQA formats) of flat shapes
and short words, small enough for a tiny VisLingInstruct to learn on a CPU in minutes (see :mod:`.writer`).
"""

from .scenes import Scene, SceneObject, render_scene, sample_scene, scene_split
from .writer import generate_world

__all__ = ["Scene", "SceneObject", "generate_world", "render_scene", "sample_scene", "scene_split"]
