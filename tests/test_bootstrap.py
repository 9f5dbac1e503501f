"""Bootstrap intervals (``metrics.bootstrap``) against cases that can be checked by hand or by enumeration."""

import itertools

import numpy as np
import pytest

from lavis_vislinginstruct.metrics.bootstrap import (
    Interval,
    mean_interval,
    paired_difference,
    pearson,
    statistic_interval,
)


def test_constant_scores_have_a_zero_width_interval():
    interval = mean_interval([1.0] * 7)
    assert (interval.estimate, interval.low, interval.high, interval.n) == (1.0, 1.0, 1.0, 7)


def test_two_samples_span_the_whole_range():
    # resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5 % and 97.5 % quantiles are
    # 0 and 1
    interval = mean_interval([0.0, 1.0], n_resamples=4000)
    assert (interval.estimate, interval.low, interval.high) == (0.5, 0.0, 1.0)


def test_interval_matches_the_exact_bootstrap_distribution():
    values = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    # every one of the 5^5 equally likely resamples, enumerated: the exact bootstrap distribution of the mean
    means = np.array([values[list(rows)].mean() for rows in itertools.product(range(5), repeat=5)])
    exact_low, exact_high = np.quantile(means, [0.025, 0.975])
    interval = mean_interval(values, n_resamples=20000, seed=3)
    assert interval.estimate == pytest.approx(0.6)
    assert (interval.low, interval.high) == (exact_low, exact_high) == (0.2, 1.0)


def test_half_width_follows_the_binomial_standard_error():
    # 400 coin flips with p = 0.5: the interval's half-width is close to 1.96 * sqrt(0.25 / 400) = 0.049
    values = [i % 2 for i in range(400)]
    interval = mean_interval(values, n_resamples=4000)
    assert interval.estimate == 0.5
    assert (interval.high - interval.low) / 2 == pytest.approx(0.049, abs=0.005)


def test_agrees_with_scipy_percentile_bootstrap():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    values = (rng.random(300) < 0.7).astype(float)
    ours = mean_interval(values, n_resamples=5000, seed=1)
    theirs = stats.bootstrap((values,), np.mean, n_resamples=5000, method="percentile", random_state=2)
    assert ours.low == pytest.approx(theirs.confidence_interval.low, abs=0.01)
    assert ours.high == pytest.approx(theirs.confidence_interval.high, abs=0.01)


def test_same_seed_same_interval_other_seed_other_resamples():
    values = np.random.default_rng(5).random(50)
    assert mean_interval(values, seed=0) == mean_interval(values, seed=0)
    assert mean_interval(values, seed=0) != mean_interval(values, seed=1)


def test_paired_difference_of_a_constant_shift_is_exact():
    a = np.random.default_rng(1).random(30)
    interval = paired_difference(a + 1.0, a)
    assert interval.estimate == pytest.approx(1.0)
    assert interval.low == pytest.approx(1.0) and interval.high == pytest.approx(1.0)
    assert interval.excludes_zero()


def test_paired_interval_is_narrower_than_the_cells_when_rows_share_their_errors():
    rng = np.random.default_rng(2)
    a = (rng.random(400) < 0.6).astype(float)
    b = a.copy()
    b[:20] = 1.0 - b[:20]  # the rows disagree on 20 of 400 samples
    diff = paired_difference(a, b, n_resamples=4000)
    cell = mean_interval(a, n_resamples=4000)
    # normal approximation of the paired interval: 2 * 1.96 * sd(a - b) / sqrt(n)
    expected = 2 * 1.96 * np.std(a - b) / np.sqrt(400)
    assert diff.high - diff.low == pytest.approx(expected, rel=0.2)
    assert diff.high - diff.low < (cell.high - cell.low) / 2
    assert diff.estimate == pytest.approx(a.mean() - b.mean())


def test_paired_difference_needs_the_same_samples():
    with pytest.raises(ValueError, match="same samples"):
        paired_difference([1.0, 0.0], [1.0])


@pytest.mark.parametrize(
    "values, message",
    [([], "empty"), ([1.0, float("nan")], "non-finite"), ([[1.0, 0.0]], "one-dimensional")],
)
def test_bad_input_is_named(values, message):
    with pytest.raises(ValueError, match=message):
        mean_interval(values)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="n_resamples"):
        mean_interval([1.0], n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1.0], confidence=1.0)


def test_pearson_and_its_interval():
    x = np.arange(10, dtype=float)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert np.isnan(pearson(x, np.ones(10)))
    # a perfect linear relation stays perfect on every resample that is not constant (those are dropped)
    interval = statistic_interval([x, 3 * x], pearson, n_resamples=500)
    assert interval.low == pytest.approx(1.0) and interval.high == pytest.approx(1.0)
    assert 0 < interval.resamples <= 500
    with pytest.raises(ValueError, match="undefined"):
        statistic_interval([x, np.ones(10)], pearson)
    with pytest.raises(ValueError, match="aligned"):
        statistic_interval([x, x[:5]], pearson)


def test_scaled_and_serialized():
    interval = Interval(0.5, 0.4, 0.6, 100, 0.95, 2000).scaled(100)
    assert interval.to_dict(digits=1) == {
        "estimate": 50.0, "low": 40.0, "high": 60.0, "n": 100, "confidence": 0.95, "resamples": 2000
    }
