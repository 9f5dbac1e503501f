"""Collect evaluation results into the paper's Table 1 and Table 2, with the paper's numbers beside ours.

    python -m lavis_vislinginstruct.report output/vislinginstruct/eval [more files or folders ...] [--out-dir DIR]

Arguments are ``<split>_metrics.json`` files written by ``evaluate.py`` or folders searched for them. Writes
``<out-dir>/report.md`` (also printed) and ``<out-dir>/ablation.png``; the default ``<out-dir>`` lies beside the
results, ``report/`` in the folder that holds all the arguments (``output/vislinginstruct/eval/report`` above), so
a report never lands in the source tree unasked:

* **Table 1** (zero-shot, VisLingInstruct = CMAA on + AIO full) per LLM: the paper's InstructBLIP and "Ours" rows
  and this run's row, each cell of ours written ``ours (Δ vs paper)``.
* **Table 2** (ablation) per LLM: Vanilla, + EMA, + EMA + Rewriting, + EMA + AIO, each cell ``ours (paper)``.
* **Runs**: one line per result file (samples scored, metric, CIDEr tokenizer), so partial runs
  (``run.max_samples``) and unofficial CIDEr (no Java) are visible.

The paper's numbers (:data:`PAPER_TABLE1`, :data:`PAPER_TABLE2`) are transcribed from the NAACL 2024 paper; "/" (not
reported) is ``None``. The paper's two tables disagree in two cells of the full model: FlanT5-XXL GQA (48.1 in
Table 1, 48.3 in Table 2) and Vicuna-13B NoCaps (119.8 vs 120.8); each table is compared with its own numbers.
"""

import argparse
import json
import logging
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from lavis_vislinginstruct.figures import (
    METRIC_NAMES,
    Panel,
    Series,
    bar_chart,
    column_titles,
    format_number,
    markdown_table,
)
from lavis_vislinginstruct.tasks.benchmarks import BENCHMARKS, LLMS, ORDER, VARIANTS

logger = logging.getLogger(__name__)

Row = Tuple[Optional[float], ...]

# Columns: flickr30k nocaps vsr gqa iconqa vizwiz textvqa visdial scienceqa hateful_memes (ORDER).
# fmt: off
PAPER_TABLE1: Dict[str, Row] = {
    "BLIP-2 (FlanT5-XXL)":       (73.7, 104.5, 68.2, 44.6, 45.4, 29.4, 44.1, 46.9, 64.5, 52.0),
    "BLIP-2 (Vicuna-13B)":       (74.9, 107.5, 50.9, 41.0, 40.6, 19.6, 42.5, 45.1, 61.0, 53.7),
    "MiniGPT-4 (Vicuna-13B)":    (None, None, 50.7, 30.8, 37.6, 34.8, 18.7, None, None, 29.0),
    "LLaVA (Vicuna-13B)":        (None, None, 56.3, 41.3, 43.0, 37.7, 28.3, None, None, 9.2),
    "InstructBLIP (FlanT5-XL)":  (84.5, 119.9, 64.8, 48.4, 50.0, 32.7, 46.6, 46.6, 70.4, 56.6),
    "InstructBLIP (FlanT5-XXL)": (83.5, 120.0, 65.6, 47.9, 51.2, 30.9, 46.6, 48.5, 70.6, 54.1),
    "InstructBLIP (Vicuna-7B)":  (82.4, 123.1, 54.3, 49.2, 43.1, 34.5, 50.1, 45.2, 60.5, 59.6),
    "InstructBLIP (Vicuna-13B)": (82.8, 121.9, 52.1, 49.5, 44.8, 33.4, 50.7, 45.4, 63.1, 57.5),
    "BLIVA (Vicuna-13B)":        (87.1, None, 62.2, None, 44.9, 42.9, 58.0, 45.6, None, 55.6),
    "BLIVA (FlanT5-XXL)":        (87.7, None, 68.8, None, 52.4, 44.0, 57.2, 36.2, None, 50.0),
    "Ours (FlanT5-XL)":          (85.3, 119.5, 64.1, 47.9, 50.4, 33.0, 48.7, 47.0, 71.0, 60.0),
    "Ours (FlanT5-XXL)":         (88.5, 120.4, 66.9, 48.1, 51.2, 31.3, 48.8, 49.2, 81.8, 55.7),
    "Ours (Vicuna-7B)":          (87.9, 124.2, 60.1, 52.0, 44.2, 42.7, 60.6, 45.7, 74.6, 62.7),
    "Ours (Vicuna-13B)":         (84.0, 119.8, 56.2, 52.9, 50.3, 45.0, 65.6, 45.7, 71.0, 58.9),
}

