"""Bootstrap intervals for per-sample scores: a cell of a table, a paired difference of two rows, a rate.

The paper reports single numbers (Tables 1 and 2); on the demo world's few hundred questions a number alone cannot
say whether two rows differ, so every figure gets a 95 % percentile bootstrap interval (Efron and Tibshirani 1993,
ch. 13):

* :func:`mean_interval`: the mean of per-sample scores (0/1 correctness, VQA soft accuracy) and the 2.5th / 97.5th
  percentiles of the means of ``n_resamples`` resamples drawn with replacement.
* :func:`paired_difference`: two rows scored on the *same* samples (EMA - vanilla): resampling the samples (the
  per-sample differences) keeps the pairing, so what two rows have in common cancels out; this interval is much
  narrower than the two cells' intervals suggest.
* :func:`statistic_interval`: any statistic of several aligned arrays resampled together (e.g. Pearson's ``r``);
  resamples on which the statistic is undefined (NaN, e.g. a constant column) are dropped and counted.

Pure NumPy; the resamples come from ``numpy.random.default_rng(seed)``, so an interval is a function of its inputs
and the seed. Scales are those of the inputs (the caller multiplies by 100 for the paper's scale).
"""

from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

__all__ = ["Interval", "mean_interval", "paired_difference", "pearson", "statistic_interval"]

DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval.

    Attributes:
        estimate: The statistic on the original samples.
        low: Lower end of the interval (the ``(1 - confidence) / 2`` quantile of the resampled statistics).
        high: Upper end.
        n: Number of samples.
        confidence: Nominal coverage (0.95).
        resamples: Resamples the interval is computed from (after dropping undefined ones).
    """

    estimate: float
    low: float
    high: float
    n: int
    confidence: float
    resamples: int

    def scaled(self, factor: float) -> "Interval":
        """The same interval with ``estimate``, ``low`` and ``high`` multiplied by ``factor`` (e.g. 100)."""
        return Interval(self.estimate * factor, self.low * factor, self.high * factor, self.n, self.confidence,
                        self.resamples)

    def excludes_zero(self) -> bool:
        """Whether 0 lies outside ``[low, high]`` (for a difference: the sign is resolved at this confidence)."""
        return self.low > 0 or self.high < 0

    def to_dict(self, digits: Optional[int] = None) -> Dict[str, Any]:
        """JSON-ready fields; ``digits`` rounds the three values."""
        out = asdict(self)
        if digits is not None:
            for key in ("estimate", "low", "high"):
                out[key] = round(out[key], digits)
        return out


def _as_array(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: nothing to bootstrap")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values")
    return array


def _check(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def _indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) sample indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _interval(estimate: float, stats: np.ndarray, n: int, confidence: float) -> Interval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high), n, confidence, int(stats.size))


def mean_interval(
    values: Sequence[float], n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of ``values`` with its percentile bootstrap interval.

    Args:
        values: One score per sample (e.g. 1.0 correct, 0.0 wrong).
        n_resamples: Bootstrap resamples.
        confidence: Coverage of the interval.
        seed: Seed of the resampling.

    Returns:
        The interval.

    Raises:
        ValueError: On empty or non-finite input or invalid settings.
    """
    _check(n_resamples, confidence)
    array = _as_array(values, "values")
    means = array[_indices(array.size, n_resamples, seed)].mean(axis=1)
    return _interval(array.mean(), means, array.size, confidence)


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``mean(a) - mean(b)`` for scores of the same samples, with the paired bootstrap interval.

    Args:
        a: Per-sample scores of one row.
        b: Per-sample scores of the other row, aligned with ``a`` (same sample at the same index).
        n_resamples: Bootstrap resamples.
        confidence: Coverage of the interval.
        seed: Seed of the resampling.

    Raises:
        ValueError: If the two arrays differ in length (they must score the same samples).
    """
    first, second = _as_array(a, "a"), _as_array(b, "b")
    if first.size != second.size:
        raise ValueError(f"paired scores need the same samples: {first.size} vs {second.size} values")
    return mean_interval(first - second, n_resamples, confidence, seed)


def statistic_interval(
    arrays: Sequence[Sequence[float]],
    statistic: Callable[..., float],
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``statistic(*arrays)`` with a bootstrap interval; the arrays are resampled together (rows stay aligned).

    Args:
        arrays: Aligned per-sample arrays (e.g. IAS and correctness).
        statistic: Function of the arrays returning a float; NaN marks a resample where it is undefined.
        n_resamples: Bootstrap resamples.
        confidence: Coverage of the interval.
        seed: Seed of the resampling.

    Raises:
        ValueError: If the arrays differ in length, or the statistic is undefined on the samples themselves or
            on every resample.
    """
    _check(n_resamples, confidence)
    columns = [_as_array(x, f"arrays[{i}]") for i, x in enumerate(arrays)]
    sizes = {c.size for c in columns}
    if len(sizes) != 1:
        raise ValueError(f"arrays must be aligned, got lengths {sorted(sizes)}")
    n = sizes.pop()
    estimate = float(statistic(*columns))
    if np.isnan(estimate):
        raise ValueError("the statistic is undefined on these samples")
    stats = np.array([statistic(*(c[rows] for c in columns)) for rows in _indices(n, n_resamples, seed)])
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        raise ValueError("the statistic is undefined on every resample")
    return _interval(estimate, stats, n, confidence)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of two aligned arrays; NaN when either is constant."""
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float("nan") if denominator == 0 else float((dx * dy).sum() / denominator)
