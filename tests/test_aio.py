"""Autonomous Instruction Optimization: IAS values, prompt order, memoization, fallbacks, modes, efficiency."""
import dataclasses

import pytest
import torch
from conftest import build_tiny

from lavis_vislinginstruct.aio.trace import summarize
from lavis_vislinginstruct.inference.pipeline import VisLingInstructPipeline

from lavis_vislinginstruct.aio.guard import missing_spans
from lavis_vislinginstruct.aio.prompts import comparison_prompt

Q1 = "Question: what colour is the circle? \n Short answer:"
Q2 = "Question: how many shapes are there? Options: (a) one (b) two \n Answer:"


def optimize(model, samples, mode="full", **aio):
    """The AIO traces of ``samples`` through a pipeline of the model's own settings, ``aio`` fields replaced."""
    row = model.pipeline(mode).row
    return VisLingInstructPipeline(model, row, aio=dataclasses.replace(model.cfg.aio, **aio)).optimize(samples)


def reference_ias(model, image, instruction):
    """Eq. 3 by hand, as the official calculate_ias: one unpadded LLM pass, then the mean NLL of the instruction's
    tokens followed by the end-of-sequence token."""
    prefix, _ = model.visual_prefix(model.encode_image(image), [instruction])
    prompt = model.cfg.aio.ias_prompt
    if model.cfg.llm.family == "decoder_only":
        tok = model.llm_tokenizer
        p_ids, t_ids = tok(prompt).input_ids, tok(instruction).input_ids[1:] + [tok.eos_token_id]
        x = torch.cat([prefix, model.llm.get_input_embeddings()(torch.tensor([p_ids + t_ids]))], dim=1)
        logp = model.llm(inputs_embeds=x).logits[0].log_softmax(-1)
        start = prefix.size(1) + len(p_ids)
        nll = [-logp[start + j - 1, t] for j, t in enumerate(t_ids)]
    else:
        enc = model.t5_tokenizer(prompt, return_tensors="pt").input_ids
        x = torch.cat([prefix, model.llm.encoder.embed_tokens(enc)], dim=1)
        t_ids = model.t5_output_tokenizer(instruction, add_special_tokens=False).input_ids
        t_ids = t_ids + [model.t5_output_tokenizer.eos_token_id]
        logp = model.llm(inputs_embeds=x, labels=torch.tensor([t_ids])).logits[0].log_softmax(-1)
        nll = [-logp[j, t] for j, t in enumerate(t_ids)]
    return float(sum(nll) / len(nll))


def test_ias_equals_hand_written_reference(tiny_model, images):
    instructions = [Q1, Q2, "A short image description:"]
    with torch.no_grad():
        got = tiny_model.pipeline().alignment_scores({"image": images}, instructions)
        expected = [reference_ias(tiny_model, images[i : i + 1], t) for i, t in enumerate(instructions)]
    assert got.shape == (3,)
    assert got.tolist() == pytest.approx(expected, rel=1e-4, abs=1e-4)  # per sample, never a batch mean


def test_comparison_prompt_orders_worst_to_best():
    text = comparison_prompt([("good", 1.25), ("bad", 3.5)], "I: {instruction} S: {score:.2f}", "New:")
    assert text == "I: bad S: 3.50\nI: good S: 1.25\nNew:"


def test_missing_spans_is_case_and_space_insensitive():
    assert missing_spans("What  COLOUR is it? (a) red", ["what colour", "(a) red", "(b) blue"]) == ["(b) blue"]


class Script:
    """Replaces the adapter's generate: canned rewrites (no image) and comparison outputs (with image)."""

    def __init__(self, model, rewrite, compare):
        self.model, self.rewrite, self.compare = model, rewrite, compare
        self.real = model.adapter.generate
        self.rewrite_prompts, self.compare_prompts, self.answer_prompts = [], [], []
        model.adapter.generate = self

    def __call__(self, prefix, prefix_mask, prompts, *args, **kwargs):
        if prefix is None:
            self.rewrite_prompts.append(list(prompts))
            return [self.rewrite(p) for p in prompts]
        if prompts[0].endswith(self.model.cfg.aio.compare_cue):
            self.compare_prompts.append(list(prompts))
            return [self.compare(p) for p in prompts]
        self.answer_prompts.append(list(prompts))
        return self.real(prefix, prefix_mask, prompts, *args, **kwargs)


