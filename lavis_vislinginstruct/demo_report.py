"""The demo's report: ``results.json``, ``results.md``, ``ablation.png`` and README's demo results block.

:mod:`lavis_vislinginstruct.demo` runs the pipeline and hands this module the summary of a run (what
``results.json`` holds); everything shown is rendered from that summary alone, so ``python -m
lavis_vislinginstruct.demo --readme README.md`` can rewrite README's block from a finished run's ``results.json``
without running anything. The tables and the chart are :mod:`lavis_vislinginstruct.demo_analysis`'s, the traces are
printed by :func:`lavis_vislinginstruct.demo_analysis.trace_text`.
"""

import json
import os
from typing import Any, Dict, List, Sequence

from lavis_vislinginstruct import demo_analysis as analysis
from lavis_vislinginstruct.figures import markdown_table
from lavis_vislinginstruct.tasks.benchmarks import ORDER

#: The markers of README's demo results block, which :func:`update_readme` rewrites.
README_BEGIN = "<!-- demo-results:begin (python -m lavis_vislinginstruct.demo --readme README.md) -->"
README_END = "<!-- demo-results:end -->"

#: The summary's keys that :func:`lavis_vislinginstruct.demo_analysis.analyse` computed.
FIGURES = ("table", "differences", "aio", "premise")


def row_labels(summary: Dict[str, Any]) -> Dict[str, str]:
    """``row name -> label`` in table order, from the summary's ``rows``."""
    return {name: row["label"] for name, row in summary["rows"].items()}


def columns(summary: Dict[str, Any]) -> List[str]:
    """The run's held-out sets in the paper's column order."""
    return [b for b in ORDER if b in summary["size"]["benchmarks"]]


def figures_of(summary: Dict[str, Any]) -> Dict[str, Any]:
    """The analysed figures (:data:`FIGURES`) of a summary."""
    return {key: summary[key] for key in FIGURES}


def pick_traces(
    rows: Dict[str, Dict[str, List[Dict[str, Any]]]], traces: Dict[str, Dict[str, List[Dict[str, Any]]]],
    benchmarks: Sequence[str], per_set: int = 1,
) -> List[Dict[str, Any]]:
    """Figure-3-style traces of the AIO row: per set, the first samples whose instruction AIO changed (else the
    first sample), with the answer given and whether it was right.

    Args:
        rows: ``{row: {benchmark: merged prediction records}}``.
        traces: ``{row: {benchmark: AIO traces}}``.
        benchmarks: The sets, in column order.
        per_set: Traces picked per set.
    """
    from lavis_vislinginstruct.tasks.sample_scores import sample_score

    picked = []
    for bench in benchmarks:
        by_id = {r["instance_id"]: r for r in rows["ema_aio"][bench]}
        pool = traces.get("ema_aio", {}).get(bench, [])
        changed = [t for t in pool if t["used"] != t["initial"]] or pool
        for trace in changed[:per_set]:
            record = by_id[trace["instance_id"]]
            answer = record.get("prediction_text", record.get("prediction"))
            picked.append({"benchmark": bench, "trace": trace, "answer": answer,
                           "right": sample_score(bench, record) > 0.5})
    return picked


def markdown(summary: Dict[str, Any]) -> str:
    """``results.md``: the tables, the traces, the training and the timings of a run."""
    cols = columns(summary)
    labels = row_labels(summary)
    figures = figures_of(summary)
    base = summary["baselines"]
    stages = summary["stages"]
    parts = [
        "## VisLingInstruct demo: Table 2 on the generated world (held-out scenes, user-style questions)",
        analysis.table_markdown(figures, labels, cols, base),
        f"Scores x100 with 95 % bootstrap intervals ({summary['size']['n_eval']} questions per set; "
        "GQA exact match, TextVQA VQA accuracy, VSR true/false answers, ScienceQA lowest-loss option). Chance picks "
        "uniformly among a question's possible answers; the answer prior always picks the answer most frequent for "
        "its question type in the set (the best a model that ignores the image can do).",
        "### Paired differences (same questions)\n\n" + analysis.differences_markdown(figures, cols),
        "### AIO per set\n\n" + analysis.aio_markdown(figures, labels, cols)
        + "\n\n*changed*: the instruction used is not the initial one; *content kept*: it asks what the initial one "
        "asks (the world's content reader); *verbatim span lost*: the optimized instruction lacks the question, "
        "options or OCR tokens word for word (what `aio.guard=content` checks; the demo runs `guard=none`, the "
        "paper's choice); *guard fell back*: the guard replaced it.",
        "### The IAS premise\n\n" + analysis.premise_markdown(figures, cols)
        + "\n\nOn the questions whose rewrite differs from the initial instruction: the answer under the instruction "
        "with the lower IAS (EMA row for the initial one, EMA + Rewriting row for the rewrite) against the answer "
        "under the higher-IAS one; r is Pearson's correlation of IAS with correctness over both instructions.",
        "### Traces (+ EMA + AIO)\n\n```\n"
        + "\n".join(analysis.trace_text(t["trace"], t["answer"], t["right"], t["benchmark"])
                    for t in summary["traces"])
        + "\n```",
        "### Bare chat questions\n\n" + chat_markdown(summary)
        + "\n\nHeld-out colour, shape and size questions as a person types them in a chat (no benchmark wrapper); "
        "right when the answer word is among the reply's words.",
        "### Across seeds\n\n" + analysis.robust_markdown(summary["robust"], cols),
        "### The base model (the shipped InstructBLIP stand-in)\n\n" + base_markdown(summary["base"]),
        "### Training\n\n"
        + "\n".join(f"- {name}: {s['seconds']} s, mean loss per epoch {s['epoch_losses']}"
                    for name, s in stages.items()),
        f"Timings (s): {json.dumps(summary['timings_s'])}; torch {summary['environment']['torch']}, "
        f"{summary['environment']['threads']} thread(s).",
    ]
    return "\n\n".join(parts) + "\n"


