"""Per-sample scores of merged prediction records, for intervals and paired comparisons of Table 2's rows.

The benchmark scorers (:mod:`.benchmarks`) return one number per set; a bootstrap interval
(:mod:`lavis_vislinginstruct.metrics.bootstrap`) and a paired difference of two rows need the score of every
sample. For the accuracy-type benchmarks the set's number is the mean of these scores x100:

* GQA: LAVIS's exact match (the normalized prediction against the answer; 1 or 0);
* TextVQA, VizWiz: the EvalAI soft accuracy over the 10 answers (0, 0.3, 0.6, 0.9 or 1);
* ranked choice sets (VSR, IconQA, ScienceQA): 1 when the lowest-loss candidate is the correct one;
* VSR generated (section 4.3: true/false answers): 1 when the answer states the label
  (:func:`~lavis_vislinginstruct.metrics.true_false_answer`, as the benchmark's scorer reads it).

CIDEr (captioning), ROC-AUC (Hateful Memes) and MRR (Visual Dialog) are corpus statistics, not means of
per-sample scores: :func:`sample_scores` refuses them instead of returning a number that is not the set's.
"""

from typing import Any, Dict, List, Sequence

from lavis_vislinginstruct.metrics import gqa_exact_match, textvqa_accuracy, true_false_answer

SUPPORTED = ("gqa", "textvqa", "vizwiz", "vsr", "iconqa", "scienceqa")


def sample_score(benchmark: str, record: Dict[str, Any]) -> float:
    """The score of one merged record (``prediction`` and the benchmark's ground-truth fields) in ``[0, 1]``.

    Raises:
        ValueError: If the benchmark's metric is not a mean of per-sample scores, or the record lacks a field.
    """
    if benchmark not in SUPPORTED:
        raise ValueError(f"{benchmark}: its metric is not a mean of per-sample scores (supported: {SUPPORTED})")
    try:
        prediction = record["prediction"]
        if benchmark == "gqa":
            return float(gqa_exact_match(prediction, record["answer"]))
        if benchmark in ("textvqa", "vizwiz"):
            return float(textvqa_accuracy(prediction, record["answers"]))
        if isinstance(prediction, str):  # VSR generated: the stated truth against the label
            return float(true_false_answer(prediction) == int(record["label"]))
        return float(int(prediction) == int(record["correct_choice_idx"]))
    except KeyError as err:
        raise ValueError(f"{benchmark} record {record.get('instance_id')!r} has no field {err}") from err


def sample_scores(benchmark: str, records: Sequence[Dict[str, Any]]) -> List[float]:
    """:func:`sample_score` of every record, in order."""
    return [sample_score(benchmark, r) for r in records]
