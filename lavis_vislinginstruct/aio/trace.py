"""The record of one Autonomous Instruction Optimization run (VisLingInstruct, NAACL 2024, section 3.2, Figure 3).

:class:`AIOTrace` holds, for one sample, every text and score AIO produced: the initial and rewritten instructions
(stage 1, Appendix B), their Instruction Alignment Scores (eq. 3, Appendix C), the comparison prompt, the
instruction the model wrote (``optimized``), the one finally used and why. :func:`format_trace` is the only
formatter of traces (text and JSON); the optimize CLI, evaluation results, the report, the demo and the chat/web
front ends all use it, so a trace reads the same everywhere.
"""
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

#: Stages timed in :attr:`AIOTrace.timings` (seconds for the whole batch the sample was optimized in).
STAGES = ("rewrite", "ias", "compare", "ias_optimized")


@dataclass
class AIOTrace:
    """What AIO did for one sample.

    Attributes:
        mode: ``off``, ``rewrite`` or ``full``.
        initial: The user's (or benchmark's) instruction.
        rewritten: Stage 1's rewrite (``None`` with AIO off).
        ias_initial: IAS of ``initial`` (lower is better; ``None`` unless mode is ``full``).
        ias_rewritten: IAS of ``rewritten``.
        comparison_prompt: The in-context prompt of stage 2.
        optimized: The instruction the model wrote after the comparison prompt (stage 2's output).
        ias_optimized: IAS of ``optimized`` (only with ``select: best_ias``).
        used: The instruction the answer is generated with.
        reason: Why ``used`` is not the proposed instruction (empty when it is).
        guard: The content guard in force (``none``: the paper; ``content``: our fallback).
        keep_spans: Task content the instruction should keep (question, options, OCR tokens, history).
        lost_spans: The spans the proposed instruction (``optimized``, or ``rewritten`` in rewrite mode) lost,
            whatever the guard; non-empty means the guard fired or, with ``guard: none``, would have.
        guard_fired: Whether the content guard replaced the proposed instruction.
        notes: Anything else worth knowing (truncation of long instructions), as text for a person.
        truncated: What was cut, as data: ``{"qformer": [tokens, limit]}`` when the initial instruction is longer
            than the Q-Former reads, ``{"llm": [tokens, limit]}`` when the answer's LLM prompt is longer than the
            LLM reads (the start is cut in both); ``{"rewrite" | "optimized": [tokens, cap]}`` when a generated
            instruction reached its cap of new tokens (its end may be missing).
        timings: Seconds per stage (:data:`STAGES`) for the batch the sample was in, and ``batch`` (its size).
    """

    mode: str
    initial: str
    rewritten: Optional[str] = None
    ias_initial: Optional[float] = None
    ias_rewritten: Optional[float] = None
    comparison_prompt: Optional[str] = None
    optimized: Optional[str] = None
    ias_optimized: Optional[float] = None
    used: str = ""
    reason: str = ""
    guard: str = "content"
    keep_spans: List[str] = field(default_factory=list)
    lost_spans: List[str] = field(default_factory=list)
    guard_fired: bool = False
    notes: List[str] = field(default_factory=list)
    truncated: Dict[str, List[int]] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.used:
            self.used = self.initial

    @property
    def proposed(self) -> Optional[str]:
        """The instruction AIO proposed: the rewrite in ``rewrite`` mode, the model's output in ``full`` mode."""
        return {"rewrite": self.rewritten, "full": self.optimized}.get(self.mode)

    @property
    def changed(self) -> bool:
        """Whether the answer is generated with another instruction than the initial one."""
        return self.used != self.initial

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-safe dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "AIOTrace":
        """The trace of :meth:`to_dict`; keys that are not fields (e.g. ``instance_id``) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def summarize(traces: List[AIOTrace]) -> Dict[str, int]:
    """Counts over traces: how often AIO changed the instruction, lost content, fell back, produced nothing, or
    generated an instruction that reached its cap of new tokens (``truncated``)."""
    active = [t for t in traces if t.mode != "off"]
    return {
        "samples": len(active),
        "changed": sum(t.changed for t in active),
        "content_lost": sum(bool(t.lost_spans) for t in active),
        "guard_fired": sum(t.guard_fired for t in active),
        "empty": sum(t.proposed is not None and not t.proposed.strip() for t in active),
        "truncated": sum(bool({"rewrite", "optimized"} & set(t.truncated)) for t in active),
    }


def format_trace(trace: AIOTrace, style: str = "text", extra: Optional[Dict[str, Any]] = None) -> str:
    """The trace as indented text (Figure 3's reading order) or as JSON.

    Args:
        trace: The trace.
        style: ``text`` or ``json``.
        extra: More labelled lines (text) or keys (JSON) to show after the trace, e.g. ``{"answer": ..., "correct":
            True}`` or the sample's id.
    """
    extra = dict(extra or {})
    if style == "json":
        return json.dumps({**trace.to_dict(), **extra}, indent=2, ensure_ascii=False)
    if style != "text":
        raise ValueError(f"style must be 'text' or 'json', got {style!r}")

    def score(value: Optional[float]) -> str:
        return "" if value is None else f"  (IAS {value:.3f})"

    rows = [("initial", trace.initial + score(trace.ias_initial))]
    if trace.rewritten is not None:
        rows.append(("rewritten", trace.rewritten + score(trace.ias_rewritten)))
    if trace.comparison_prompt is not None:
        rows.append(("comparison prompt", trace.comparison_prompt))
    if trace.optimized is not None:
        rows.append(("optimized", trace.optimized + score(trace.ias_optimized)))
    rows.append(("used", trace.used))
    if trace.reason:
        rows.append(("reason", trace.reason))
    if trace.lost_spans and not trace.guard_fired:
        rows.append(("content lost", "; ".join(repr(s) for s in trace.lost_spans) + f" (guard: {trace.guard})"))
    rows += [("note", n) for n in trace.notes]
    rows += [(str(k), str(v)) for k, v in extra.items()]
    width = max(len(k) for k, _ in rows)
    lines = []
    for key, value in rows:
        first, *rest = str(value).split("\n")
        lines.append(f"{key:>{width}}: {first}")
        lines += [" " * (width + 2) + line for line in rest]
    return "\n".join(lines)
