"""Autonomous Instruction Optimization (AIO), VisLingInstruct section 3.2, Figure 2, Appendices B and C.

For a batch of (image, initial instruction) pairs, with the image features computed once by the caller:

1. Rewrite (stage 1): the LLM alone, without the image, rewrites each distinct instruction with the Appendix B
   template. Rewrites are memoized by instruction text, so a benchmark that asks every image the same
   instruction (captioning) rewrites it once per model.
2. Instruction Alignment Score (eq. 3): for each sample, the mean NLL of an instruction's tokens given the image
   and the Appendix C prompt; the instruction is also the Q-Former's text. Both instructions of all samples
   are scored in one batched LLM pass. Lower is better.
3. Comparison (stage 2): the (instruction, IAS) pairs, ordered by descending IAS (worst first, best last, as in
   Figure 3), followed by a cue; the model, seeing the image, writes the optimized instruction.
4. Selection: the generated instruction is used (the paper), unless it is empty or lost task content (a
   question, the options, OCR tokens: ``samples["keep_spans"]``); then the best-IAS instruction that keeps the
   content is used and the reason recorded. ``select="best_ias"`` (our ablation) also scores the generated
   instruction and keeps the lowest IAS.

Default comparison prompt (config ``aio.compare_template`` / ``aio.compare_cue``)::

    Instruction: <worst> Score: 2.31
    Instruction: <best> Score: 1.87
    Write a new instruction with a lower score. Instruction:

Each pair is one line, as the ICL demonstrations of Figure 3; descending scores show the model which direction
is better, and the cue asks it to continue the trend with a new instruction. The scores are printed with two
decimals: enough to order them, short enough not to dominate the prompt.
"""
import logging
import random
from typing import Any, Dict, List, Sequence

import torch

from .config import AIO_MODES
from .guard import missing_spans
from .prompts import comparison_prompt
from ..models.config import choice

logger = logging.getLogger(__name__)

SELECT = {"generated", "best_ias"}


def instruction_alignment_score(model, image_embeds: torch.Tensor, instructions: Sequence[str]) -> torch.Tensor:
    """IAS per row: mean NLL of ``instructions[i]`` given image ``i`` and the Appendix C prompt; (N,).

    Args:
        model: a VisLingInstruct model.
        image_embeds: (N, N_img, W) features, row i paired with ``instructions[i]``.
        instructions: the instructions to score (also the Q-Former's text).
    """
    prefix, prefix_mask = model.visual_prefix(image_embeds, instructions)
    prompts = [model.cfg.aio.ias_prompt] * len(instructions)
    return model.adapter.continuation_nll(prefix, prefix_mask, prompts, list(instructions), reduction="mean")


def rewrite(model, instructions: Sequence[str]) -> Dict[str, str]:
    """Stage 1 for the distinct instructions not yet memoized; returns instruction -> rewritten text."""
    cfg = model.cfg.aio
    cache = model._aio_cache if cfg.memoize_rewrites else {}
    todo = [t for t in dict.fromkeys(instructions) if t not in cache]
    if todo:
        model.aio_counters["rewrite_calls"] += 1
        outs = model.adapter.generate(
            None, None, [cfg.rewrite_template.format(t) for t in todo], **_decoding(model, todo)
        )
        cache.update(zip(todo, (o.strip() for o in outs)))
    return {t: cache[t] for t in instructions}