def chat_markdown(summary: Dict[str, Any]) -> str:
    """The bare chat questions answered right per row and seed, and the first seed's examples."""
    labels = row_labels(summary)
    seeds = summary["seeds"]
    rows = [[labels[row]] + [f"{s['chat'][row]['accuracy']:.1f} [{s['chat'][row]['ci'][0]:.1f}, "
                             f"{s['chat'][row]['ci'][1]:.1f}]" for s in seeds] for row in summary["chat"]]
    table = markdown_table(["Row"] + [f"seed {s['seed']} (n={s['chat'][next(iter(summary['chat']))]['n']})"
                                      for s in seeds], rows)
    examples = "\n".join(f"- {labels[row]}: \"{ex['question']}\" -> \"{ex['reply']}\" (answer: {ex['answer']})"
                         for row, cell in summary["chat"].items() for ex in cell["examples"][:1])
    return table + "\n\n" + examples


def base_markdown(base: Dict[str, Any]) -> str:
    """The base model's probes (vanilla row, questions in the common phrasing) on both splits, and its origin."""
    probes = base.get("probes") or {}
    kinds = list(next(iter(probes.values()), {}))
    rows = [[split] + [f"{per[k]['accuracy']:.1f} [{per[k]['ci'][0]:.1f}, {per[k]['ci'][1]:.1f}]" for k in kinds]
            for split, per in probes.items()]
    origin = (f"`{base.get('command')}` at commit {str(base.get('commit'))[:10]}, {base.get('seconds')} s; "
              f"weights SHA-256 {str(base.get('sha256'))[:16]}...")
    text = markdown_table(["Probe split"] + kinds, rows)
    aio = base.get("aio_content") or {}
    if aio:  # how often the base's AIO (full, unguarded, CMAA off) keeps a user-style instruction's content
        families = list(next(iter(aio.values()), {}))
        cell = "{estimate:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]".format
        rows = [[split, part] + [cell(**per[f][key]) for f in families] for split, per in aio.items()
                for part, key in (("rewrite", "rewrite_content_kept"), ("used", "content_kept"))]
        text += ("\n\nAIO's content kept by the base (%, user-style instructions of fresh scenes, AIO full, CMAA off):"
                 "\n\n" + markdown_table(["Split", "Instruction"] + families, rows))
    return text + "\n\n" + origin


def write_report(out: str, summary: Dict[str, Any]) -> str:
    """Write a run's chart (``summary["files"]["chart"]``), ``results.md`` (``summary["files"]["markdown"]``) and
    ``<out>/results.json``; returns the markdown."""
    analysis.chart(summary["files"]["chart"], figures_of(summary), row_labels(summary), columns(summary),
                   summary["baselines"])
    text = markdown(summary)
    with open(summary["files"]["markdown"], "w", encoding="utf-8") as handle:
        handle.write(text)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    return text


def load_results(out: str) -> Dict[str, Any]:
    """The summary of a finished run, ``<out>/results.json``.

    Raises:
        FileNotFoundError: If the run folder has no ``results.json``.
    """
    path = os.path.join(out, "results.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: run the demo with --out {out} first")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def readme_block(summary: Dict[str, Any]) -> str:
    """The demo's results as README shows them (the table and the paired differences, per seed when there are
    several; AIO's own figures and the IAS premise are in ``results.md``), rendered from ``results.json`` by the same
    table code."""
    cols = columns(summary)
    labels = row_labels(summary)
    figures = figures_of(summary)
    env = summary["environment"]
    seeds = [s["seed"] for s in summary.get("seeds", [])] or [summary["seed"]]
    parts = [
        f"Measured (seed {summary['seed']}, {summary['size']['n_eval']} held-out questions per set, "
        f"{env['threads']} torch thread(s), torch {env['torch']}; scores x100 with 95 % bootstrap intervals):",
        analysis.table_markdown(figures, labels, cols, summary["baselines"]),
    ]
    if len(seeds) > 1:  # each seed's paired differences, with the verdict; seed 0's intervals are in results.md
        parts += [f"Paired differences under seeds {', '.join(map(str, seeds))} (stage B and the evaluation), and "
                  "whether their 95 % intervals exclude zero in every seed:",
                  analysis.robust_markdown(summary["robust"], cols)]
    else:
        parts.append(analysis.differences_markdown(figures, cols))
    return "\n\n".join(parts)


def update_readme(path: str, summary: Dict[str, Any]) -> str:
    """Replace the block between :data:`README_BEGIN` and :data:`README_END` in ``path`` with :func:`readme_block`.

    Raises:
        ValueError: If the markers are missing.
    """
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path} has no demo results block ({README_BEGIN} ... {README_END})")
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(head + README_BEGIN + "\n" + readme_block(summary) + "\n" + README_END + tail)
    return path
