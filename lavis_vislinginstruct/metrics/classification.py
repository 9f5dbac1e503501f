"""Top-1 accuracy, the true/false reading of a generated VSR answer, and ROC-AUC.

VisLingInstruct (NAACL 2024, Sec. 4.3, Table 1) reports top-1 accuracy on VSR, IconQA, ScienceQA (image subset) and
ROC-AUC on HatefulMemes. IconQA and ScienceQA predict the candidate with the lowest language-model loss (section
4.3, as InstructBLIP); VSR generates an answer to Table 4's "is this statement true or false?", read by
:func:`true_false_answer`. Accuracy follows the official scripts (ScienceQA ``tools/evaluate_acc.py``, VSR
``src/eval.py``: fraction of predictions equal to the label), reported x100 as in the paper.

What counts as a VSR answer: the generated text is lower-cased, every character that is not a letter or a digit
becomes a space, and the words are joined again; ``true`` or ``yes`` alone is label 1, ``false`` or ``no`` alone is
label 0, anything else (a sentence, ``true or false``, an empty answer) is no answer and counts as wrong. Yes/no is
accepted because Table 4's question is a yes/no question in form and instruction-tuned models answer either way.

ROC-AUC is what HatefulMemes' official evaluation computes with ``sklearn.metrics.roc_auc_score(labels, scores)``.
It is implemented here without sklearn through its rank (Mann-Whitney U) form: with average ranks over tied scores,
``AUC = (sum of positive ranks - P(P+1)/2) / (P N)``, the probability that a random positive outscores a random
negative, ties counting one half. This equals sklearn's trapezoidal ROC area, ties included. The score must be
continuous (e.g. ``loss("no") - loss("yes")``); a 0/1 prediction gives a degenerate AUC. AUC is returned as a
fraction in ``[0, 1]``, like sklearn; multiply by 100 for the paper's table.
"""

import logging
import re
from typing import Any, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["accuracy", "roc_auc", "true_false_answer"]

TRUE_ANSWERS = frozenset({"true", "yes"})
FALSE_ANSWERS = frozenset({"false", "no"})
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def accuracy(preds: Sequence[Any], labels: Sequence[Any]) -> float:
    """Top-1 accuracy in percent.

    Args:
        preds: Predicted labels (indices or strings), one per example.
        labels: Ground-truth labels, aligned with ``preds``.

    Returns:
        ``100 * mean(pred == label)``.

    Raises:
        ValueError: On empty input or length mismatch.
    """
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions but {len(labels)} labels")
    if len(preds) == 0:
        raise ValueError("no predictions to score")
    return 100.0 * sum(1 for p, y in zip(preds, labels) if p == y) / len(preds)


def true_false_answer(text: str) -> Optional[int]:
    """The label a generated VSR answer states (module docstring).

    Args:
        text: The generated answer.

    Returns:
        1 for ``true``/``yes``, 0 for ``false``/``no`` (case and punctuation ignored), None for anything else.
    """
    words = " ".join(_NOT_ALNUM.sub(" ", text.lower()).split())
    if words in TRUE_ANSWERS:
        return 1
    if words in FALSE_ANSWERS:
        return 0
    return None


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` in ascending order, tied values sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start index of each run of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    # A run occupying sorted positions start..end-1 holds ranks start+1..end, whose mean is (start + 1 + end) / 2.
    run_ranks = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve of binary labels against continuous scores (Mann-Whitney form).

    Args:
        labels: Binary ground truth, 0/1 or bool; 1 is the positive class (hateful).
        scores: Higher means more likely positive, aligned with ``labels``.

    Returns:
        The AUC in ``[0, 1]`` (0.5 for uninformative scores).

    Raises:
        ValueError: On length mismatch, empty input, non-binary labels, NaN scores, or when only one class is
            present (AUC is undefined then).
    """
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"labels and scores must be 1-D and aligned, got shapes {y.shape} and {s.shape}")
    if len(y) == 0:
        raise ValueError("no examples to score")
    if not np.isin(y, [0, 1]).all():
        raise ValueError(f"labels must be binary 0/1, got values {sorted(set(y.tolist()))[:5]}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    positive = y.astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC-AUC is undefined when only one class is present ({n_pos} positives, {n_neg} negatives)")
    ranks = _average_ranks(s)
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))
