"""Autonomous Instruction Optimization (AIO), VisLingInstruct (NAACL 2024) section 3.2, Figure 2, Appendices B, C.

:class:`InstructionOptimizer` runs AIO for a batch of (image, initial instruction) pairs through any model that
implements :class:`~.protocol.AIOBackend` (VisLingInstruct itself, or HF's InstructBLIP through :mod:`.hf`):

1. **Rewrite** (stage 1, Appendix B): the LLM alone, without the image, rewrites each distinct instruction with
   the rewrite template. Rewrites are memoized in a bounded cache keyed by the template, the decoding settings,
   the backend's weights (:meth:`~.protocol.AIOBackend.cache_token`) and the text, so a benchmark that asks every
   image the same instruction (captioning) rewrites it once; :meth:`InstructionOptimizer.remember` seeds the cache
   with rewrites made earlier (a resumed evaluation reuses those of its finished samples, so its traces equal an
   uninterrupted run's).
2. **Instruction Alignment Score** (eq. 3, Appendix C), as the official ``calculate_ias``: the Q-Former reads the
   candidate instruction, the LLM gets the visual tokens and the Appendix C prompt, and the score is the mean NLL
   of the candidate instruction's tokens followed by the end-of-sequence token. Lower is better. Both
   instructions of every sample are scored in one batched pass.
3. **Comparison** (stage 2): the (instruction, IAS) pairs, worst first and best last (Figure 3), then a cue
   (:mod:`.prompts`); the model, seeing the image (the Q-Former reads the best-IAS instruction), writes the
   optimized instruction. ``order: shuffled`` (an ablation, not in the paper) gives each sample's two instructions
   each other's scores with probability 1/2 (seeded per sample), so the prompt looks the same but its ranking
   carries no information.
4. **Selection.** ``select: generated`` (the paper) uses the optimized instruction; ``best_ias`` also scores it and
   uses the lowest-IAS of the three. An empty output falls back to the best-IAS of initial and rewritten. The
   content check (:mod:`.guard`) always records which task spans (question, options, OCR tokens, history:
   ``keep_spans``) the proposed instruction lost; ``guard: content`` then uses the best-IAS instruction that keeps
   them instead, ``guard: none`` (the paper) uses the proposed one anyway. Every decision is in the trace.

Generated instructions are capped at ``aio.max_new_tokens`` new tokens, or (0) 1.25 x the longest instruction they
replace + 4, at most ``aio.max_new_tokens_limit`` unless the instruction itself is longer: an optimized instruction
may always be as long as the one it replaces + 4 tokens. Either way the cap never passes the room the LLM's context
leaves after the prompt (:meth:`~.protocol.AIOBackend.generation_room`). An output that reaches its cap (its
re-tokenized length) is flagged in the trace (``truncated["rewrite"]`` / ``truncated["optimized"]``) and counted
(:func:`~.trace.summarize`). The time of each stage is recorded in the traces.
"""
import json
import logging
import random
import time
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .config import AIO_MODES, SELECT_RULES, AIOCfg
from .guard import missing_spans
from .prompts import comparison_prompt, rewrite_prompt
from .protocol import AIOBackend
from .trace import AIOTrace

logger = logging.getLogger(__name__)