def initial_of(rewrite_prompt, model):
    head, tail = model.cfg.aio.rewrite_template.split("{}")
    return rewrite_prompt[len(head) : -len(tail)]


def last_listed(prompt, model):
    """The instruction of the last (best) pair of a comparison prompt built with the default template."""
    body = prompt[: -len(model.cfg.aio.compare_cue)].rstrip("\n")
    return body.rsplit("Instruction: ", 1)[1].rsplit(" Score: ", 1)[0]


def test_modes_change_the_instruction_that_reaches_the_answer(tiny_model, images):
    s = {"image": images[:2], "text_input": [Q1, Q2], "keep_spans": [["what colour is the circle?"], ["(a) one"]]}
    script = Script(tiny_model, lambda p: "Please answer: " + initial_of(p, tiny_model),
                    lambda p: "OPTIMIZED " + last_listed(p, tiny_model))
    for mode, expected in [("off", [Q1, Q2]), ("rewrite", ["Please answer: " + Q1, "Please answer: " + Q2])]:
        tiny_model.generate(dict(s), aio=mode, max_length=3)
        assert script.answer_prompts[-1] == expected
    batch = dict(s)
    _, traces = tiny_model.generate(batch, aio="full", max_length=3, return_traces=True)
    assert set(batch) == set(s)  # the caller's samples are not written into
    assert script.answer_prompts[-1] == [t.used for t in traces]
    for t in traces:
        best = min((t.initial, t.ias_initial), (t.rewritten, t.ias_rewritten), key=lambda p: p[1])[0]
        assert t.optimized == "OPTIMIZED " + best and t.used == t.optimized and t.reason == ""
        scores = [float(x.split("\n", 1)[0]) for x in t.comparison_prompt.split("Score: ")[1:]]
        assert scores == sorted(scores, reverse=True) and len(scores) == 2


@pytest.mark.parametrize("compare, reason", [(lambda p: "", "empty output"),
                                             (lambda p: "Describe the image.", "lost task content")])
def test_fallback_to_best_ias_instruction_keeping_content(tiny_model, images, compare, reason):
    s = {"image": images[:2], "text_input": [Q1, Q2], "keep_spans": [["what colour is the circle?"], ["(b) two"]]}
    Script(tiny_model, lambda p: "Tell me the colour.", compare)  # the rewrite itself drops the question
    traces = optimize(tiny_model, s)
    for t in traces:
        assert t.reason.startswith(reason)
        assert t.used == t.initial  # the only instruction that keeps the content
        assert t.guard_fired == (reason == "lost task content")
        assert t.lost_spans == ([] if reason == "empty output" else t.keep_spans)


def test_best_ias_select_scores_the_generated_instruction(tiny_model, images):
    s = {"image": images[:1], "text_input": [Q1]}
    Script(tiny_model, lambda p: "Which colour has the circle?", lambda p: "Name the circle's colour.")
    (t,) = optimize(tiny_model, s, select="best_ias")
    options = {t.initial: t.ias_initial, t.rewritten: t.ias_rewritten, t.optimized: t.ias_optimized}
    assert t.used == min(options, key=options.get)
    assert t.ias_optimized == pytest.approx(float(tiny_model.pipeline().alignment_scores(
        {"image": images[:1]}, [t.optimized])[0]), rel=1e-4)


def test_repeated_instruction_is_rewritten_once(tiny_model, images):
    script = Script(tiny_model, lambda p: "Give a short description of the image.", lambda p: "Describe it.")
    caption = "A short image description:"
    pipeline = tiny_model.pipeline("full")  # the rewrite cache is the pipeline's
    pipeline.optimize({"image": images, "text_input": [caption] * 3})
    pipeline.optimize({"image": images[:2], "text_input": [caption, Q1]})
    assert script.rewrite_prompts == [[tiny_model.cfg.aio.rewrite_template.format(caption)],
                                      [tiny_model.cfg.aio.rewrite_template.format(Q1)]]


def test_batch_of_different_instructions(tiny_model, images):
    s = {"image": images, "text_input": [Q1, Q2, "A short image description:"]}
    traces = optimize(tiny_model, s)
    assert [t.initial for t in traces] == s["text_input"]
    alone = optimize(tiny_model, {"image": images[1:2], "text_input": [Q2]})[0]
    assert alone.ias_initial == pytest.approx(traces[1].ias_initial, rel=1e-4)
    assert alone.optimized == traces[1].optimized


