"""Our greedy decoding loop gives HF greedy ``generate``'s tokens, with and without prompt-lookup drafts."""
import pytest
import torch

from conftest import build_tiny
from lavis_vislinginstruct.models.decoding import _lookup_drafts, greedy_decode

PROMPTS = ["Question: what colour is the circle? \n Short answer:", "Describe it.",
           "There is the text Question: how many shapes are there?. Please modify the text to make it better."]


def hf_rows(lm, embeds, mask, max_new, min_new, eos):
    out = lm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new, min_new_tokens=min_new,
                      do_sample=False, num_beams=1, pad_token_id=eos)
    rows = []
    for row in out.tolist():
        rows.append(row[: row.index(eos) + 1] if eos in row else row)
    return rows


@pytest.fixture
def setup(images):
    model = build_tiny("vislinginstruct_vicuna").eval()
    tok = model.adapter.tokenizer
    tok.padding_side = "left"
    enc = tok(PROMPTS, padding="longest", return_tensors="pt")
    with torch.no_grad():
        prefix, pmask = model.visual_prefix(model.encode_image(images), PROMPTS)
        embeds = torch.cat([prefix, model.adapter.embed(enc.input_ids)], dim=1)
    mask = torch.cat([pmask, enc.attention_mask], dim=1)
    text_ids = [ids[m.bool()].tolist() for ids, m in zip(enc.input_ids, enc.attention_mask)]
    return model, embeds, mask, text_ids


@pytest.mark.parametrize("lookup", [0, 3, 10])
def test_equals_hf_greedy_generate(setup, lookup):
    model, embeds, mask, text_ids = setup
    lm, eos = model.llm, model.llm.generation_config.eos_token_id
    with torch.no_grad():
        free = hf_rows(lm, embeds, mask, 12, 1, eos)
        # make the end-of-sequence token the winner wherever the model's most frequent token would win
        common = max(set(t for r in free for t in r), key=lambda t: sum(r.count(t) for r in free))
        lm.lm_head.weight[eos] = lm.lm_head.weight[common] * 1.05
        for max_new, min_new in [(12, 1), (12, 4), (5, 0)]:
            expected = hf_rows(lm, embeds, mask, max_new, min_new, eos)
            got = greedy_decode(lm, embeds, mask, max_new, [eos], min_new, prompt_ids=text_ids, lookup=lookup)
            assert got == expected
    assert any(r[-1] == eos for r in expected) and any(r[-1] != eos for r in expected)  # both endings covered


def test_lookup_drafts():
    assert _lookup_drafts([5, 6, 7, 8, 5, 6], 2) == [7, 8]  # the suffix (5, 6) occurred before
    assert _lookup_drafts([1, 2, 3], 4) == []
    assert _lookup_drafts([4, 9, 4], 3) == [9, 4]


def test_adapter_uses_the_loop_for_greedy_and_hf_for_beams(setup, images, monkeypatch):
    model, *_ = setup
    import lavis_vislinginstruct.models.llm_adapters as adapters

    calls = []
    real = adapters.greedy_decode
    monkeypatch.setattr(adapters, "greedy_decode", lambda *a, **k: calls.append(k["lookup"]) or real(*a, **k))
    samples = {"image": images, "text_input": PROMPTS}
    greedy = model.generate(samples, num_beams=1, max_length=6, repetition_penalty=1.0)
    model.generate(samples, num_beams=2, max_length=6)
    assert calls == [0]
    monkeypatch.setattr(adapters, "_is_greedy", lambda kwargs: False)  # force HF generate for the same call
    assert model.generate(samples, num_beams=1, max_length=6, repetition_penalty=1.0) == greedy
