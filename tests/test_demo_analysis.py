"""The demo's figures (``demo_analysis``) on hand-made records: per-sample scores, intervals, paired differences, AIO
figures and the IAS premise, each checked against a value computed here by hand."""

import pytest

from lavis_vislinginstruct import demo_analysis as analysis
from lavis_vislinginstruct.aio.trace import AIOTrace
from lavis_vislinginstruct.tasks.sample_scores import sample_score, sample_scores
from lavis_vislinginstruct.world import instructions as ins

Q_LEFT = ins.gqa_instruction("hey, what colour is the thing on the left?")
Q_LEFT_COMMON = ins.gqa_instruction("What color is the left object?")
Q_RIGHT_COMMON = ins.gqa_instruction("What color is the right object?")


def gqa_records(correct):
    return [{"instance_id": str(i), "prediction": "red" if ok else "blue", "answer": "red",
             "instruction": Q_LEFT} for i, ok in enumerate(correct)]


def trace(i, used, rewritten=Q_LEFT_COMMON, ias=(2.0, 1.0), optimized=None, **extra):
    """An AIOTrace dict as evaluation writes it (guard none: the verbatim question is lost, nothing fell back)."""
    fields = dict(mode="full", initial=Q_LEFT, rewritten=rewritten, ias_initial=ias[0], ias_rewritten=ias[1],
                  optimized=used if optimized is None else optimized, used=used, guard="none",
                  keep_spans=["hey, what colour is the thing on the left?"])
    fields.update(extra)
    fields.setdefault("lost_spans", [] if fields["optimized"] == Q_LEFT else list(fields["keep_spans"]))
    return {"instance_id": str(i), **AIOTrace(**fields).to_dict()}


def test_sample_scores_reproduce_the_benchmark_metrics():
    assert sample_scores("gqa", gqa_records([True, False])) == [1.0, 0.0]
    # TextVQA soft accuracy: 2 of 10 annotators said "cat" -> min(1, matches / 3) over leave-one-out subsets
    record = {"prediction": "cat", "answers": ["cat"] * 2 + ["dog"] * 8}
    assert sample_score("textvqa", record) == pytest.approx((8 * 2 / 3 + 2 * 1 / 3) / 10)
    assert sample_score("scienceqa", {"prediction": 2, "correct_choice_idx": 2}) == 1.0
    assert sample_score("vsr", {"prediction": 1, "correct_choice_idx": 0}) == 0.0  # ranked
    assert sample_score("vsr", {"prediction": "True.", "label": 1}) == 1.0  # generated: the stated truth
    assert sample_score("vsr", {"prediction": "false", "label": 1}) == 0.0
    with pytest.raises(ValueError, match="not a mean of per-sample scores"):
        sample_score("flickr30k", {"prediction": "a caption"})
    with pytest.raises(ValueError, match="no field 'answer'"):
        sample_score("gqa", {"instance_id": "7", "prediction": "red"})


