"""The demo's report (``demo_report``) on a hand-made run summary: everything it shows renders from ``results.json``
alone, and ``python -m lavis_vislinginstruct.demo --readme`` rewrites only README's results block."""

import json

import pytest
from test_demo_analysis import Q_LEFT_COMMON, gqa_records, trace

from lavis_vislinginstruct import demo, demo_report
from lavis_vislinginstruct import demo_analysis as analysis

N = 20


def summary_of_a_run(out):
    """A summary as :func:`lavis_vislinginstruct.demo.run` builds it, for one held-out set (GQA) and the demo's rows."""
    rows = {
        "vanilla": {"gqa": gqa_records([i < 10 for i in range(N)])},
        "ema": {"gqa": gqa_records([i < 12 for i in range(N)])},
        "ema_rewrite": {"gqa": gqa_records([i < 15 for i in range(N)])},
        "ema_aio": {"gqa": gqa_records([i < 15 for i in range(N)])},
        "ema_aio_shuffled": {"gqa": gqa_records([i < 11 for i in range(N)])},
    }
    for record in rows["ema_rewrite"]["gqa"]:
        record["instruction"] = Q_LEFT_COMMON
    traces = {row: {"gqa": [trace(i, Q_LEFT_COMMON) for i in range(N)]} for row in ("ema_aio", "ema_aio_shuffled")}
    reported = {row: {"gqa": 100.0 * sum(r["prediction"] == "red" for r in per["gqa"]) / N}
                for row, per in rows.items()}
    figures = analysis.analyse(rows, traces, ["gqa"], reported)
    stage = {"checkpoint": "c.pth", "epoch_losses": [2.5, 1.25], "seconds": 3.0, "output_dir": "s"}
    example = {"question": "what colour is the thing?", "answer": "red", "reply": "The thing is red."}
    chat = {row: {"accuracy": 50.0 + k, "ci": [40.0, 60.0 + k], "n": N, "examples": [example]}
            for k, row in enumerate(demo.CHAT_ROWS)}
    second = dict(figures["differences"], **{"AIO - EMA": {"gqa": {"estimate": -1.0, "low": -3.0, "high": 1.0}}})
    return {
        "size": {"n_eval": N, "benchmarks": ["gqa"]},
        "seed": 0,
        "rows": {name: {"cmaa": row.cmaa, "aio": row.aio, "order": row.order, "label": row.label}
                 for name, row in demo.ROWS.items()},
        **figures,
        "baselines": {"gqa": {"chance": 38.3, "answer_prior": 45.2}},
        "stages": {"stage_b": stage},
        "chat": chat,
        "seeds": [{"seed": 0, "chat": chat, **figures}, {"seed": 1, "chat": chat, **figures, "differences": second}],
        "robust": analysis.robust_differences([figures["differences"], second]),
        "base": {"command": "python -m lavis_vislinginstruct.demo pretrain", "commit": "0123456789abc", "seconds": 60.0,
                 "sha256": "ab" * 32, "probes": {"eval": {"color": {"accuracy": 95.0, "ci": [90.0, 98.0], "n": 10}}},
                 "aio_content": {"train": {"vsr": {
                     "n": 10, "rewrite_content_kept": {"estimate": 90.0, "ci": [70.0, 100.0]},
                     "content_kept": {"estimate": 60.0, "ci": [30.0, 90.0]}}}}},
        "traces": demo_report.pick_traces(rows, traces, ["gqa"]),
        "timings_s": {"total": 9.0},
        "environment": {"torch": "2.x", "threads": 1, "machine": "x86_64", "python": "3.11"},
        "files": {"markdown": str(out / "results.md"), "chart": str(out / "ablation.png")},
    }


def figures_cell(summary, name):
    return summary["differences"][name]["gqa"]["estimate"]


def test_robust_differences_hold_only_when_every_seed_excludes_zero():
    up = {"d": {"gqa": {"estimate": 2.0, "low": 0.5, "high": 3.5}}}
    down = {"d": {"gqa": {"estimate": -2.0, "low": -3.5, "high": -0.5}}}
    wide = {"d": {"gqa": {"estimate": 1.0, "low": -0.5, "high": 2.5}}}
    assert analysis.robust_differences([up, up])["d"]["gqa"] == {"estimates": [2.0, 2.0], "holds": "+"}
    assert analysis.robust_differences([down])["d"]["gqa"]["holds"] == "-"
    assert analysis.robust_differences([up, wide])["d"]["gqa"]["holds"] is None
    assert analysis.robust_differences([up, down])["d"]["gqa"]["holds"] is None


def test_results_md_renders_from_results_json_alone(tmp_path):
    summary = summary_of_a_run(tmp_path)
    text = demo_report.write_report(str(tmp_path), summary)
    assert (tmp_path / "results.md").read_text() == text
    stored = json.loads((tmp_path / "results.json").read_text())
    assert demo_report.markdown(stored) == text  # nothing in results.md needs more than results.json
    for label in demo.LABELS.values():
        assert f"| {label} | " in text
    assert "| + EMA + Rewriting | 75.0 [" in text and "| *chance (uniform guess)* | 38.3 |" in text
    assert "[gqa 0]" in text and "answer: red" in text  # the picked trace, with the answer under it
    assert "- stage_b: 3.0 s, mean loss per epoch [2.5, 1.25]" in text
    assert "| + EMA + AIO (Rewriting + Comparison) | 52.0 [40.0, 62.0] | 52.0 [40.0, 62.0] |" in text  # chat, 2 seeds
    assert "| eval | 95.0 [90.0, 98.0] |" in text  # the base model's probes
    assert "| train | rewrite | 90.0 [70.0, 100.0] |" in text and "| train | used | 60.0 [30.0, 90.0] |" in text
    ema_vanilla = figures_cell(summary, "EMA - vanilla")
    assert f"{ema_vanilla:+.1f} / {ema_vanilla:+.1f} (" in text  # the difference under both seeds
    assert "| AIO - EMA | +" in text and "(not in every seed)" in text
    with open(tmp_path / "ablation.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_readme_flag_rewrites_only_the_results_block(tmp_path):
    summary = summary_of_a_run(tmp_path)
    demo_report.write_report(str(tmp_path), summary)
    readme = tmp_path / "README.md"
    head = "# Title\n\nIntro.\n\n"
    tail = "\n\nAfter the table.\n"
    readme.write_text(head + demo_report.README_BEGIN + "\nold numbers\n" + demo_report.README_END + tail)

    demo.main(["--out", str(tmp_path), "--readme", str(readme)])
    text = readme.read_text()
    block = demo_report.readme_block(json.loads((tmp_path / "results.json").read_text()))
    assert text == head + demo_report.README_BEGIN + "\n" + block + "\n" + demo_report.README_END + tail
    assert "old numbers" not in text and "| + EMA + AIO, scores in random order | 55.0 [" in block
    assert block.startswith("Measured (seed 0, 20 held-out questions per set, 1 torch thread(s), torch 2.x;")
    demo.main(["--out", str(tmp_path), "--readme", str(readme)])
    assert readme.read_text() == text  # rendering again changes nothing


def test_readme_rendering_names_what_is_missing(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no block here\n")
    with pytest.raises(FileNotFoundError, match="results.json not found"):
        demo.main(["--out", str(tmp_path), "--readme", str(readme)])
    demo_report.write_report(str(tmp_path), summary_of_a_run(tmp_path))
    with pytest.raises(ValueError, match="README.md has no demo results block"):
        demo.main(["--out", str(tmp_path), "--readme", str(readme)])
    assert readme.read_text() == "# no block here\n"