@pytest.mark.parametrize("call", ["generate", "predict_class"])
def test_vision_encoder_runs_once_per_image_per_call(tiny_model, images, call):
    seen = []
    hook = tiny_model.visual_encoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    s = {"image": images, "text_input": [Q1, Q2, "Is it red?"]}
    if call == "generate":
        tiny_model.generate(s, aio="full", max_length=3)
    else:
        tiny_model.predict_class(s, [["red", "blue"], ["one", "two"], ["yes", "no"]], aio="full")
    hook.remove()
    assert seen == [3]


def test_bad_input(tiny_model, images):
    with pytest.raises(ValueError, match="is empty"):
        optimize(tiny_model, {"image": images[:2], "text_input": [Q1, " "]})
    with pytest.raises(ValueError, match="2 images but 1 instructions"):
        optimize(tiny_model, {"image": images[:2], "text_input": [Q1]})
    with pytest.raises(ValueError, match="aio.mode must be one of"):
        tiny_model.generate({"image": images[:1], "text_input": [Q1]}, aio="fast")
    long = " ".join(["circle"] * (tiny_model.cfg.qformer.max_txt_len + 10))
    (t,) = optimize(tiny_model, {"image": images[:1], "text_input": [long]}, mode="off")
    assert "only the last" in t.notes[0] and t.truncated == {"qformer": [len(long.split()) + 2, 128]}


def test_guard_none_uses_the_generated_instruction_and_counts_the_loss(arch, images):
    model = build_tiny(arch, aio__guard="none").eval()
    s = {"image": images[:2], "text_input": [Q1, Q2], "keep_spans": [["what colour is the circle?"], ["(b) two"]]}
    Script(model, lambda p: "Tell me the colour.", lambda p: "Describe the image.")
    traces = optimize(model, s)
    for t in traces:
        assert t.used == "Describe the image." and t.reason == "" and not t.guard_fired  # the paper: used as is
        assert t.lost_spans == t.keep_spans  # ... but the loss is on record
    assert summarize(traces) == {"samples": 2, "changed": 2, "content_lost": 2, "guard_fired": 0, "empty": 0,
                                 "truncated": 0}


def test_shuffled_order_swaps_scores_for_about_half_of_the_samples(arch, images):
    model = build_tiny(arch, aio__order="shuffled").eval()
    Script(model, lambda p: "Rewritten: " + initial_of(p, model), lambda p: last_listed(p, model))
    texts = [f"Question: is shape {i} red? Short answer:" for i in range(12)]
    image = images[:1].expand(len(texts), -1, -1, -1)
    traces = optimize(model, {"image": image, "text_input": texts})
    assert model.pipeline("full").row.name == "ema_aio_shuffled"
    swapped = [t for t in traces if any("shuffled" in n for n in t.notes)]
    assert 0 < len(swapped) < len(traces)
    for t in traces:
        lines = t.comparison_prompt.split("\n")[:2]
        shown = {ln.split("Instruction: ")[1].rsplit(" Score: ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines}
        real = {t.initial: round(t.ias_initial, 2), t.rewritten: round(t.ias_rewritten, 2)}
        if t in swapped:
            assert shown == {t.initial: real[t.rewritten], t.rewritten: real[t.initial]}
        else:
            assert shown == real
        assert t.optimized == lines[1].split("Instruction: ")[1].rsplit(" Score: ", 1)[0]  # shown best is last
    again = optimize(model, {"image": image, "text_input": texts})
    assert [t.comparison_prompt for t in again] == [t.comparison_prompt for t in traces]  # seeded per sample


def test_long_instruction_is_reported_once_in_plain_generate(tiny_model, images, caplog):
    long = " ".join(["circle"] * (tiny_model.cfg.qformer.max_txt_len + 10))
    with caplog.at_level("WARNING", logger="lavis_vislinginstruct.inference.pipeline"):
        for _ in range(3):
            tiny_model.generate({"image": images[:2], "text_input": [long, Q1]}, aio="off", max_length=2, num_beams=1)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "max_txt_len" in r.getMessage()]
    assert len([w for w in warnings if "the Q-Former reads" in w]) == 1 and "1 of 2 instructions" in warnings[0]
    llm = [w for w in warnings if "the LLM reads" in w]  # Vicuna's prompt is cut too; T5 reads it whole
    assert len(llm) == (1 if tiny_model.cfg.llm.family == "decoder_only" else 0)