PAPER_TABLE2: Dict[str, Dict[str, Row]] = {
    "flant5xl": {
        "vanilla":     (84.5, 119.9, 64.8, 48.4, 50.0, 32.7, 46.6, 46.6, 70.4, 56.6),
        "ema":         (85.1, 119.7, 63.5, 48.6, 50.0, 32.8, 48.5, 46.9, 70.6, 60.8),
        "ema_rewrite": (84.7, 118.1, 66.8, 48.5, 49.0, 31.8, 47.5, 44.8, 70.4, 57.3),
        "ema_aio":     (85.3, 119.5, 64.1, 47.9, 50.4, 33.0, 48.7, 47.0, 71.0, 60.0),
    },
    "flant5xxl": {
        "vanilla":     (83.5, 120.0, 65.6, 47.9, 51.2, 30.9, 46.6, 48.5, 70.6, 54.1),
        "ema":         (86.3, 120.3, 55.7, 48.0, 51.6, 31.5, 48.3, 49.0, 82.0, 55.2),
        "ema_rewrite": (85.3, 120.1, 66.5, 48.1, 50.9, 31.1, 46.7, 48.5, 73.5, 54.1),
        "ema_aio":     (88.5, 120.4, 66.9, 48.3, 51.2, 31.3, 48.8, 49.2, 81.8, 55.7),
    },
    "vicuna7b": {
        "vanilla":     (82.4, 123.1, 54.3, 49.2, 43.1, 34.5, 50.1, 45.2, 60.5, 59.6),
        "ema":         (81.6, 124.5, 60.6, 51.9, 43.2, 40.5, 49.9, 45.3, 55.4, 60.8),
        "ema_rewrite": (82.3, 124.5, 55.4, 47.6, 44.0, 40.3, 58.3, 43.4, 63.0, 62.2),
        "ema_aio":     (87.9, 124.2, 60.1, 52.0, 44.2, 42.7, 60.6, 45.7, 74.6, 62.7),
    },
    "vicuna13b": {
        "vanilla":     (82.8, 121.9, 52.1, 49.5, 44.8, 33.4, 50.7, 45.4, 63.1, 57.5),
        "ema":         (84.4, 120.2, 58.9, 51.6, 48.4, 43.0, 56.9, 43.0, 48.4, 61.0),
        "ema_rewrite": (80.4, 120.6, 52.5, 51.1, 49.3, 41.5, 62.4, 44.4, 68.0, 58.7),
        "ema_aio":     (84.0, 120.8, 56.2, 52.9, 50.3, 45.0, 65.6, 45.7, 71.0, 58.9),
    },
}
# fmt: on

FULL = "ema_aio"  # Table 1's "Ours" row


# ----------------------------------------------------------------------------------------------- loading


def find_result_files(paths: Sequence[str]) -> List[str]:
    """``*_metrics.json`` files among ``paths`` (files, or folders searched recursively), sorted.

    Raises:
        FileNotFoundError: If a path does not exist or no result file is found.
    """
    files = []
    for path in paths:
        if os.path.isfile(path):
            files.append(path)
        elif os.path.isdir(path):
            for root, _, names in os.walk(path):
                files += [os.path.join(root, n) for n in names if n.endswith("_metrics.json")]
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    if not files:
        raise FileNotFoundError(f"no *_metrics.json under {', '.join(paths)} (written by evaluate.py into result/)")
    return sorted(files)


