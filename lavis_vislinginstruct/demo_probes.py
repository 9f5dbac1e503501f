"""Probes of the demo model: what it knows of the world, question type by question type.

A probe set is fresh scenes of one split of the world (:func:`lavis_vislinginstruct.world.scenes.scene_split`) with
one question each, of these types:

* ``color``, ``shape``, ``size``, ``count``, ``where``: a GQA-style instruction (``Question: .. Short answer:``)
  with the question in its first (most common) phrasing; the answer is the short answer (``where``: the cell, e.g.
  ``top left``);
* ``vsr``: a VSR instruction with a statement in its common wording; the answer ``true`` or ``false``;
* ``bare``: a colour, shape or size question in user style as a person types it in a chat, with no benchmark
  wrapper; right when the answer word is among the reply's words.

The demo measures its choices on ``train``-split probes and reports the ``eval``-split ones against its targets
(never tuned on). Answers are greedy, as a row of Table 2 answers (:mod:`lavis_vislinginstruct.inference.rows`).
"""

import random
import re
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch

from lavis_vislinginstruct.metrics.bootstrap import mean_interval
from lavis_vislinginstruct.metrics.vqa_accuracy import normalize_vqa_answer
from lavis_vislinginstruct.world.instructions import VSR_ANSWERS, gqa_instruction, vsr_instruction
from lavis_vislinginstruct.world.scenes import render_scene, sample_scene
from lavis_vislinginstruct.world.tasks import make_question, make_statement
from lavis_vislinginstruct.world.user_style import user_question

QUESTION_TYPES = ("color", "shape", "size", "count", "where")
TYPES = QUESTION_TYPES + ("vsr", "bare")
BARE_TYPES = ("color", "shape", "size")


@dataclass(frozen=True)
class ProbeItem:
    """One probe question.

    Attributes:
        kind: One of :data:`TYPES`.
        scene: The scene asked about.
        instruction: The text the model reads.
        answer: The expected answer.
    """

    kind: str
    scene: object
    instruction: str
    answer: str


def probe_items(split: str, n_per_type: int, seed: int, types: Sequence[str] = TYPES) -> List[ProbeItem]:
    """``n_per_type`` probe questions of each of ``types`` about fresh ``split`` scenes (seeded)."""
    unknown = sorted(set(types) - set(TYPES))
    if unknown:
        raise ValueError(f"unknown probe types {unknown}; choose from {list(TYPES)}")
    rng = random.Random(f"probe-{split}-{seed}")
    items = []
    for kind in types:
        for _ in range(n_per_type):
            if kind == "vsr":
                scene = sample_scene(rng, split, min_objects=2, word=False)
                statement = make_statement(scene, rng.randrange(2), rng, phrasing=0)
                items.append(ProbeItem(kind, scene, vsr_instruction(statement.text), VSR_ANSWERS[statement.label]))
            elif kind == "bare":
                scene = sample_scene(rng, split)
                question = make_question(scene, rng.choice(BARE_TYPES), rng)
                items.append(ProbeItem(kind, scene, user_question(question, rng), question.answer))
            else:
                scene = sample_scene(rng, split)
                question = make_question(scene, kind, rng, phrasing=0)
                items.append(ProbeItem(kind, scene, gqa_instruction(question.text), question.answer))
    return items


def is_right(item: ProbeItem, reply: str) -> bool:
    """Whether ``reply`` answers ``item``: the normalized short answer, or for ``bare`` the answer among its words."""
    if item.kind == "bare":
        return item.answer in re.findall(r"[a-z0-9]+", reply.lower())
    return normalize_vqa_answer(reply) == item.answer


def answer_items(pipeline, vis_processor, items: Sequence[ProbeItem], image_size: int,
                 batch_size: int = 64) -> List[str]:
    """The replies of ``pipeline`` (a :class:`~lavis_vislinginstruct.inference.pipeline.VisLingInstructPipeline`)
    to ``items``, in order."""
    replies: List[str] = []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        image = torch.stack([vis_processor(render_scene(it.scene, image_size)) for it in batch])
        replies += pipeline.generate({"image": image, "text_input": [it.instruction for it in batch]})
    return replies


def score(items: Sequence[ProbeItem], replies: Sequence[str]) -> Dict[str, Dict[str, object]]:
    """Accuracy (x100) with its 95 % bootstrap interval per probe type."""
    out: Dict[str, Dict[str, object]] = {}
    for kind in TYPES:
        right = [float(is_right(it, r)) for it, r in zip(items, replies) if it.kind == kind]
        if right:
            interval = mean_interval([100.0 * x for x in right])
            out[kind] = {"accuracy": round(interval.estimate, 1), "ci": [round(interval.low, 1),
                                                                         round(interval.high, 1)], "n": len(right)}
    return out