def optimize_batch(
    model, samples: Dict[str, Any], image_embeds: torch.Tensor, instructions: Sequence[str], mode: str,
    select: str = "",
) -> List[Dict[str, Any]]:
    """Run AIO for a batch; returns one trace per sample (see :func:`new_trace`); ``trace["used"]`` is final."""
    mode = choice(mode, AIO_MODES, "aio")
    select = choice(select or model.cfg.aio.select, SELECT, "aio.select")
    spans = samples.get("keep_spans") or [[] for _ in instructions]
    if len(spans) != len(instructions):
        raise ValueError(f"{len(instructions)} instructions but {len(spans)} keep_spans lists")
    traces = [new_trace(model, t, s, mode) for t, s in zip(instructions, spans)]
    if mode == "off":
        return traces

    rewritten = rewrite(model, instructions)
    for tr in traces:
        tr["rewritten"] = rewritten[tr["initial"]] or tr["initial"]
        if not rewritten[tr["initial"]]:
            tr["notes"].append("empty rewrite: the initial instruction stands in for it")
    if mode == "rewrite":
        for tr in traces:
            _settle(tr, tr["rewritten"], fallback=[(tr["initial"], 0.0)], guard=model.cfg.aio.guard)
        return traces

    # stage 2a: IAS of initial and rewritten instructions, all samples in one pass
    n = len(traces)
    rows = torch.arange(n, device=image_embeds.device).repeat(2)
    texts = [tr["initial"] for tr in traces] + [tr["rewritten"] for tr in traces]
    ias = instruction_alignment_score(model, image_embeds.index_select(0, rows), texts).tolist()
    model.aio_counters["ias_calls"] += 1
    cfg = model.cfg.aio
    for i, tr in enumerate(traces):
        tr["ias_initial"], tr["ias_rewritten"] = ias[i], ias[n + i]
        pairs = [(tr["initial"], ias[i]), (tr["rewritten"], ias[n + i])]
        if cfg.order == "shuffled":  # the ablation: same prompt, the two lines in a random order
            random.Random(f"{cfg.seed}/{tr['initial']}").shuffle(pairs)
        tr["comparison_prompt"] = comparison_prompt(
            pairs, cfg.compare_template, cfg.compare_cue, ordered=cfg.order == "ias"
        )
    # stage 2b: the model, seeing the image, writes the optimized instruction
    best = [min((tr["initial"], tr["ias_initial"]), (tr["rewritten"], tr["ias_rewritten"]), key=lambda p: p[1])[0]
            for tr in traces]
    prefix, prefix_mask = model.visual_prefix(image_embeds, best)
    generated = model.adapter.generate(prefix, prefix_mask, [tr["comparison_prompt"] for tr in traces],
                                       **_decoding(model, instructions))
    model.aio_counters["compare_calls"] += 1
    for tr, text in zip(traces, generated):
        tr["generated"] = text.strip()
    if select == "best_ias":
        scored = [i for i, tr in enumerate(traces) if tr["generated"]]
        if scored:
            ias_gen = instruction_alignment_score(
                model, image_embeds.index_select(0, torch.tensor(scored, device=image_embeds.device)),
                [traces[i]["generated"] for i in scored],
            ).tolist()
            model.aio_counters["ias_calls"] += 1
            for i, value in zip(scored, ias_gen):
                traces[i]["ias_generated"] = value
    for tr in traces:
        fallback = [(tr["initial"], tr["ias_initial"]), (tr["rewritten"], tr["ias_rewritten"])]
        if select == "best_ias" and tr.get("ias_generated") is not None:
            fallback.append((tr["generated"], tr["ias_generated"]))
            choice_text = min(fallback, key=lambda p: p[1])[0]
            _settle(tr, choice_text, fallback, guard=cfg.guard)
            if tr["used"] != tr["generated"] and not tr["reason"]:
                tr["reason"] = "best_ias: a lower-IAS instruction was kept"
        else:
            _settle(tr, tr["generated"], fallback, guard=cfg.guard)
    return traces


def new_trace(model, instruction: str, spans: Sequence[str], mode: str) -> Dict[str, Any]:
    """A trace with the initial instruction; truncation beyond ``max_txt_len`` is recorded, not hidden."""
    n_tokens = len(model.tokenizer(instruction).input_ids)
    limit = model.cfg.qformer.max_txt_len
    notes = [f"instruction has {n_tokens} Q-Former tokens; only the last {limit} are read"] if n_tokens > limit else []
    return {
        "mode": mode, "initial": instruction, "keep_spans": list(spans), "rewritten": None, "ias_initial": None,
        "ias_rewritten": None, "comparison_prompt": None, "generated": None, "used": instruction, "reason": "",
        "notes": notes,
    }


def _settle(trace: Dict[str, Any], proposed: str, fallback: List[tuple], guard: str = "content") -> None:
    """Use ``proposed`` unless it is empty, or (``guard="content"``) lost task content; then the best-IAS
    instruction that keeps it. The lost spans are recorded either way."""
    spans = trace["keep_spans"]
    lost = missing_spans(proposed, spans) if proposed else []
    trace["lost_spans"] = lost
    trace["guard_fired"] = False
    if proposed and (not lost or guard == "none"):
        trace["used"] = proposed
        return
    trace["guard_fired"] = bool(proposed)
    keeping = [p for p in fallback if not missing_spans(p[0], spans)] or [(trace["initial"], 0.0)]
    trace["used"] = min(keeping, key=lambda p: p[1])[0]
    trace["reason"] = "empty output" if not proposed else "lost task content: " + "; ".join(repr(s) for s in lost)


def _decoding(model, instructions: Sequence[str]) -> Dict[str, Any]:
    """Greedy (``aio.num_beams``) decoding capped near the length of the instructions being replaced."""
    cfg = model.cfg.aio
    cap = cfg.max_new_tokens
    if cap <= 0:
        longest = max(len(model.adapter.tokenizer(t).input_ids) for t in instructions)
        cap = int(1.25 * longest) + 4
    return dict(num_beams=cfg.num_beams, max_length=cap, min_length=1, do_sample=False,
                top_p=0.9, temperature=1.0, repetition_penalty=1.0, length_penalty=1.0, num_return_sequences=1)
