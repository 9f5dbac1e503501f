"""AIO on HF transformers' InstructBLIP: the same traces and answers as VisLingInstruct with the remapped weights."""
import pytest
import torch
from test_checkpoint import hf_model

from conftest import build_tiny
from lavis_vislinginstruct.aio import AIOCfg, InstructionOptimizer
from lavis_vislinginstruct.models.checkpoint import load_state_dict_checked, remap_hf_instructblip
from lavis_vislinginstruct.models.hf_backend import HFInstructBlipBackend

INSTRUCTIONS = ["Question: what colour is the circle? \n Short answer:", "A short image description:",
                "Question: how many shapes are there? Options: (a) one (b) two \n Answer:"]


@pytest.fixture
def pair(arch):
    """(our tiny model with CMAA off, an HF InstructBLIP with the same weights, the HF backend)."""
    ours = build_tiny(arch, cmaa__enabled=False, aio__max_new_tokens=8).eval()
    hf = hf_model(ours)
    load_state_dict_checked(ours, remap_hf_instructblip(hf.state_dict(), ours.cfg.llm.family), "hf", [])
    llm_tok = ours.llm_tokenizer if ours.cfg.llm.family == "decoder_only" else ours.t5_tokenizer
    backend = HFInstructBlipBackend(hf, llm_tok, ours.tokenizer, ours.cfg.qformer.max_txt_len)
    return ours, hf, backend


def test_visual_prefix_and_ias_agree(pair, images):
    ours, _, backend = pair
    with torch.no_grad():
        mine, _ = ours.visual_prefix(ours.encode_image(images), INSTRUCTIONS)
        theirs, _ = backend.visual_prefix(backend.encode_images(images), range(3), INSTRUCTIONS)
        torch.testing.assert_close(theirs, mine, atol=1e-4, rtol=1e-4)
        ias = InstructionOptimizer(AIOCfg(), backend).alignment_scores(backend.encode_images(images), [0, 1, 2],
                                                                        INSTRUCTIONS)
        expected = ours.pipeline().alignment_scores({"image": images}, INSTRUCTIONS).tolist()
    assert ias == pytest.approx(expected, abs=1e-4)


def test_same_aio_trace_and_answers_on_both_models(pair, images):
    ours, _, backend = pair
    optimizer = InstructionOptimizer(AIOCfg(max_new_tokens=8), backend)
    with torch.no_grad():
        theirs = optimizer.optimize(backend.encode_images(images), INSTRUCTIONS, mode="full")
        answers_ours, mine = ours.generate({"image": images, "text_input": INSTRUCTIONS}, aio="full", num_beams=1,
                                           max_length=6, repetition_penalty=1.0, return_traces=True)
        answers_theirs = backend.answer(images, [t.used for t in theirs], max_new_tokens=6, num_beams=1)
    for a, b in zip(mine, theirs):
        assert a.rewritten == b.rewritten and a.optimized == b.optimized and a.used == b.used
        assert a.comparison_prompt.split(" Score:")[0] == b.comparison_prompt.split(" Score:")[0]
        assert [a.ias_initial, a.ias_rewritten] == pytest.approx([b.ias_initial, b.ias_rewritten], abs=1e-4)
    assert answers_ours == answers_theirs
    assert optimizer.cache_info()["misses"] == 3  # the HF backend memoizes like ours
    with torch.no_grad():
        optimizer.rewrite(INSTRUCTIONS[:1])
        assert optimizer.cache_info()["misses"] == 3  # same weights: memoized
        backend.adapter.lm.get_input_embeddings().weight.mul_(1.5)  # the LLM's weights change in place
        optimizer.rewrite(INSTRUCTIONS[:1])
    assert optimizer.cache_info()["misses"] == 4  # new weights: rewritten again


def test_backend_leaves_the_callers_tokenizers_as_they_were(pair):
    ours, hf, _ = pair
    llm_tok = ours.llm_tokenizer if ours.cfg.llm.family == "decoder_only" else ours.t5_tokenizer
    for tok in (llm_tok, ours.tokenizer):
        tok.truncation_side, tok.padding_side = "right", "right"
    HFInstructBlipBackend(hf, llm_tok, ours.tokenizer, ours.cfg.qformer.max_txt_len)
    assert [(t.truncation_side, t.padding_side) for t in (llm_tok, ours.tokenizer)] == [("right", "right")] * 2
