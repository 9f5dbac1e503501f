"""Pure metric functions for the VisLingInstruct zero-shot suite (paper Table 1).

Metrics take in-memory predictions and ground truth and return numbers or dicts; tasks do all file I/O.

Scales: per-example functions (``vqa_accuracy``, ``textvqa_accuracy``, ``ndcg``) and ``roc_auc`` return fractions in
``[0, 1]``; corpus-level helpers (``mean_*_accuracy``, ``accuracy``, ``visdial_metrics`` R@k/MRR, ``cider``'s
``CIDEr``) return the paper's x100 scale.

Benchmark -> function: Flickr30K, NoCaps -> :func:`cider`; VSR -> :func:`true_false_answer` + :func:`accuracy`
(ranked on request: :func:`accuracy`); IconQA, ScienceQA -> :func:`accuracy`; GQA -> :func:`mean_gqa_accuracy`
(LAVIS's rule); VizWiz, TextVQA -> :func:`mean_textvqa_accuracy` (EvalAI normalization); VQA v2-style ->
:func:`mean_vqa_accuracy` (the official evaluator); Visual Dialog -> :func:`ranks_from_scores` + :func:`visdial_metrics`
(MRR); HatefulMemes -> :func:`roc_auc`.
"""

from .caption_scores import PTB_PUNCTUATION, cider, fallback_ptb_tokenize
from .classification import accuracy, roc_auc, true_false_answer
from .ranking import ndcg, ranks_from_scores, visdial_metrics
from .vqa_accuracy import (
    evalai_normalize,
    gqa_exact_match,
    mean_gqa_accuracy,
    mean_textvqa_accuracy,
    mean_vqa_accuracy,
    normalize_vqa_answer,
    process_digit_article,
    process_punctuation,
    textvqa_accuracy,
    vqa_accuracy,
)

__all__ = [
    "PTB_PUNCTUATION",
    "accuracy",
    "cider",
    "evalai_normalize",
    "fallback_ptb_tokenize",
    "gqa_exact_match",
    "mean_gqa_accuracy",
    "mean_textvqa_accuracy",
    "mean_vqa_accuracy",
    "ndcg",
    "normalize_vqa_answer",
    "process_digit_article",
    "process_punctuation",
    "ranks_from_scores",
    "roc_auc",
    "textvqa_accuracy",
    "true_false_answer",
    "visdial_metrics",
    "vqa_accuracy",
]
