"""Tiny models of both families: training signal, frozen parts, generation and input validation."""
import re

import pytest
import torch

from conftest import build_tiny


def batch(images):
    return {
        "image": images,
        "text_input": ["What color is the circle?", "Describe the image.", "Is the square left of the circle?"],
        "text_output": ["red", "a small blue square", "yes"],
    }


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_only_projection_trains(tiny_model):
    proj = tiny_model.adapter.proj_attr
    assert trainable(tiny_model) == {f"{proj}.weight", f"{proj}.bias"}
    assert tiny_model.cmaa is not None and sum(p.numel() for p in tiny_model.cmaa.parameters()) == 0


def test_visual_prefix_has_64_tokens_shape_with_cmaa(arch, images):
    on = build_tiny(arch).eval()
    off = build_tiny(arch, **{"cmaa.enabled": False}).eval()
    q = on.cfg.qformer.num_query_token
    emb_on, mask_on = on.visual_prefix(on.encode_image(images), ["a", "bb cc", "what is it"])
    emb_off, _ = off.visual_prefix(off.encode_image(images), ["a", "bb cc", "what is it"])
    width = on.proj.out_features
    assert emb_on.shape == (3, 2 * q, width) and mask_on.shape == (3, 2 * q) and bool(mask_on.all())
    assert emb_off.shape == (3, q, width)
    # same weights (same seed): the first Q tokens are the query outputs in both
    torch.testing.assert_close(emb_on[:, :q], emb_off)


def test_loss_finite_and_falls_training_projection_only(arch, images):
    model = build_tiny(arch).train()
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    s = batch(images)
    losses = []
    for _ in range(8):
        loss = model(s)["loss"]
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        grads = {n for n, p in model.named_parameters() if p.grad is not None}
        assert grads == trainable(model)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
    for n, p in model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), f"frozen parameter {n} changed"


def test_frozen_parts_stay_in_eval_mode(tiny_model):
    tiny_model.train()
    assert not tiny_model.visual_encoder.training and not tiny_model.llm.training


def test_generate_one_string_per_sample(tiny_model, images):
    out = tiny_model.generate(batch(images), num_beams=2, max_length=5)
    assert isinstance(out, list) and len(out) == 3 and all(isinstance(t, str) for t in out)
    sampled = tiny_model.generate(batch(images), use_nucleus_sampling=True, num_captions=2, max_length=4)
    assert len(sampled) == 6


def test_generate_is_batch_independent(tiny_model, images):
    s = batch(images)
    together = tiny_model.generate(s, num_beams=1, max_length=6)
    alone = [tiny_model.generate({"image": images[i : i + 1], "text_input": [s["text_input"][i]]}, num_beams=1,
                                 max_length=6)[0] for i in range(3)]
    assert together == alone


def test_predict_answers_formats_prompt(tiny_model, images):
    s = {"image": images[:2], "text_input": ["what is it", "how many"]}
    direct = tiny_model.generate({"image": images[:2], "text_input": ["Question: what is it Short answer:",
                                                                      "Question: how many Short answer:"]},
                                 num_beams=2, max_length=4, length_penalty=0 if tiny_model.cfg.llm.family ==
                                 "decoder_only" else -1)
    assert tiny_model.predict_answers(s, num_beams=2, max_len=4, prompt="Question: {} Short answer:") == direct


@pytest.mark.parametrize(
    "samples, message",
    [
        ({"text_input": ["a", "b"]}, "3 images but 2 instructions"),
        ({"text_input": ["a", "  ", "c"]}, "is empty"),
        ({"text_input": ["a", "b", "c"], "image": torch.zeros(3, 32, 32)}, "(B, 3, H, W)"),
    ],
)
def test_bad_generation_input(tiny_model, images, samples, message):
    s = {"image": images, **samples}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny_model.generate(s, max_length=3)


def test_forward_rejects_mismatched_targets(tiny_model, images):
    with pytest.raises(ValueError, match="3 instructions but 2 text_output"):
        tiny_model({"image": images, "text_input": ["a", "b", "c"], "text_output": ["x", "y"]})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"cmaa": {"enabled": "maybe"}}, "model.cmaa.enabled must be True or False, got 'maybe'"),
        ({"aio": {"num_beams": "abc"}}, "model.aio.num_beams must be an integer, got 'abc'"),
        ({"aio": {"mode": "fancy"}}, "model.aio.mode must be one of off, rewrite, full, got 'fancy'"),
        ({"aio": {"guard": "strict"}}, "model.aio.guard must be one of none, content"),
        ({"llm": {"family": "rnn"}}, "model.llm.family must be one of decoder_only, encoder_decoder"),
        ({"cmaa": True}, "model.cmaa is a section"),
    ],
)
def test_config_values_are_checked_on_load(overrides, message):
    from lavis_vislinginstruct.models.config import VisLingInstructCfg

    with pytest.raises(ValueError, match=re.escape(message)):
        VisLingInstructCfg.from_omegaconf(overrides)


def test_yaml_off_reads_as_the_off_mode():
    from lavis_vislinginstruct.models.config import VisLingInstructCfg

    assert VisLingInstructCfg.from_omegaconf({"aio": {"mode": False}}).aio.mode == "off"