def load_results(paths: Sequence[str]) -> Dict[Tuple[str, str, str], Dict[str, Any]]:
    """Result summaries keyed by ``(model_type, variant, benchmark)``; the latest run wins a duplicate key.

    Raises:
        ValueError: If a file is not an evaluation summary.
    """
    results: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    for path in find_result_files(paths):
        with open(path, "r", encoding="utf-8") as handle:
            summary = json.load(handle)
        if not {"benchmark", "variant", "value", "model"} <= set(summary):
            raise ValueError(f"{path} is not an evaluation summary (no benchmark/variant/value/model)")
        summary["path"] = path
        key = (summary["model"].get("model_type"), summary["variant"], summary["benchmark"])
        if key in results:
            older, newer = sorted([results[key], summary], key=lambda s: s.get("finished", ""))
            logger.warning("two results for %s: using %s, not %s", key, newer["path"], older["path"])
            summary = newer
        results[key] = summary
    check_same_weights(results)
    return results


def check_same_weights(results: Dict[Tuple[str, str, str], Dict[str, Any]]) -> None:
    """Refuse to put runs of one LLM that read different weight files (InstructBLIP ``checkpoint``,
    ``hf_checkpoint``, ViT, fine-tuned projection) in one table: its rows would not compare one model.

    Raises:
        ValueError: Naming two runs and the weight key where they differ.
    """
    seen: Dict[str, Tuple[Dict[str, str], str]] = {}
    for (llm, _, _), summary in sorted(results.items(), key=lambda kv: kv[1]["path"]):
        weights = summary["model"].get("weights")
        if weights is None:  # a summary from before run records named their weights
            continue
        if llm not in seen:
            seen[llm] = (weights, summary["path"])
            continue
        first, path = seen[llm]
        differ = sorted(k for k in set(first) | set(weights) if first.get(k) != weights.get(k))
        if differ:
            raise ValueError(
                f"{summary['path']} and {path} evaluate {llm} with different weights ({', '.join(differ)}: "
                f"{weights.get(differ[0]) or 'none'} vs {first.get(differ[0]) or 'none'}); a table compares rows of "
                "one model: report them separately (pass the folders of one model's runs)"
            )


# ------------------------------------------------------------------------------------------------ tables


def _ours(results, llm: str, variant: str, bench: str) -> Optional[float]:
    summary = results.get((llm, variant, bench))
    return None if summary is None else float(summary["value"])


def _llms_in(results) -> List[str]:
    present = {key[0] for key in results}
    return [llm for llm in LLMS if llm in present] + sorted(p for p in present if p not in LLMS and p)


def _variants_of(results, llm: str) -> List[str]:
    return list(VARIANTS) + sorted({k[1] for k in results if k[0] == llm and k[1] not in VARIANTS})


def table1(results) -> str:
    """Table 1 rows of the paper for each LLM in ``results``, then this run's VisLingInstruct row with deltas."""
    rows = []
    for llm in _llms_in(results):
        label = LLMS.get(llm, ("", llm))[1]
        for name in (f"InstructBLIP ({label})", f"Ours ({label})"):
            if name in PAPER_TABLE1:
                rows.append([f"{name}, paper"] + [format_number(v) for v in PAPER_TABLE1[name]])
        paper = PAPER_TABLE1.get(f"Ours ({label})", (None,) * len(ORDER))
        cells = []
        for bench, ref in zip(ORDER, paper):
            ours = _ours(results, llm, FULL, bench)
            cells.append(format_number(ours) if ours is None or ref is None else f"{ours:.1f} ({ours - ref:+.1f})")
        rows.append([f"**Ours ({label}), this run**"] + cells)
    title = "### Table 1: zero-shot results (VisLingInstruct = CMAA on + AIO full)"
    return "\n".join([title, "", markdown_table(["Model"] + column_titles(ORDER), rows)])


