"""The demo's figures: Table 2's rows with bootstrap intervals, paired differences, AIO's own figures, the IAS premise.

Input: for each row of the demo's table (:data:`lavis_vislinginstruct.demo.ROWS`) and each held-out set, the merged
prediction records and AIO traces that ``evaluate.py`` writes (``<split>_predictions.json``; ``<split>_traces.json``,
:class:`~lavis_vislinginstruct.aio.trace.AIOTrace` dicts). Output: one JSON-ready dict (``results.json``) and the
markdown of ``results.md``; tables and the chart go through :mod:`lavis_vislinginstruct.figures`, the code path the
report uses, and traces through :func:`~lavis_vislinginstruct.aio.trace.format_trace`.

Figures (VisLingInstruct, NAACL 2024, section 3.2 and Table 2):

* **Cells**: per-sample scores (:mod:`lavis_vislinginstruct.tasks.sample_scores`), their mean x100 and a 95 %
  percentile bootstrap interval (:mod:`lavis_vislinginstruct.metrics.bootstrap`).
* **Paired differences** of rows on the same samples (EMA - vanilla, AIO - EMA, ...), paired-bootstrap intervals.
* **AIO per set** (the AIO rows' traces): how often the instruction used differs from the initial one
  (``changed``); how often the instruction used asks what the initial one asks (``content_kept``, read by the
  world's content reader, :mod:`lavis_vislinginstruct.world.content`, since a reworded user question never keeps
  its words); how often the optimized instruction lost a verbatim task span (``lost_spans``, what the content guard
  checks) and how often the guard fell back (``guard_fired``); empty outputs.
* **The IAS premise**: on the samples where the rewrite differs from the initial instruction, is the answer under
  the lower-IAS instruction right more often than under the higher-IAS one? The EMA row answered the initial
  instruction and the EMA + Rewriting row the rewritten one; the AIO row's traces carry both IAS values. Rates and
  the paired difference, with intervals.
* **IAS vs correctness**: Pearson's ``r`` between an instruction's IAS and the correctness of the answer under it,
  over both instructions of every sample (negative: a lower IAS goes with right answers), with an interval.
* **Across seeds** (:func:`robust_differences`): whether each paired difference's interval excludes zero, on the
  same side, under every seed of a run.
"""

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from lavis_vislinginstruct.aio.trace import AIOTrace, format_trace
from lavis_vislinginstruct.figures import (
    Line,
    Panel,
    Series,
    bar_chart,
    column_titles,
    format_interval,
    format_number,
    markdown_table,
)
from lavis_vislinginstruct.metrics.bootstrap import (
    Interval,
    mean_interval,
    paired_difference,
    pearson,
    statistic_interval,
)
from lavis_vislinginstruct.tasks.sample_scores import sample_scores
from lavis_vislinginstruct.world.content import content_kept

Records = List[Dict[str, Any]]
#: Paired differences reported: (name, row, minus row).
DIFFERENCES = (
    ("EMA - vanilla", "ema", "vanilla"),
    ("Rewriting - EMA", "ema_rewrite", "ema"),
    ("AIO - EMA", "ema_aio", "ema"),
    ("AIO - Rewriting", "ema_aio", "ema_rewrite"),
    ("AIO shuffled - AIO", "ema_aio_shuffled", "ema_aio"),
)
AIO_ROWS = ("ema_aio", "ema_aio_shuffled")


def _ci(interval: Interval, scale: float = 100.0) -> Dict[str, Any]:
    return interval.scaled(scale).to_dict(digits=2)


def _aligned(records: Records, by_id: Dict[str, Any], what: str) -> List[Any]:
    missing = [r["instance_id"] for r in records if r["instance_id"] not in by_id]
    if missing:
        raise ValueError(f"{what}: {len(missing)} samples have no entry (e.g. {missing[:3]})")
    return [by_id[r["instance_id"]] for r in records]


def rate(flags: Sequence[bool], seed: int = 0) -> Dict[str, Any]:
    """A share (x100) with its bootstrap interval, or ``None`` fields when there is nothing to count."""
    if not flags:
        return {"estimate": None, "low": None, "high": None, "n": 0}
    return _ci(mean_interval([float(f) for f in flags], seed=seed))


