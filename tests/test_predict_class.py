"""Prefix-shared ranking equals scoring every candidate on its own, unpadded, from scratch."""
import pytest
import torch

PROMPTS = ["Question: which colour is the circle? Options: (a) red (b) blue (c) green Answer:",
           "Is it hateful?",
           "Context: a tiny world. Question: how many shapes are there in the picture?"]
CANDIDATES = [["red", "blue", "dark green"], ["no", "yes"], ["one", "two", "three", "four or more shapes", "0"]]


def brute_force(model, images, prompts, candidates):
    """Per (sample, candidate): one unpadded LLM pass over the whole sequence; NLL of the candidate tokens."""
    out = []
    for i, cands in enumerate(candidates):
        embeds = model.encode_image(images[i : i + 1])
        prefix, _ = model.visual_prefix(embeds, [prompts[i]])
        row = []
        for c in cands:
            if model.cfg.llm.family == "decoder_only":
                tok = model.llm_tokenizer
                prompt_ids = tok(prompts[i]).input_ids
                cand_ids = tok(c).input_ids[1:]
                ids = torch.tensor([prompt_ids + cand_ids])
                x = torch.cat([prefix, model.llm.get_input_embeddings()(ids)], dim=1)
                logp = model.llm(inputs_embeds=x).logits.log_softmax(-1)[0]
                start = prefix.size(1) + len(prompt_ids)
                nll = [-logp[start + j - 1, t].item() for j, t in enumerate(cand_ids)]
            else:
                enc_ids = model.t5_tokenizer(prompts[i], return_tensors="pt").input_ids
                x = torch.cat([prefix, model.llm.encoder.embed_tokens(enc_ids)], dim=1)
                labels = model.t5_output_tokenizer(c, return_tensors="pt").input_ids  # ends with </s>
                logp = model.llm(inputs_embeds=x, labels=labels).logits.log_softmax(-1)[0]
                nll = [-logp[j, t].item() for j, t in enumerate(labels[0].tolist())]
            row.append(nll)
        out.append(row)
    return out


@pytest.mark.parametrize("chunk_size", [2, 128])
def test_predict_class_equals_brute_force(tiny_model, images, chunk_size):
    with torch.no_grad():
        ref = brute_force(tiny_model, images, PROMPTS, CANDIDATES)
    for score, reduce in (("mean", lambda v: sum(v) / len(v)), ("sum", sum)):
        got = tiny_model.predict_class({"image": images, "text_input": PROMPTS}, CANDIDATES, score=score,
                                        chunk_size=chunk_size)
        expected = [[reduce(v) for v in row] for row in ref]
        for g, e in zip(got["scores"], expected):
            assert g == pytest.approx(e, rel=1e-4, abs=1e-4)
        assert got["rankings"] == [sorted(range(len(e)), key=lambda j, e=e: e[j]) for e in expected]


def test_candidates_from_samples_and_shared_list(tiny_model, images):
    shared = ["yes", "no"]
    a = tiny_model.predict_class({"image": images, "text_input": PROMPTS, "candidates": [shared] * 3})
    b = tiny_model.predict_class({"image": images, "text_input": PROMPTS}, candidates=shared)
    assert a == b and len(a["scores"]) == 3 and all(len(s) == 2 for s in a["scores"])


def test_vision_encoder_runs_once_per_call(tiny_model, images):
    calls = []
    hook = tiny_model.visual_encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    tiny_model.predict_class({"image": images, "text_input": PROMPTS}, CANDIDATES, chunk_size=2)
    hook.remove()
    assert calls == [3]


@pytest.mark.parametrize(
    "candidates, message",
    [([["a"], [], ["b"]], "sample 1 has an empty candidate list"), ([["a"], ["b"]], "3 samples but 2 candidate"),
     ([["a"], [""], ["b"]], "empty or non-string candidate"), (None, "needs candidates")],
)
def test_bad_candidates(tiny_model, images, candidates, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.predict_class({"image": images, "text_input": PROMPTS}, candidates)


def test_unknown_score_rejected(tiny_model, images):
    with pytest.raises(ValueError, match="score must be one of"):
        tiny_model.predict_class({"image": images, "text_input": PROMPTS}, CANDIDATES, score="max")


def test_long_prompt_is_not_truncated(arch, images):
    """LAVIS's ``_predict_class`` cuts only the Q-Former text to ``max_txt_len``, never the LLM prompt."""
    from conftest import build_tiny

    model = build_tiny(arch, qformer__max_txt_len=12).eval()
    common = " ".join(["the red circle is left of the blue square and above a green word"] * 3) + " Answer:"
    prompts = ["context: there is one circle. " + common, "context: there are three squares. " + common]
    n_tokens = len(model.adapter.tokenizer(prompts[0]).input_ids)
    assert n_tokens > 3 * model.cfg.qformer.max_txt_len  # the tokenizers differ; every one gives > 36 tokens here
    candidates = [["one", "three"]] * 2
    with torch.no_grad():
        got = model.predict_class({"image": images[:1].expand(2, -1, -1, -1), "text_input": prompts}, candidates,
                                  score="sum")
        ref = brute_force(model, images[:1].expand(2, -1, -1, -1), prompts, candidates)
    assert got["scores"][0] != pytest.approx(got["scores"][1], abs=1e-6)  # the cut-off start changes the score
    for g, e in zip(got["scores"], ref):
        assert g == pytest.approx([sum(v) for v in e], rel=1e-4, abs=1e-4)


def test_default_score_is_the_sum_as_lavis(tiny_model, images):
    samples = {"image": images, "text_input": PROMPTS}
    default = tiny_model.predict_class(samples, CANDIDATES)
    assert default == tiny_model.predict_class(samples, CANDIDATES, score="sum")
    assert default != tiny_model.predict_class(samples, CANDIDATES, score="mean")
