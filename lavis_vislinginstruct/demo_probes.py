"""Probes of the demo model: what it knows of the world, question type by question type.

A probe set is fresh scenes of one split of the world (:func:`lavis_vislinginstruct.world.scenes.scene_split`) with
one question each, of these types:

* ``color``, ``shape``, ``size``, ``count``, ``where``: a GQA-style instruction (``Question: .. Short answer:``)
  with the question in its first (most common) phrasing; the answer is the short answer (``where``: the cell, e.g.
  ``top left``);
* ``vsr``: a VSR instruction with a statement in its common wording; the answer ``true`` or ``false``;
* ``bare``: a colour, shape or size question in user style as a person types it in a chat, with no benchmark
  wrapper; right when the answer word is among the reply's words.

:func:`aio_content` probes AIO itself: user-style instructions of four benchmark families (as the held-out sets ask)
about fresh scenes, optimized by AIO (full, the paper's unguarded selection) on the base model, and read back by
:func:`lavis_vislinginstruct.world.content.content_kept`: how often the rewrite and the instruction AIO would use
still ask what the initial one asks.

The demo measures its choices on ``train``-split probes and reports the ``eval``-split ones against its targets
(never tuned on). Answers are greedy, as a row of Table 2 answers (:mod:`lavis_vislinginstruct.inference.rows`).
"""

import random
import re
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch

from lavis_vislinginstruct.metrics.bootstrap import mean_interval
from lavis_vislinginstruct.metrics.vqa_accuracy import normalize_vqa_answer
from lavis_vislinginstruct.world.content import content_kept
from lavis_vislinginstruct.world.instructions import (
    VSR_ANSWERS,
    available_families,
    benchmark_item,
    gqa_instruction,
    vsr_instruction,
)
from lavis_vislinginstruct.world.scenes import Scene, render_scene, sample_scene
from lavis_vislinginstruct.world.tasks import make_question, make_statement
from lavis_vislinginstruct.world.user_style import user_question

QUESTION_TYPES = ("color", "shape", "size", "count", "where")
TYPES = QUESTION_TYPES + ("vsr", "bare")
BARE_TYPES = ("color", "shape", "size")
AIO_FAMILIES = ("gqa", "vsr", "scienceqa", "textvqa")


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
            estimate, ci = _percent_interval(right)
            out[kind] = {"accuracy": estimate, "ci": ci, "n": len(right)}
    return out


def _percent_interval(flags: Sequence[float]) -> Tuple[float, List[float]]:
    """The share of true ``flags`` (x100) and its 95 % bootstrap interval, rounded to one decimal."""
    interval = mean_interval([100.0 * float(x) for x in flags])
    return round(interval.estimate, 1), [round(interval.low, 1), round(interval.high, 1)]


def aio_items(split: str, n_per_family: int, seed: int) -> List[Tuple[str, Scene, str]]:
    """``(family, scene, user-style instruction)`` for ``n_per_family`` fresh ``split`` scenes of each of
    :data:`AIO_FAMILIES`."""
    rng = random.Random(f"aio-probe-{split}-{seed}")
    items = []
    for family in AIO_FAMILIES:
        drawn = 0
        while drawn < n_per_family:
            scene = sample_scene(rng, split, min_objects=2 if family == "vsr" else 1,
                                 word=True if family == "textvqa" else None)
            if family in available_families(scene):
                items.append((family, scene, benchmark_item(scene, family, rng).user_instruction(rng)))
                drawn += 1
    return items


def aio_content(pipeline, vis_processor, items: Sequence[Tuple[str, Scene, str]], image_size: int,
                batch_size: int = 64) -> Dict[str, Dict[str, object]]:
    """Per family, how often AIO's rewrite and the instruction it uses keep the initial instruction's content (x100,
    with 95 % bootstrap intervals). ``pipeline`` is a full-AIO pipeline."""
    kept: Dict[str, List[Tuple[bool, bool]]] = {}
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        image = torch.stack([vis_processor(render_scene(scene, image_size)) for _, scene, _ in batch])
        traces = pipeline.optimize({"image": image, "text_input": [text for _, _, text in batch]})
        for (family, _, _), trace in zip(batch, traces):
            kept.setdefault(family, []).append((content_kept(trace.initial, trace.rewritten),
                                                content_kept(trace.initial, trace.used)))
    out: Dict[str, Dict[str, object]] = {}
    for family, pairs in kept.items():
        out[family] = {"n": len(pairs)}
        for k, name in enumerate(("rewrite_content_kept", "content_kept")):
            estimate, ci = _percent_interval([pair[k] for pair in pairs])
            out[family][name] = {"estimate": estimate, "ci": ci}
    return out
