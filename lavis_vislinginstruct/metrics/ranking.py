"""Visual Dialog ranking metrics: rank of the ground-truth option, R@k, mean rank, MRR, NDCG.

VisLingInstruct (NAACL 2024, Table 1) reports Visual Dialog (val2018, 100 candidate answers per round) by MRR, with
the candidates scored by language-model loss as in InstructBLIP. The definitions follow the VisDial challenge starter
code (batra-mlp-lab/visdial-challenge-starter-pytorch, ``visdialch/metrics.py``, BSD licence; reimplemented here):

* the options of a round are ranked by descending score, ranks ``1..N``; the metric input is the rank of the
  ground-truth option (``gt_index``) in every round;
* ``R@k = mean(rank <= k)``, ``mean rank = mean(rank)``, ``MRR = mean(1 / rank)`` over all rounds;
* NDCG is computed only on the densely annotated round of a dialog: ``k`` = number of options with relevance > 0,
  ``DCG@k = sum_{i<k} rel(option at position i) / log2(i + 2)`` for the predicted order, divided by the same sum for
  the ideal (relevance-descending) order.

Scale: the starter code returns fractions; the paper's table reports MRR x100 (e.g. 45.7), so
:func:`visdial_metrics` returns R@k and MRR x100 and the mean rank unscaled. :func:`ndcg` returns one round's
value in ``[0, 1]``.

Ties: the starter code sorts with ``torch.sort`` whose order among equal scores is unspecified. We fix a rule:
``tie_break="pessimistic"`` (default) ranks the ground truth *after* every option with an equal score, so a scorer
that gives all options the same score gets rank N rather than a lucky rank; ``tie_break="index"`` orders equal scores
by option index (a stable sort), matching implementations that use a stable sort. Ties are rare with LM losses.
"""

import logging
import math
from typing import Dict, Sequence

logger = logging.getLogger(__name__)

__all__ = ["ranks_from_scores", "visdial_metrics", "ndcg"]

_TIE_BREAKS = ("pessimistic", "index")


def _as_floats(scores: Sequence[float], name: str) -> list:
    values = [float(s) for s in scores]
    if not values:
        raise ValueError(f"{name} is empty")
    if any(math.isnan(v) for v in values):
        raise ValueError(f"{name} contains NaN")
    return values


def ranks_from_scores(
    scores: Sequence[float],
    gt_index: int,
    higher_is_better: bool = True,
    tie_break: str = "pessimistic",
) -> int:
    """Rank (1 = best) of the ground-truth option among one round's options.

    Args:
        scores: One score per option (e.g. log-likelihoods, or LM losses with ``higher_is_better=False``).
        gt_index: 0-based index of the ground-truth option (VisDial's ``gt_index``).
        higher_is_better: Whether a larger score means a better option.
        tie_break: ``"pessimistic"``: options with a score equal to the ground truth's all rank before it;
            ``"index"``: among equal scores, the lower option index ranks first.

    Returns:
        The rank in ``1..len(scores)``.

    Raises:
        ValueError: On empty/NaN scores, an out-of-range ``gt_index`` or an unknown ``tie_break``.
    """
    values = _as_floats(scores, "scores")
    if tie_break not in _TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {_TIE_BREAKS}, got {tie_break!r}")
    if not 0 <= gt_index < len(values):
        raise ValueError(f"gt_index {gt_index} out of range for {len(values)} options")
    if not higher_is_better:
        values = [-v for v in values]
    gt = values[gt_index]
    better = sum(1 for v in values if v > gt)
    if tie_break == "pessimistic":
        tied_before = sum(1 for i, v in enumerate(values) if v == gt and i != gt_index)
    else:
        tied_before = sum(1 for i, v in enumerate(values) if v == gt and i < gt_index)
    return 1 + better + tied_before


def visdial_metrics(ranks: Sequence[int]) -> Dict[str, float]:
    """Sparse-annotation VisDial metrics from the ground-truth rank of every round.

    Args:
        ranks: Ground-truth ranks (1-based), one per dialog round.

    Returns:
        ``{"r@1", "r@5", "r@10", "mrr"}`` in percent (x100) and ``"mean_rank"`` unscaled.

    Raises:
        ValueError: If ``ranks`` is empty or contains a rank below 1.
    """
    ranks = [int(r) for r in ranks]
    if not ranks:
        raise ValueError("ranks is empty")
    if min(ranks) < 1:
        raise ValueError(f"ranks are 1-based, got {min(ranks)}")
    n = len(ranks)
    return {
        "r@1": 100.0 * sum(r <= 1 for r in ranks) / n,
        "r@5": 100.0 * sum(r <= 5 for r in ranks) / n,
        "r@10": 100.0 * sum(r <= 10 for r in ranks) / n,
        "mean_rank": sum(ranks) / n,
        "mrr": 100.0 * sum(1.0 / r for r in ranks) / n,
    }


def _dcg(relevance_in_order: Sequence[float]) -> float:
    return sum(rel / math.log2(i + 2) for i, rel in enumerate(relevance_in_order))


def ndcg(scores: Sequence[float], relevance: Sequence[float], higher_is_better: bool = True) -> float:
    """NDCG@k of one densely annotated round, k = number of options with relevance > 0.

    The predicted order sorts by score, equal scores by option index (a full order is needed, so the pessimistic
    rule of :func:`ranks_from_scores` does not apply).

    Args:
        scores: One score per option.
        relevance: One non-negative relevance per option (VisDial ``gt_relevance``).
        higher_is_better: Whether a larger score means a better option.

    Returns:
        The NDCG in ``[0, 1]``.

    Raises:
        ValueError: On length mismatch, empty/NaN input, negative relevance, or no relevant option.
    """
    values = _as_floats(scores, "scores")
    rel = _as_floats(relevance, "relevance")
    if len(values) != len(rel):
        raise ValueError(f"{len(values)} scores but {len(rel)} relevance values")
    if min(rel) < 0:
        raise ValueError("relevance must be non-negative")
    k = sum(r > 0 for r in rel)
    if k == 0:
        raise ValueError("NDCG is undefined for a round without any relevant option")
    sign = -1.0 if higher_is_better else 1.0
    predicted = sorted(range(len(values)), key=lambda i: (sign * values[i], i))
    ideal = sorted(rel, reverse=True)
    return _dcg([rel[i] for i in predicted[:k]]) / _dcg(ideal[:k])