class InstructionOptimizer:
    """AIO for one model (module docstring).

    Args:
        cfg: The settings (a model config's ``aio`` section).
        backend: The model, seen through :class:`~.protocol.AIOBackend`.
    """

    def __init__(self, cfg: AIOCfg, backend: AIOBackend):
        self.cfg = cfg
        self.backend = backend
        self._rewrites: "OrderedDict[tuple, str]" = OrderedDict()
        self._lengths: "OrderedDict[tuple, int]" = OrderedDict()  # token counts, so no text is tokenized twice
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------------------------------ the cache

    def clear(self) -> None:
        """Forget every memoized rewrite (and token count)."""
        self._rewrites.clear()
        self._lengths.clear()

    def cache_info(self) -> Dict[str, int]:
        """Rewrites held, cache hits and misses since construction."""
        return {"size": len(self._rewrites), "hits": self.hits, "misses": self.misses, "limit": self.cfg.cache_size}

    def remember(self, pairs: Iterable[Tuple[str, str]]) -> int:
        """Memoize ``(initial, rewritten)`` pairs made earlier with the current settings; returns how many."""
        n = 0
        for initial, rewritten in pairs:
            if initial and rewritten is not None:
                self._store(self._key(initial), rewritten)
                n += 1
        return n

    def _key(self, text: str) -> tuple:
        decoding = json.dumps(self.cfg.decoding(), sort_keys=True)
        return (self.cfg.rewrite_template, decoding, self.backend.cache_token(), text)

    def _store(self, key: tuple, value: str) -> None:
        self._rewrites[key] = value
        self._rewrites.move_to_end(key)
        while len(self._rewrites) > max(self.cfg.cache_size, 0):
            self._rewrites.popitem(last=False)

    # ------------------------------------------------------------------------------------------ the stages

    def rewrite(self, instructions: Sequence[str]) -> List[str]:
        """Stage 1 for each instruction (distinct ones not memoized are rewritten in one batch)."""
        memo = self.cfg.memoize_rewrites and self.cfg.cache_size > 0
        keys = {t: self._key(t) for t in dict.fromkeys(instructions)}
        found = {t: self._rewrites[k] for t, k in keys.items() if memo and k in self._rewrites}
        todo = [t for t in keys if t not in found]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            prompts = [rewrite_prompt(self.cfg.rewrite_template, t) for t in todo]
            outs = self.backend.generate(None, prompts, self._decoding(todo, prompts, visual=False))
            for text, out in zip(todo, outs):
                found[text] = out.strip()
                if memo:
                    self._store(keys[text], found[text])
        for text in found:
            if memo and keys[text] in self._rewrites:
                self._rewrites.move_to_end(keys[text])
        return [found[t] for t in instructions]

    def alignment_scores(self, features: Any, rows: Sequence[int], instructions: Sequence[str]) -> List[float]:
        """IAS (eq. 3) of ``instructions[i]`` for image ``features[rows[i]]``; lower is better."""
        return self._scores(self.backend.visual_prefix(features, rows, instructions), instructions)

    def _scores(self, prefix: Any, instructions: Sequence[str]) -> List[float]:
        prompts = [self.cfg.ias_prompt] * len(instructions)
        return [float(x) for x in self.backend.continuation_nll(prefix, prompts, instructions)]

    def optimize(
        self,
        features: Any,
        instructions: Sequence[str],
        keep_spans: Optional[Sequence[Sequence[str]]] = None,
        mode: Optional[str] = None,
        select: Optional[str] = None,
    ) -> List[AIOTrace]:
        """AIO for a batch; one trace per sample, ``trace.used`` is the instruction to answer with.

        Args:
            features: The backend's image features of the batch (row i pairs with ``instructions[i]``).
            instructions: The initial instructions.
            keep_spans: Per sample, the task content the instruction must keep (recorded; enforced by
                ``guard: content``).
            mode: ``off``, ``rewrite`` or ``full`` (default: the config's).
            select: ``generated`` or ``best_ias`` (default: the config's).
        """
        cfg = self.cfg
        mode = _choice(mode, AIO_MODES, "aio.mode") if mode else cfg.mode  # cfg's values: checked when it was built
        select = _choice(select, SELECT_RULES, "aio.select") if select else cfg.select
        spans = [list(s) for s in keep_spans] if keep_spans is not None else [[] for _ in instructions]
        if len(spans) != len(instructions):
            raise ValueError(f"{len(instructions)} instructions but {len(spans)} keep_spans lists")
        traces = [AIOTrace(mode=mode, initial=t, guard=cfg.guard, keep_spans=s) for t, s in zip(instructions, spans)]
        self._note_truncation(traces)
        if mode == "off":
            return traces
        timings: Dict[str, float] = {"batch": len(traces)}
        for tr in traces:
            tr.timings = timings  # one dict per batch: the stages are timed for the batch as a whole

        start = time.perf_counter()
        for tr, text in zip(traces, self.rewrite(instructions)):
            tr.rewritten = text or tr.initial
            if not text:
                tr.notes.append("empty rewrite: the initial instruction stands in for it")
        prompts = [rewrite_prompt(cfg.rewrite_template, t) for t in dict.fromkeys(instructions)]
        self._flag_capped(traces, "rewrite", [tr.rewritten for tr in traces],
                          self._decoding(list(dict.fromkeys(instructions)), prompts, visual=False)["max_new_tokens"])
        timings["rewrite"] = time.perf_counter() - start
        if mode == "rewrite":
            for tr in traces:
                self._settle(tr, tr.rewritten, [(tr.initial, 0.0)])
            return traces

        # stage 2a: IAS of both instructions of every sample, in one pass
        start = time.perf_counter()
        n = len(traces)
        texts = [tr.initial for tr in traces] + [tr.rewritten for tr in traces]
        ias_prefix = self.backend.visual_prefix(features, list(range(n)) * 2, texts)
        ias = self._scores(ias_prefix, texts)
        timings["ias"] = time.perf_counter() - start
        # stage 2b: the comparison prompt; the model, seeing the image, writes the optimized instruction
        start = time.perf_counter()
        best_rows = []  # the Q-Former reads what the prompt presents as best: that prefix was built for the IAS
        for i, tr in enumerate(traces):
            tr.ias_initial, tr.ias_rewritten = ias[i], ias[n + i]
            shown = self._shown_pairs(tr)
            tr.comparison_prompt = comparison_prompt(shown, cfg.compare_template, cfg.compare_cue)
            best = min(reversed(shown), key=lambda p: p[1])[0]
            best_rows.append(i if best == tr.initial else n + i)
        prefix = self.backend.prefix_rows(ias_prefix, best_rows)
        compare_prompts = [tr.comparison_prompt for tr in traces]
        decoding = self._decoding(instructions, compare_prompts, visual=True)
        outs = self.backend.generate(prefix, compare_prompts, decoding)
        for tr, text in zip(traces, outs):
            tr.optimized = text.strip()
        self._flag_capped(traces, "optimized", [tr.optimized for tr in traces], decoding["max_new_tokens"])
        timings["compare"] = time.perf_counter() - start
        if select == "best_ias":
            start = time.perf_counter()
            scored = [i for i, tr in enumerate(traces) if tr.optimized]
            if scored:
                values = self.alignment_scores(features, scored, [traces[i].optimized for i in scored])
                for i, value in zip(scored, values):
                    traces[i].ias_optimized = value
            timings["ias_optimized"] = time.perf_counter() - start
        for tr in traces:
            fallback = [(tr.initial, tr.ias_initial), (tr.rewritten, tr.ias_rewritten)]
            self._settle(tr, tr.optimized, fallback, best_ias=select == "best_ias")
        return traces

    # ------------------------------------------------------------------------------------------ helpers

    def _shown_pairs(self, trace: AIOTrace) -> List[Tuple[str, float]]:
        """The (instruction, score) pairs the comparison prompt shows; ``order: shuffled`` may swap the scores."""
        pairs = [(trace.initial, trace.ias_initial), (trace.rewritten, trace.ias_rewritten)]
        if self.cfg.order == "shuffled" and random.Random(f"{self.cfg.seed}/{trace.initial}").random() < 0.5:
            pairs = [(pairs[0][0], pairs[1][1]), (pairs[1][0], pairs[0][1])]
            trace.notes.append("order shuffled: the two instructions' scores are swapped in the prompt")
        return pairs

    def _settle(
        self, trace: AIOTrace, proposed: Optional[str], fallback: List[Tuple[str, float]], best_ias: bool = False
    ) -> None:
        """Choose ``trace.used`` from the proposed instruction (module docstring, step 4) and record why."""
        spans = trace.keep_spans
        trace.lost_spans = missing_spans(proposed, spans) if proposed else []
        guarded = trace.guard == "content"
        keeps = [p for p in fallback if not missing_spans(p[0], spans)] or [(trace.initial, 0.0)]
        if not proposed:
            trace.used = min(keeps if guarded else fallback, key=lambda p: p[1])[0]
            trace.reason = "empty output"
            return
        if best_ias and trace.ias_optimized is not None:
            options = fallback + [(proposed, trace.ias_optimized)]
            if guarded:
                options = [p for p in options if not missing_spans(p[0], spans)] or keeps
            trace.used = min(options, key=lambda p: p[1])[0]
            trace.guard_fired = guarded and bool(trace.lost_spans) and trace.used != proposed
            if trace.used != proposed:
                trace.reason = "best_ias: a lower-IAS instruction was kept"
            return
        if trace.lost_spans and guarded:
            trace.used = min(keeps, key=lambda p: p[1])[0]
            trace.guard_fired = True
            trace.reason = "lost task content: " + "; ".join(repr(s) for s in trace.lost_spans)
            return
        trace.used = proposed

    def _decoding(self, instructions: Sequence[str], prompts: Sequence[str], visual: bool) -> Dict[str, Any]:
        """Greedy (``aio.num_beams``) decoding, capped near the length of the instructions being replaced and within
        the room the LLM's context leaves after ``prompts`` (module docstring)."""
        cfg = self.cfg
        cap = cfg.max_new_tokens
        if cap <= 0:
            longest = max(self._counts("llm", instructions))
            cap = max(min(int(1.25 * longest) + 4, cfg.max_new_tokens_limit), longest + 4)
        room = self.backend.generation_room(list(prompts), visual)
        if room is not None:
            cap = max(1, min(cap, room))
        return {"num_beams": cfg.num_beams, "max_new_tokens": cap,
                "prompt_lookup_num_tokens": cfg.prompt_lookup_num_tokens}

    def _flag_capped(self, traces: List[AIOTrace], stage: str, texts: Sequence[str], cap: int) -> None:
        """Flag the traces whose ``stage`` output reached its cap (re-tokenized, less the one special token the
        counts include) and may be cut short."""
        for tr, n in zip(traces, self._counts("llm", [t or "" for t in texts])):
            if n - 1 >= cap:
                tr.truncated[stage] = [n - 1, cap]
                tr.notes.append(f"the {stage} output reached its cap of {cap} new tokens and may be cut short")

    def _note_truncation(self, traces: List[AIOTrace]) -> None:
        texts = [tr.initial for tr in traces]
        limits = self._counts("qformer_limit", texts)
        for tr, n, limit in zip(traces, self._counts("qformer", texts), limits):
            if n > limit:
                tr.truncated["qformer"] = [n, limit]
                tr.notes.append(f"instruction has {n} Q-Former tokens; only the last {limit} are read")

    def _counts(self, kind: str, texts: Sequence[str]) -> List[int]:
        """Token counts (``llm``, ``qformer``, ``qformer_limit``) of ``texts``, memoized per backend and text."""
        token = self.backend.cache_token()
        todo = list(dict.fromkeys(t for t in texts if (kind, token, t) not in self._lengths))
        if todo:
            if kind == "llm":
                found = {t: (n,) for t, n in zip(todo, self.backend.llm_token_counts(todo))}
            else:
                found = dict(zip(todo, self.backend.qformer_token_budget(todo)))
            for text, value in found.items():
                for name, count in zip(("llm",) if kind == "llm" else ("qformer", "qformer_limit"), value):
                    self._lengths[(name, token, text)] = count
        counts = [self._lengths[(kind, token, t)] for t in texts]
        while len(self._lengths) > max(self.cfg.cache_size, 0) * 3:
            self._lengths.popitem(last=False)
        return counts


def _choice(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return value
