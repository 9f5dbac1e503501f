"""The grounding phase of the demo's base model (``demo_grounding``): what it trains and what it asks."""

import random

import torch

from lavis_vislinginstruct import demo_grounding as grounding
from lavis_vislinginstruct.models.loading import load_with_options
from lavis_vislinginstruct.world.content import read_content


def test_questions_are_the_worlds_with_their_answers():
    rng = random.Random(0)
    items = [grounding.draw(rng) for _ in range(400)]
    kinds = {kind for *_, kind in items}
    assert kinds == set(grounding.QUESTION_TYPES) | {"vsr", "text"}
    for scene, text, answer, kind in items:
        assert answer in grounding.ANSWERS
        if kind == "text":
            assert answer == scene.word
        elif kind != "vsr":
            assert read_content(text) is not None  # a question of the world, bare or GQA-wrapped
    assert any("Question:" not in text for _, text, _, kind in items if kind in grounding.QUESTION_TYPES)


def test_grounding_trains_the_visual_pathway_and_not_the_llm():
    torch.manual_seed(0)
    model, vis, _ = load_with_options("vislinginstruct_vicuna", "demo", ["cmaa.enabled=False", "freeze_qformer=False",
                                                                         "vision.freeze=False"])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    result = grounding.ground(model, vis["eval"], updates=3, batch_size=4, lr=1e-3, seed=0, image_size=32,
                              log_every=3)
    changed = {name.split(".")[0] for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {"visual_encoder", "Qformer", "query_tokens", "llm_proj", "ln_vision"}
    assert len(result["losses"]) == 1 and set(result["accuracy"]) <= set(grounding.QUESTION_TYPES) | {"vsr", "text"}
    assert not model.training
