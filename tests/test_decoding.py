"""Our greedy decoding loop gives HF greedy ``generate``'s tokens, with and without prompt-lookup drafts."""
import pytest
import torch

from conftest import build_tiny
from lavis_vislinginstruct.models.decoding import _Drafter, greedy_decode

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
    assert _Drafter([5, 6, 7, 8, 5, 6]).drafts(2) == [7, 8]  # the suffix (5, 6) occurred before
    assert _Drafter([1, 2, 3]).drafts(4) == []
    assert _Drafter([4, 9, 4]).drafts(3) == [9, 4]


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


def _reference_drafts(history, k, max_ngram=3):
    """The drafting rule written as a scan: the most recent earlier occurrence of the longest suffix n-gram."""
    for n in range(min(max_ngram, len(history) - 1), 0, -1):
        tail = history[-n:]
        for start in range(len(history) - n - 1, -1, -1):
            if history[start : start + n] == tail:
                return history[start + n : start + n + k]
    return []


def test_incremental_drafter_equals_the_scan_as_a_text_grows():
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        text = torch.randint(0, 4 + trial % 5, (int(torch.randint(0, 6, (1,), generator=g)),), generator=g).tolist()
        drafter = _Drafter(text)
        for _ in range(40):
            k = int(torch.randint(0, 6, (1,), generator=g))
            assert drafter.drafts(k) == _reference_drafts(text, k), (trial, text, k)
            # tokens arrive one or several at a time (accepted drafts), as in greedy_decode
            text.extend(torch.randint(0, 4 + trial % 5, (int(torch.randint(1, 4, (1,), generator=g)),),
                                      generator=g).tolist())


@pytest.mark.parametrize("lookup", [0, 5])
def test_accepted_drafts_eos_and_min_new_tokens_equal_hf(setup, lookup):
    """Longer outputs, where drafts are accepted, rows end at different steps, and the floor on new tokens masks
    EOS at draft positions too."""
    model, embeds, mask, text_ids = setup
    lm, eos = model.llm, model.llm.generation_config.eos_token_id
    passes = []
    lm.register_forward_hook(lambda *args: passes.append(1))
    with torch.no_grad():
        free = hf_rows(lm, embeds, mask, 30, 0, eos)
        # EOS wins wherever the most repeated token of the free run would (rows end inside their repeats)
        common = max(set(t for r in free for t in r), key=lambda t: sum(r.count(t) for r in free))
        lm.lm_head.weight[eos] = lm.lm_head.weight[common] * 1.05
        fewer = False
        for min_new in [0, 12, 30]:
            expected = hf_rows(lm, embeds, mask, 30, min_new, eos)
            passes.clear()
            got = greedy_decode(lm, embeds, mask, 30, [eos], min_new, prompt_ids=text_ids, lookup=lookup)
            assert got == expected, min_new
            fewer |= len(passes) < max(len(r) for r in got)
            if min_new == 12:
                assert any(r[-1] == eos for r in got) and any(len(r) == 30 for r in got)
                assert all(len(r) > 12 for r in got)
    assert fewer == (lookup > 0)  # with drafts, some step took more than one token per row
