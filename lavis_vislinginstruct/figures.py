"""Markdown tables and grouped bar charts of Table-2-shaped results (VisLingInstruct, NAACL 2024, Tables 1 and 2).

One drawing and table code path for :mod:`lavis_vislinginstruct.report` (our numbers beside the paper's) and
:mod:`lavis_vislinginstruct.demo` (the demo world's rows with bootstrap intervals and chance levels): both build
rows of cell strings and :class:`Panel` objects, and this module turns them into markdown and PNG. Nothing here
reads result files or knows about models.

A chart has one panel per LLM (or one for the demo); in a panel, benchmarks are groups along x and each
:class:`Series` (an ablation row) is one bar per benchmark, optionally with an interval (error bar) and a mark per
bar (the paper's value, drawn as a black tick). :class:`Line` draws a level per benchmark across its whole group
(chance, blind answer prior).
"""

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from lavis_vislinginstruct.tasks.benchmarks import BENCHMARKS

#: Bar colours of the ablation rows in Table 2's order (vanilla, EMA, EMA + Rewriting, EMA + AIO, more rows).
ROW_COLORS = ("#9e9e9e", "#64b5f6", "#ffb74d", "#e53935", "#8e24aa", "#43a047")

Cells = Sequence[Optional[float]]
#: What each benchmark's number is, as the paper's Table 1 reports it.
METRIC_NAMES = {
    "flickr30k": "CIDEr",
    "nocaps": "CIDEr",
    "vsr": "accuracy",
    "gqa": "exact match",
    "iconqa": "accuracy",
    "vizwiz": "VQA accuracy",
    "textvqa": "VQA accuracy",
    "visdial": "MRR",
    "scienceqa": "accuracy",
    "hateful_memes": "ROC-AUC",
}


def format_number(value: Optional[float], digits: int = 1) -> str:
    """``value`` with ``digits`` decimals, ``–`` when missing."""
    return "–" if value is None else f"{value:.{digits}f}"


def format_interval(estimate: Optional[float], low: float, high: float, digits: int = 1, signed: bool = False) -> str:
    """``57.3 [52.1, 62.4]``; ``signed`` writes a difference as ``+1.5 [-0.5, +3.5]``."""
    if estimate is None:
        return "–"
    spec = f"+.{digits}f" if signed else f".{digits}f"
    return f"{estimate:{spec}} [{low:{spec}}, {high:{spec}}]"


def column_titles(benchmarks: Sequence[str], with_metric: bool = False) -> List[str]:
    """Table 1's column titles of ``benchmarks``; ``with_metric`` adds the metric, e.g. ``GQA (accuracy)``."""
    titles = []
    for name in benchmarks:
        bench = BENCHMARKS.get(name)
        title = bench.title if bench else name
        titles.append(f"{title} ({METRIC_NAMES.get(name, bench.metric)})" if with_metric and bench else title)
    return titles


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table.

    Raises:
        ValueError: If a row has another number of cells than the header.
    """
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {list(row)} has {len(row)} cells, the header {len(header)}")
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Series:
    """One ablation row in a panel: a bar per benchmark.

    Attributes:
        label: Legend label.
        values: Bar heights, aligned with the panel's benchmarks (``None``: no bar).
        low: Lower ends of the intervals (error bars), or ``None`` for none.
        high: Upper ends.
        marks: A reference value per bar drawn as a black tick (the paper's number), or ``None``.
    """

    label: str
    values: Cells
    low: Optional[Cells] = None
    high: Optional[Cells] = None
    marks: Optional[Cells] = None


@dataclass
class Line:
    """A level per benchmark drawn across its group of bars (``linestyle``: ``dotted``, ``dashed``...)."""

    label: str
    values: Cells
    linestyle: str = "dotted"


@dataclass
class Panel:
    """One subplot: benchmarks along x, one :class:`Series` per row, optional :class:`Line` levels."""

    title: str
    benchmarks: Sequence[str]
    series: List[Series]
    lines: List[Line] = field(default_factory=list)
    mark_label: str = "paper"


def _draw(ax, panel: Panel) -> None:
    n = max(len(panel.series), 1)
    width = 0.8 / n
    marked = False
    for j, series in enumerate(panel.series):
        xs = [i + (j - (n - 1) / 2) * width for i in range(len(panel.benchmarks))]
        shown = [k for k, v in enumerate(series.values) if v is not None]
        heights = [series.values[k] for k in shown]
        ax.bar([xs[k] for k in shown], heights, width, color=ROW_COLORS[j % len(ROW_COLORS)], label=series.label)
        if series.low is not None and series.high is not None:
            err = [[heights[m] - series.low[k] for m, k in enumerate(shown)],
                   [series.high[k] - heights[m] for m, k in enumerate(shown)]]
            ax.errorbar([xs[k] for k in shown], heights, yerr=err, fmt="none", ecolor="black", elinewidth=0.8,
                        capsize=2)
        if series.marks is not None:
            pts = [(xs[k], v) for k, v in enumerate(series.marks) if v is not None]
            if pts:
                ax.scatter(*zip(*pts), marker="_", s=120, color="black", label=None if marked else panel.mark_label)
                marked = True
    for line in panel.lines:
        first = True
        for i, value in enumerate(line.values):
            if value is None:
                continue
            ax.hlines(value, i - 0.45, i + 0.45, colors="black", linestyles=line.linestyle,
                      label=line.label if first else None)
            first = False
    ax.set_xticks(range(len(panel.benchmarks)))
    ax.set_xticklabels(column_titles(panel.benchmarks))
    ax.set_title(panel.title)


def bar_chart(path: str, panels: Sequence[Panel], ylabel: str, title: str = "", headroom: float = 1.3) -> str:
    """Draw ``panels`` one above the other into ``path`` (PNG); returns ``path``.

    Args:
        path: Output file.
        panels: The subplots.
        ylabel: Label of every y axis.
        title: Figure title (optional).
        headroom: The y axis reaches ``headroom`` x the tallest bar or interval, leaving room for the legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError("no panels to draw")
    widest = max(len(p.benchmarks) for p in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 1.3 * widest + 2), 3.4 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        _draw(ax, panel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, ax.get_ylim()[1] * headroom)
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