def table2(results) -> str:
    """Table 2 per LLM in ``results``: the four ablation rows, cells ``ours (paper)``."""
    lines = ["### Table 2: ablation of EMA and AIO, ours (paper)", ""]
    for llm in _llms_in(results):
        label = LLMS.get(llm, ("", llm))[1]
        paper_rows = PAPER_TABLE2.get(llm, {})
        rows = []
        for variant in _variants_of(results, llm):
            paper = paper_rows.get(variant, (None,) * len(ORDER))
            cells = [
                f"{format_number(_ours(results, llm, variant, b))} ({format_number(p)})" for b, p in zip(ORDER, paper)
            ]
            rows.append([VARIANTS[variant][2] if variant in VARIANTS else variant] + cells)
        lines += [f"**{label}**", "", markdown_table(["Row"] + column_titles(ORDER), rows), ""]
    return "\n".join(lines).rstrip()


def runs_table(results) -> str:
    """One line per result: what was evaluated and how completely."""
    llm_order = {llm: i for i, llm in enumerate(_llms_in(results))}
    variant_order = {v: i for i, v in enumerate(VARIANTS)}

    def order(item):
        llm, variant, bench = item[0]
        bench_pos = ORDER.index(bench) if bench in ORDER else len(ORDER)
        return (llm_order.get(llm, 99), variant_order.get(variant, 99), str(variant), bench_pos)

    rows = []
    for (llm, variant, bench), s in sorted(results.items(), key=order):
        spec = BENCHMARKS.get(bench)
        notes = []
        if s["metrics"].get("official_tokenizer") is False:
            notes.append("CIDEr with the fallback tokenizer (no Java): not official")
        if s["model"].get("finetuned"):
            notes.append(f"finetuned: {s['model']['finetuned']}")
        expected = spec.count if spec else "?"
        metric = METRIC_NAMES.get(bench, s.get("metric"))
        rows.append([
            llm, variant, bench, s.get("split", ""), f"{s.get('num_samples', '?')} ({expected})", metric,
            f"{float(s['value']):.2f}", "; ".join(notes), s["path"],
        ])
    header = ["LLM", "row", "benchmark", "split", "samples (paper)", "metric", "value", "notes", "file"]
    return "\n".join(["### Runs", "", markdown_table(header, rows)])


def markdown(results) -> str:
    """The whole report."""
    parts = ["## VisLingInstruct zero-shot evaluation", table1(results), table2(results), runs_table(results)]
    return "\n\n".join(parts)


# ------------------------------------------------------------------------------------------------- chart


def ablation_chart(results, path: str) -> str:
    """Grouped bars of the four ablation rows per benchmark (one panel per LLM); the paper's values as ticks."""
    panels = []
    for llm in _llms_in(results):
        paper_rows = PAPER_TABLE2.get(llm, {})
        series = [
            Series(
                f"{VARIANTS[variant][2]} (ours)",
                [_ours(results, llm, variant, b) for b in ORDER],
                marks=paper_rows.get(variant),
            )
            for variant in VARIANTS
        ]
        panels.append(Panel(LLMS.get(llm, ("", llm))[1], ORDER, series))
    return bar_chart(path, panels, ylabel="score (paper scale)")


# ------------------------------------------------------------------------------------------ command line


def default_out_dir(paths: Sequence[str]) -> str:
    """``report/`` in the deepest folder holding every path (a file counts by its folder)."""
    folders = [os.path.abspath(p if os.path.isdir(p) else os.path.dirname(p) or ".") for p in paths]
    return os.path.join(os.path.commonpath(folders), "report")


def main(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Write ``report.md`` and ``ablation.png`` into ``--out-dir`` and print the markdown; returns their paths."""
    parser = argparse.ArgumentParser(description="VisLingInstruct result tables beside the paper's")
    parser.add_argument("results", nargs="+", help="*_metrics.json files or folders holding them")
    parser.add_argument(
        "--out-dir", default=None, help="where report.md and ablation.png go (default: report/ beside the results)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    results = load_results(args.results)
    text = markdown(results)
    out_dir = args.out_dir or default_out_dir(args.results)
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, "report.md")
    with open(md_path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    png_path = ablation_chart(results, os.path.join(out_dir, "ablation.png"))
    sys.stdout.write(text + "\n")  # the report itself is this command's output
    logger.info("wrote %s and %s", md_path, png_path)
    return {"markdown": md_path, "chart": png_path}


if __name__ == "__main__":
    main()