def test_cells_differences_and_premise():
    n = 40
    vanilla = gqa_records([i < 20 for i in range(n)])  # 50 %
    ema = gqa_records([i < 24 for i in range(n)])  # 60 %: right on 4 more questions
    rewrite = gqa_records([i < 30 for i in range(n)])  # 75 %
    aio = gqa_records([i < 30 for i in range(n)])
    rows = {"vanilla": {"gqa": vanilla}, "ema": {"gqa": ema}, "ema_rewrite": {"gqa": rewrite},
            "ema_aio": {"gqa": aio}}
    for record in rewrite:
        record["instruction"] = Q_LEFT_COMMON
    # the rewrite scores lower on every question but the last ten, where the initial one scores lower
    traces = {"ema_aio": {"gqa": [trace(i, Q_LEFT_COMMON, ias=(2.0, 1.0) if i < 30 else (1.0, 2.0)) for i in range(n)]}}
    reported = {"vanilla": {"gqa": 50.0}, "ema": {"gqa": 60.0}, "ema_rewrite": {"gqa": 75.0}, "ema_aio": {"gqa": 75.0}}
    figures = analysis.analyse(rows, traces, ["gqa"], reported)

    cell = figures["table"]["ema"]["gqa"]
    assert cell["estimate"] == 60.0 and cell["low"] < 60.0 < cell["high"] and cell["n"] == n
    diff = figures["differences"]["EMA - vanilla"]["gqa"]
    assert diff["estimate"] == pytest.approx(10.0) and diff["low"] >= 0.0  # the 4 flips all go one way
    assert figures["differences"]["AIO - EMA"]["gqa"]["estimate"] == pytest.approx(15.0)

    aio = figures["aio"]["ema_aio"]["gqa"]
    assert aio["samples"] == n and aio["changed"]["estimate"] == 100.0
    assert aio["content_kept"]["estimate"] == 100.0  # "thing on the left" and "left object" ask the same
    assert aio["verbatim_spans_lost"]["estimate"] == 100.0 and aio["guard_fired"]["estimate"] == 0.0

    premise = figures["premise"]["gqa"]
    # lower IAS: the rewrite on 0-29 (right on all 30), the initial on 30-39 (EMA right on none of them)
    assert premise["pairs"] == n and premise["rewrite_mismatches"] == 0
    assert premise["correct_lower_ias"]["estimate"] == pytest.approx(75.0)
    # higher IAS: the initial on 0-29 (EMA right on 0-23), the rewrite on 30-39 (wrong)
    assert premise["correct_higher_ias"]["estimate"] == pytest.approx(60.0)
    assert premise["lower_minus_higher"]["estimate"] == pytest.approx(15.0)
    assert premise["ias_correctness_r"]["estimate"] < 0  # lower IAS goes with right answers


def test_aio_figures_count_changes_content_and_guard():
    traces = [
        trace(0, Q_LEFT),  # unchanged
        trace(1, Q_LEFT_COMMON),  # changed, same content
        trace(2, Q_RIGHT_COMMON),  # changed, other object
        trace(3, Q_LEFT, optimized="red", guard="content", guard_fired=True, reason="lost task content"),  # an answer
    ]
    figures = analysis.aio_figures(traces)
    assert figures["changed"]["estimate"] == 50.0 and figures["counts"]["changed"] == 2
    assert figures["content_kept_when_changed"]["estimate"] == 50.0
    assert figures["content_kept"]["estimate"] == 75.0  # unchanged ones keep it, of course
    assert figures["guard_fired"]["estimate"] == 25.0
    assert figures["verbatim_spans_lost"]["estimate"] == 75.0  # all but the unchanged one lost the user's words


def test_rows_must_score_the_same_samples_and_reproduce_the_reported_value():
    rows = {"vanilla": {"gqa": gqa_records([True, False])}, "ema": {"gqa": gqa_records([True, True])}}
    with pytest.raises(ValueError, match="evaluate.py"):
        analysis.analyse(rows, {}, ["gqa"], {"vanilla": {"gqa": 50.0}, "ema": {"gqa": 90.0}})
    rows["ema"]["gqa"][1]["instance_id"] = "other"
    with pytest.raises(ValueError, match="other samples"):
        analysis.analyse(rows, {}, ["gqa"], {"vanilla": {"gqa": 50.0}, "ema": {"gqa": 100.0}})


def test_markdown_and_chart(tmp_path):
    rows = {"vanilla": {"gqa": gqa_records([True, False] * 5)}, "ema": {"gqa": gqa_records([True] * 10)}}
    figures = analysis.analyse(rows, {}, ["gqa"], {"vanilla": {"gqa": 50.0}, "ema": {"gqa": 100.0}})
    labels = {"vanilla": "Vanilla", "ema": "+ EMA"}
    base = {"gqa": {"chance": 30.0, "answer_prior": 40.0}}
    text = analysis.table_markdown(figures, labels, ["gqa"], base)
    assert "| Vanilla | 50.0 [" in text and "| + EMA | 100.0 [100.0, 100.0] |" in text
    assert "| *chance (uniform guess)* | 30.0 |" in text
    assert "+50.0 [" in analysis.differences_markdown(figures, ["gqa"])
    png = analysis.chart(str(tmp_path / "c.png"), figures, labels, ["gqa"], base)
    with open(png, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
