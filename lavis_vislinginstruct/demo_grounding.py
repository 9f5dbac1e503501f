"""The demo base model's grounding phase: the visual pathway learns the world before the LLM reads it.

BLIP-2, whose Q-Former InstructBLIP inherits, trains the Q-Former with vision-language objectives of its own before
connecting it to an LLM (its first pretraining stage). The demo's stand-in does the same on the generated world: the
ViT, the Q-Former (reading the question, as InstructBLIP's does) and the projection learn to answer the world's
questions through a linear classifier on the mean of the visual tokens, over every short answer of the world. Without
it, the LM loss alone teaches the visual tokens little more than the image's colours within a CPU budget (a single
object's shape stays at chance; ``docs/demo-measurements.md``). The classifier is dropped afterwards; stage A starts
from the grounded weights with everything trainable.

Questions are drawn fresh for every batch from training-split scenes: colour, shape, size, count, existence and
position questions (GQA-style, or bare as in a chat), VSR statements, and the word of a scene.
"""

import logging
import os
import random
import time
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F

from lavis_vislinginstruct.world.instructions import (
    VSR_ANSWERS,
    gqa_instruction,
    textvqa_instruction,
    vsr_instruction,
)
from lavis_vislinginstruct.world.scenes import COLORS, SHAPES, SIZES, WORDS, render_scene, sample_scene
from lavis_vislinginstruct.world.tasks import ANSWER_SPACES, COUNT_ANSWERS, YES_NO, make_question, make_statement

logger = logging.getLogger("lavis_vislinginstruct.demo")

#: Every short answer of the world, the classifier's classes.
ANSWERS: Tuple[str, ...] = tuple(dict.fromkeys(
    [*COLORS, *SHAPES, *SIZES, *COUNT_ANSWERS, *YES_NO, *ANSWER_SPACES["where"], *VSR_ANSWERS, *WORDS]))
QUESTION_TYPES = ("color", "shape", "size", "count", "exist", "where")


def draw(rng: random.Random) -> Tuple[Any, str, str, str]:
    """One (scene, instruction, answer, question type) of a training-split scene."""
    scene = sample_scene(rng, "train")
    kinds = list(QUESTION_TYPES) + (["vsr"] if len(scene.objects) >= 2 else []) + (["text"] if scene.word else [])
    kind = rng.choice(kinds)
    if kind == "vsr":
        statement = make_statement(scene, rng.randrange(2), rng)
        return scene, vsr_instruction(statement.text), VSR_ANSWERS[statement.label], kind
    if kind == "text":
        question = make_question(scene, "text", rng)
        return scene, textvqa_instruction(question.text, [scene.word]), scene.word, kind
    question = make_question(scene, kind, rng)
    text = question.text if rng.random() < 0.3 else gqa_instruction(question.text)  # bare, as in a chat, or GQA's
    return scene, text, question.answer, kind


def ground(model, vis_processor, updates: int, batch_size: int, lr: float, seed: int, image_size: int,
           log_every: int = 100) -> Dict[str, Any]:
    """Train ``model``'s ViT, Q-Former and projection (CMAA off) through a linear answer classifier, in place.

    Returns:
        ``{"seconds", "losses"}`` (mean loss per ``log_every`` updates) and ``accuracy``, the classifier's per
        question type on the last ``log_every`` batches.
    """
    torch.manual_seed(seed)
    rng = random.Random(f"grounding-{seed}")
    head = torch.nn.Linear(model.proj.out_features, len(ANSWERS))
    params = [p for name, p in model.named_parameters() if not name.startswith(("llm_model.", "llm."))]
    params = [p for p in params if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warmup = min(100, updates // 10 + 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: min(1.0, (k + 1) / warmup) * max(0.0, 1.0 - k / updates))
    model.train()
    start = time.perf_counter()
    losses: List[float] = []
    window: List[float] = []
    right: List[Tuple[str, bool]] = []
    for step in range(updates):
        batch = [draw(rng) for _ in range(batch_size)]
        image = torch.stack([vis_processor(render_scene(item[0], image_size)) for item in batch])
        target = torch.tensor([ANSWERS.index(item[2]) for item in batch])
        embeds, _ = model.visual_prefix(model.encode_image(image), [item[1] for item in batch], cmaa=False)
        logits = head(embeds.mean(dim=1))
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        window.append(loss.item())
        right += [(item[3], bool(ok)) for item, ok in zip(batch, (logits.argmax(-1) == target).tolist())]
        right = right[-log_every * batch_size:]
        if (step + 1) % log_every == 0 or step + 1 == updates:
            losses.append(round(sum(window) / len(window), 4))
            logger.info("[grounding] %d/%d updates, loss %.4f, accuracy %s", step + 1, updates, losses[-1],
                        _per_kind(right))
            window = []
    model.eval()
    return {"seconds": round(time.perf_counter() - start, 1), "losses": losses, "accuracy": _per_kind(right)}


def _per_kind(right: List[Tuple[str, bool]]) -> Dict[str, float]:
    kinds = sorted({kind for kind, _ in right})
    return {k: round(sum(ok for kind, ok in right if kind == k) / sum(kind == k for kind, _ in right), 3)
            for k in kinds}


def write_grounded(init: str, path: str, updates: int, batch_size: int, lr: float, seed: int,
                   image_size: int) -> Dict[str, Any]:
    """Load the demo model from ``init`` (a LAVIS-layout state dict), ground it and write it to ``path``."""
    from lavis_vislinginstruct.demo_stages import ARCH, MODEL_TYPE
    from lavis_vislinginstruct.models.loading import load_with_options

    model, vis, _ = load_with_options(ARCH, MODEL_TYPE, [f"checkpoint={init}", "cmaa.enabled=False",
                                                         "freeze_qformer=False", "vision.freeze=False"], "cpu")
    result = ground(model, vis["eval"], updates, batch_size, lr, seed, image_size)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"model": model.full_state_dict()}, path)
    return {**result, "checkpoint": path}