def correlation(x: Sequence[float], y: Sequence[float]) -> Optional[Dict[str, Any]]:
    """Pearson's ``r`` of IAS and correctness with its interval, or ``None`` where it is undefined (constant IAS or
    correctness, or nothing to correlate)."""
    try:
        return _ci(statistic_interval([x, y], pearson), scale=1.0)
    except ValueError:
        return None


def aio_figures(traces: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """How AIO treated one set (module docstring); rates x100 with intervals."""
    changed = [t["used"] != t["initial"] for t in traces]
    kept = [content_kept(t["initial"], t["used"]) for t in traces]
    kept_when_changed = [k for k, c in zip(kept, changed) if c]
    optimized = [t.get("optimized") for t in traces]
    return {
        "samples": len(traces),
        "changed": rate(changed),
        "content_kept": rate(kept),
        "content_kept_when_changed": rate(kept_when_changed),
        "rewrite_content_kept": rate([content_kept(t["initial"], t.get("rewritten")) for t in traces]),
        "verbatim_spans_lost": rate([bool(t["lost_spans"]) for t, o in zip(traces, optimized) if o is not None]),
        "guard_fired": rate([bool(t["guard_fired"]) for t in traces]),
        "empty_outputs": sum(1 for o in optimized if o is not None and not o.strip()),
        "counts": {"changed": sum(changed), "content_kept_when_changed": sum(kept_when_changed)},
    }


def ias_premise(
    traces: Sequence[Dict[str, Any]], initial_scores: Sequence[float], rewritten_scores: Sequence[float],
    rewritten_used: Sequence[str],
) -> Dict[str, Any]:
    """Correctness under the lower- vs the higher-IAS instruction (module docstring), on one set.

    Args:
        traces: AIO traces (``initial``, ``rewritten``, ``ias_initial``, ``ias_rewritten``), in sample order.
        initial_scores: Per-sample scores of the EMA row (answers to the initial instruction).
        rewritten_scores: Per-sample scores of the EMA + Rewriting row (answers to the rewritten one).
        rewritten_used: The instruction the EMA + Rewriting row answered, per sample (must be the traces' rewrite).
    """
    mismatched = sum(1 for t, u in zip(traces, rewritten_used) if (t.get("rewritten") or t["initial"]) != u)
    low, high, x, y = [], [], [], []
    for t, s_init, s_rew in zip(traces, initial_scores, rewritten_scores):
        if t.get("ias_initial") is None or t.get("ias_rewritten") is None:
            continue
        x += [t["ias_initial"], t["ias_rewritten"]]
        y += [s_init, s_rew]
        if t.get("rewritten") in (None, t["initial"]):
            continue
        rewrite_lower = t["ias_rewritten"] < t["ias_initial"]
        low.append(s_rew if rewrite_lower else s_init)
        high.append(s_init if rewrite_lower else s_rew)
    out: Dict[str, Any] = {"pairs": len(low), "rewrite_mismatches": mismatched}
    if low:  # mean scores, not rates: a TextVQA score can be 0.3
        out["correct_lower_ias"] = _ci(mean_interval(low))
        out["correct_higher_ias"] = _ci(mean_interval(high))
        out["lower_minus_higher"] = _ci(paired_difference(low, high))
    else:
        out["correct_lower_ias"], out["correct_higher_ias"] = rate([]), rate([])
    out["ias_correctness_r"] = correlation(x, y)
    out["_xy"] = (x, y)
    return out


def analyse(
    rows: Dict[str, Dict[str, Records]],
    traces: Dict[str, Dict[str, List[Dict[str, Any]]]],
    benchmarks: Sequence[str],
    reported: Dict[str, Dict[str, float]],
) -> Dict[str, Any]:
    """Every figure of the module docstring.

    Args:
        rows: ``{row: {benchmark: merged prediction records}}`` (all rows score the same samples).
        traces: ``{row: {benchmark: AIO traces}}`` for the rows that ran AIO.
        benchmarks: Column order.
        reported: ``{row: {benchmark: value}}`` as ``evaluate.py`` scored it (checked against the per-sample mean).

    Raises:
        ValueError: If the per-sample scores do not reproduce a reported value or rows score different samples.
    """
    scores: Dict[str, Dict[str, List[float]]] = {}
    table: Dict[str, Dict[str, Any]] = {}
    for row, per_bench in rows.items():
        for bench in benchmarks:
            records = per_bench[bench]
            values = sample_scores(bench, records)
            mean = 100.0 * float(np.mean(values))
            if abs(mean - reported[row][bench]) > 1e-6:
                raise ValueError(f"{row}/{bench}: per-sample scores give {mean}, evaluate.py {reported[row][bench]}")
            scores.setdefault(row, {})[bench] = values
            table.setdefault(row, {})[bench] = _ci(mean_interval(values))
    ids = {b: [r["instance_id"] for r in next(iter(rows.values()))[b]] for b in benchmarks}
    for row, per_bench in rows.items():
        for bench in benchmarks:
            if [r["instance_id"] for r in per_bench[bench]] != ids[bench]:
                raise ValueError(f"{row}/{bench} scores other samples than the first row")
    differences: Dict[str, Dict[str, Any]] = {}
    for name, a, b in DIFFERENCES:
        if a in scores and b in scores:
            differences[name] = {bench: _ci(paired_difference(scores[a][bench], scores[b][bench]))
                                 for bench in benchmarks}
    aio: Dict[str, Dict[str, Any]] = {}
    for row in AIO_ROWS:
        for bench, row_traces in traces.get(row, {}).items():
            by_id = {t["instance_id"]: t for t in row_traces}
            aio.setdefault(row, {})[bench] = aio_figures(_aligned(rows[row][bench], by_id, f"{row}/{bench} traces"))
    premise: Dict[str, Any] = {}
    pooled_x: List[float] = []
    pooled_y: List[float] = []
    if {"ema", "ema_rewrite"} <= set(scores) and "ema_aio" in traces:
        for bench in benchmarks:
            by_id = {t["instance_id"]: t for t in traces["ema_aio"].get(bench, [])}
            if not by_id:
                continue
            ordered = _aligned(rows["ema_aio"][bench], by_id, f"ema_aio/{bench} traces")
            used = [r["instruction"] for r in rows["ema_rewrite"][bench]]
            result = ias_premise(ordered, scores["ema"][bench], scores["ema_rewrite"][bench], used)
            x, y = result.pop("_xy")
            pooled_x += x
            pooled_y += y
            premise[bench] = result
        if pooled_x:
            premise["all"] = {"ias_correctness_r": correlation(pooled_x, pooled_y), "instructions": len(pooled_x)}
    return {"table": table, "differences": differences, "aio": aio, "premise": premise}


def robust_differences(per_seed: Sequence[Dict[str, Dict[str, Dict[str, Any]]]]) -> Dict[str, Dict[str, Any]]:
    """For each paired difference and set: its estimate under every seed, and ``holds``: ``"+"`` (``"-"``) when its
    interval lies above (below) zero under every seed, else ``None``.

    Args:
        per_seed: The ``differences`` of :func:`analyse`, one per seed (same names and sets).
    """
    out: Dict[str, Dict[str, Any]] = {}
    for name, per_bench in per_seed[0].items():
        for bench in per_bench:
            cells = [differences[name][bench] for differences in per_seed]
            holds = None
            if all(c["low"] > 0 for c in cells):
                holds = "+"
            elif all(c["high"] < 0 for c in cells):
                holds = "-"
            out.setdefault(name, {})[bench] = {"estimates": [c["estimate"] for c in cells], "holds": holds}
    return out


# --------------------------------------------------------------------------------------------- presentation


def table_markdown(
    figures: Dict[str, Any], labels: Dict[str, str], benchmarks: Sequence[str], base: Dict[str, Dict[str, float]]
) -> str:
    """Table 2's shape: rows x sets, cells ``value [low, high]``, then the chance and answer-prior rows."""
    rows = []
    for row, per_bench in figures["table"].items():
        rows.append([labels[row]] + [format_interval(c["estimate"], c["low"], c["high"]) for c in
                                     (per_bench[b] for b in benchmarks)])
    levels = (("chance", "*chance (uniform guess)*"), ("answer_prior", "*answer prior (blind, best per type)*"))
    for key, label in levels:
        rows.append([label] + [format_number(base.get(b, {}).get(key)) for b in benchmarks])
    return markdown_table(["Row"] + column_titles(benchmarks, with_metric=True), rows)


def differences_markdown(figures: Dict[str, Any], benchmarks: Sequence[str]) -> str:
    """Paired differences (points), with paired-bootstrap intervals."""
    rows = [[name] + [format_interval(c["estimate"], c["low"], c["high"], signed=True) for c in
                      (per[b] for b in benchmarks)] for name, per in figures["differences"].items()]
    return markdown_table(["Paired difference (points)"] + column_titles(benchmarks), rows)


def robust_markdown(robust: Dict[str, Dict[str, Any]], benchmarks: Sequence[str]) -> str:
    """Paired differences across seeds: each seed's estimate, and whether the interval excludes zero in all."""
    def cell(c: Dict[str, Any]) -> str:
        values = " / ".join(f"{v:+.1f}" for v in c["estimates"])
        verdict = {"+": "above 0 in every seed", "-": "below 0 in every seed"}.get(c["holds"], "not in every seed")
        return f"{values} ({verdict})"

    rows = [[name] + [cell(per[b]) for b in benchmarks] for name, per in robust.items()]
    return markdown_table(["Paired difference (points), per seed"] + column_titles(benchmarks), rows)


def _pct(cell: Optional[Dict[str, Any]]) -> str:
    if not cell or cell.get("estimate") is None:
        return "–"
    return format_interval(cell["estimate"], cell["low"], cell["high"])


def aio_markdown(figures: Dict[str, Any], labels: Dict[str, str], benchmarks: Sequence[str]) -> str:
    """AIO's figures per set and row (shares in %)."""
    rows = []
    for row, per_bench in figures["aio"].items():
        for bench in benchmarks:
            if bench not in per_bench:
                continue
            f = per_bench[bench]
            rows.append([labels[row], column_titles([bench])[0], str(f["samples"]), _pct(f["changed"]),
                         _pct(f["content_kept"]), _pct(f["content_kept_when_changed"]),
                         _pct(f["verbatim_spans_lost"]), _pct(f["guard_fired"]), str(f["empty_outputs"])])
    header = ["Row", "Set", "samples", "changed %", "content kept %", "kept when changed %",
              "verbatim span lost %", "guard fell back %", "empty"]
    return markdown_table(header, rows)


def premise_markdown(figures: Dict[str, Any], benchmarks: Sequence[str]) -> str:
    """The IAS premise per set and IAS's correlation with correctness."""
    rows = []
    for bench in benchmarks:
        p = figures["premise"].get(bench)
        if not p:
            continue
        r, d = p.get("ias_correctness_r"), p.get("lower_minus_higher")
        rows.append([column_titles([bench])[0], str(p["pairs"]), _pct(p["correct_lower_ias"]),
                     _pct(p["correct_higher_ias"]),
                     format_interval(d["estimate"], d["low"], d["high"], signed=True) if d else "–",
                     format_interval(r["estimate"], r["low"], r["high"], digits=2) if r else "–"])
    pooled = figures["premise"].get("all", {}).get("ias_correctness_r")
    if pooled:
        rows.append(["all sets", "", "", "", "", format_interval(pooled["estimate"], pooled["low"], pooled["high"],
                                                                 digits=2)])
    header = ["Set", "samples (rewrite differs)", "right under lower IAS %", "right under higher IAS %",
              "lower - higher (points)", "r(IAS, correct)"]
    return markdown_table(header, rows)


def chart(path: str, figures: Dict[str, Any], labels: Dict[str, str], benchmarks: Sequence[str],
          base: Dict[str, Dict[str, float]]) -> str:
    """Grouped bars of the rows per set with their 95 % intervals; chance (dotted) and answer prior (dashed)."""
    series = []
    for row, per_bench in figures["table"].items():
        cells = [per_bench[b] for b in benchmarks]
        series.append(Series(labels[row], [c["estimate"] for c in cells], [c["low"] for c in cells],
                             [c["high"] for c in cells]))
    lines = [Line("chance", [base.get(b, {}).get("chance") for b in benchmarks], "dotted"),
             Line("answer prior", [base.get(b, {}).get("answer_prior") for b in benchmarks], "dashed")]
    panel = Panel("VisLingInstruct demo: Table 2 rows, held-out world, 95 % intervals",
                  benchmarks, series, lines)
    return bar_chart(path, [panel], ylabel="accuracy on held-out scenes (%)", headroom=1.35)


def trace_text(trace: Dict[str, Any], answer: str, right: bool, bench: str) -> str:
    """One trace as Figure 3 shows it, with the shared formatter: initial and rewritten with their scores, the
    comparison prompt, the optimized instruction, the one used, then the answer and whether it was right."""
    head = f"[{bench} {trace['instance_id']}]"
    return head + "\n" + format_trace(AIOTrace.from_dict(trace), "text", {"answer": answer, "right": right})
