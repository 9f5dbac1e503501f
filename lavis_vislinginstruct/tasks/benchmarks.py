"""The ten zero-shot benchmarks of VisLingInstruct (NAACL 2024, section 4.3, Table 1, Appendix D) as data.

Each :class:`Benchmark` says which ``vli_*`` builder and split it reads, how the model answers (``generation``:
``generate``/``predict_answers``; ``ranking``: ``predict_class`` over ``samples["candidates"]``), which ground-truth
fields of a sample go into its prediction record, and how the merged records are scored (functions of
:mod:`lavis_vislinginstruct.metrics`). Scores are on the paper's scale (x100).

The protocol is the paper's (section 4.3): lowest-loss ranking for ScienceQA, IconQA, Hateful Memes and Visual
Dialog only, generation for the other six.

* VSR generates an answer to Table 4's true/false question, read by :func:`metrics.true_false_answer` ("true"/"yes"
  = 1, "false"/"no" = 0 after lower-casing and dropping punctuation; anything else is wrong and counted as
  ``no_answer``). Ranking the candidates "true"/"false" stays available with ``run.task: vli_ranking`` (which
  cannot give an off-list answer).
* GQA reports LAVIS's exact match (``accuracy``) and, beside it, the same with the answer normalized too
  (``accuracy_normalized_answer``; :mod:`metrics.vqa_accuracy` says why they differ).

Choices where the paper is silent:

* Hateful Memes: ROC-AUC of the continuous score ``loss("no") - loss("yes")`` (higher = more hateful); the
  argmin accuracy is reported beside it.
* Visual Dialog: the last round of each of the 2064 val dialogs (Appendix D's count; dataset option ``rounds``,
  where ``configs/datasets/visdial/defaults.yaml`` gives the evidence), the ground truth's rank among the 100
  options by NLL (lower is better), ties ranked pessimistically (``metrics.ranking``); NDCG only when
  ``run.visdial_dense_annotations`` names the dense file (over the selected rounds that are densely annotated).
* NoCaps also reports CIDEr per domain when the annotation file gives each image's domain.
"""

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from lavis_vislinginstruct import metrics
from lavis_vislinginstruct.inference.rows import ROWS, TABLE2, Row, get_row, row_for

logger = logging.getLogger(__name__)

Records = List[Dict[str, Any]]


@dataclass(frozen=True)
class Benchmark:
    """One zero-shot benchmark: where its samples come from, how the model answers, how it is scored."""

    name: str  # short name used in configs and result files (``scienceqa``)
    title: str  # column title of the paper's Table 1 (``SciQA``)
    builder: str  # registered dataset builder
    split: str  # split of the builder that holds the paper's evaluation set (Appendix D)
    family: str  # the paper's protocol: generation | ranking
    metric: str  # primary metric key in the metrics dict (the number of Table 1)
    gt_keys: Tuple[str, ...]  # sample fields copied into every prediction record
    scorer: Callable[[Records, Dict[str, Any]], Dict[str, Any]] = field(repr=False, compare=False)
    method: str = ""  # generation only: generate (captions) | predict_answers (short answers)
    # generation settings written into the project configs (InstructBLIP's, lavis-facts section 4)
    num_beams: int = 5
    max_len: int = 10
    min_len: int = 1
    batch_size_eval: int = 8
    count: int = 0  # size of the paper's evaluation set (Appendix D, Table 3)
    other_families: Tuple[str, ...] = ()  # protocols it may also run with (``run.task``), not the paper's

    @property
    def families(self) -> Tuple[str, ...]:
        """The task families it can be evaluated with, the paper's first."""
        return (self.family,) + self.other_families


# ------------------------------------------------------------------------------------------------ scorers


def score_captions(records: Records, options: Dict[str, Any]) -> Dict[str, Any]:
    """CIDEr (PTB tokenizer via Java when available); per-domain CIDEr when records carry a ``domain``."""
    preds = {r["instance_id"]: r["prediction"] for r in records}
    refs = {r["instance_id"]: r["captions"] for r in records}
    result = metrics.cider(preds, refs)
    out = {
        "cider": result["CIDEr"],
        "cider_raw": result["CIDEr_raw"],
        "tokenizer": result["tokenizer"],
        "official_tokenizer": result["official"],
    }
    domains = sorted({r.get("domain") for r in records if r.get("domain")})
    for domain in domains:
        ids = [r["instance_id"] for r in records if r.get("domain") == domain]
        sub = metrics.cider({i: preds[i] for i in ids}, {i: refs[i] for i in ids})
        out[f"cider_{domain}"] = sub["CIDEr"]
    return out


def score_gqa(records: Records, options: Dict[str, Any]) -> Dict[str, Any]:
    """LAVIS's exact match (normalized prediction vs raw answer), and the same with the answer normalized too."""
    scored = [r for r in records if r.get("answer")]
    _require(scored, records, "answer")
    preds, answers = [r["prediction"] for r in scored], [r["answer"] for r in scored]
    return {
        "accuracy": metrics.mean_gqa_accuracy(preds, answers),
        "accuracy_normalized_answer": metrics.mean_gqa_accuracy(preds, answers, normalize_answer=True),
    }


def score_vqa(records: Records, options: Dict[str, Any]) -> Dict[str, Any]:
    """EvalAI/m4c soft accuracy over the 10 human answers (VizWiz, TextVQA; "unanswerable" is an answer)."""
    scored = [r for r in records if r.get("answers")]
    _require(scored, records, "answers")
    return {
        "accuracy": metrics.mean_textvqa_accuracy([r["prediction"] for r in scored], [r["answers"] for r in scored])
    }


def score_choice(records: Records, options: Dict[str, Any]) -> Dict[str, Any]:
    """Top-1 accuracy of the lowest-loss candidate."""
    preds, labels = [r["prediction"] for r in records], [r["correct_choice_idx"] for r in records]
    return {"accuracy": metrics.accuracy(preds, labels)}


def score_vsr(records: Records, options: Dict[str, Any]) -> Dict[str, Any]:
    """Generated (default): accuracy of the stated true/false and the share of answers that state neither
    (``no_answer``); ranked (``run.task: vli_ranking``): top-1 accuracy of the lowest-loss candidate."""
    if options.get("protocol") == "ranking":
        return score_choice(records, options)
    stated = [metrics.true_false_answer(r["prediction"]) for r in records]
    return {
        "accuracy": metrics.accuracy(stated, [r["label"] for r in records]),
        "no_answer": 100.0 * sum(s is None for s in stated) / len(stated),
    }


def score_hateful_memes(records: Records, options: Dict[str, Any]) -> Dict[str, Any]:
    """ROC-AUC (x100) of ``loss(no) - loss(yes)`` against the label, plus argmin accuracy."""
    labels = [r["label"] for r in records]
    hateful = [r["scores"][0] - r["scores"][1] for r in records]  # candidates are ["no", "yes"]
    return {
        "auc": 100.0 * metrics.roc_auc(labels, hateful),
        "accuracy": metrics.accuracy([r["prediction"] for r in records], labels),
    }


def score_visdial(records: Records, options: Dict[str, Any]) -> Dict[str, Any]:
    """MRR, R@1/5/10 and mean rank of the ground-truth option; NDCG with the dense annotations (optional)."""
    ranks = [metrics.ranks_from_scores(r["scores"], r["gt_index"], higher_is_better=False) for r in records]
    out = metrics.visdial_metrics(ranks)
    dense_path = options.get("visdial_dense_annotations")
    if dense_path:
        relevance = _read_dense_annotations(dense_path)
        values = [
            metrics.ndcg(r["scores"], relevance[key], higher_is_better=False)
            for r in records
            if (key := (int(r["image_id"]), int(r["round_id"]))) in relevance
        ]
        if values:
            out["ndcg"] = 100.0 * sum(values) / len(values)
            out["ndcg_rounds"] = len(values)
        else:
            logger.warning("%s matches no evaluated (image_id, round_id): NDCG not computed", dense_path)
    return out


def _read_dense_annotations(path: str) -> Dict[Tuple[int, int], List[float]]:
    """VisDial ``visdial_1.0_val_dense_annotations.json``: ``[{image_id, round_id (1-based), gt_relevance}]``."""
    with open(path, "r", encoding="utf-8") as handle:
        entries = json.load(handle)
    return {(int(e["image_id"]), int(e["round_id"])): list(e["gt_relevance"]) for e in entries}


def _require(scored: Records, records: Records, key: str) -> None:
    if not scored:
        raise ValueError(
            f"none of the {len(records)} predictions has ground truth '{key}' (a test split without answers?): "
            "predictions are written, but they can only be scored by the benchmark's server"
        )
    if len(scored) < len(records):
        unscored = len(records) - len(scored)
        logger.warning("%d of %d samples have no '%s' and are not scored", unscored, len(records), key)


# --------------------------------------------------------------------------------------------- the table

_CHOICE_GT = ("correct_choice_idx",)

# fmt: off
BENCHMARKS: Dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("flickr30k", "Flickr30K", "vli_flickr30k", "test", "generation", "cider", ("captions",),
                  score_captions, method="generate", max_len=80, min_len=10, count=1000),
        Benchmark("nocaps", "NoCaps", "vli_nocaps", "val", "generation", "cider", ("captions", "domain"),
                  score_captions, method="generate", max_len=80, min_len=10, count=4500),
        Benchmark("vsr", "VSR", "vli_vsr", "test", "generation", "accuracy", _CHOICE_GT + ("label",), score_vsr,
                  method="predict_answers", count=1222, other_families=("ranking",)),
        Benchmark("gqa", "GQA", "vli_gqa", "val", "generation", "accuracy", ("answer",), score_gqa,
                  method="predict_answers", count=12578),
        Benchmark("iconqa", "IconQA", "vli_iconqa", "test", "ranking", "accuracy", _CHOICE_GT, score_choice,
                  count=6316),
        Benchmark("vizwiz", "VizWiz", "vli_vizwiz", "val", "generation", "accuracy", ("answers",), score_vqa,
                  method="predict_answers", count=4319),
        Benchmark("textvqa", "TextVQA", "vli_textvqa", "val", "generation", "accuracy", ("answers",), score_vqa,
                  method="predict_answers", count=5000),
        Benchmark("visdial", "Visdial", "vli_visdial", "val", "ranking", "mrr", ("gt_index", "image_id", "round_id"),
                  score_visdial, batch_size_eval=1, count=2064),  # last rounds (configs/datasets/visdial)
        Benchmark("scienceqa", "SciQA", "vli_scienceqa", "test", "ranking", "accuracy", _CHOICE_GT, score_choice,
                  count=2017),
        Benchmark("hateful_memes", "HM", "vli_hateful_memes", "val", "ranking", "auc", _CHOICE_GT + ("label",),
                  score_hateful_memes, count=1040),
    )
}
# fmt: on

#: Table 1's column order.
ORDER: Tuple[str, ...] = tuple(BENCHMARKS)


def benchmark_for(name: Optional[str], dataset_names: Sequence[str]) -> Benchmark:
    """The benchmark named by ``run.benchmark``, else the one whose builder the config's single dataset is.

    Raises:
        ValueError: If the name is unknown, the config has no or several datasets, or they do not match.
    """
    names = list(dataset_names)
    if len(names) != 1:
        raise ValueError(
            f"an evaluation config names exactly one dataset (found {names or 'none'}); evaluate benchmarks one by one"
        )
    if name:
        if name not in BENCHMARKS:
            raise ValueError(f"run.benchmark {name!r} is not one of {', '.join(ORDER)}")
        bench = BENCHMARKS[name]
        if bench.builder != names[0]:
            raise ValueError(f"run.benchmark {name!r} reads {bench.builder}, but the config's dataset is {names[0]}")
        return bench
    for bench in BENCHMARKS.values():
        if bench.builder == names[0]:
            return bench
    raise ValueError(f"dataset {names[0]!r} is not one of the zero-shot benchmarks; set run.benchmark")


# ---------------------------------------------------------------------------------- ablation variants

#: Table 2's rows: name -> (CMAA enabled, AIO mode, label), from the one definition (:mod:`..inference.rows`).
#: ``ema_aio`` is VisLingInstruct (Table 1's "Ours").
VARIANTS: Dict[str, Tuple[bool, str, str]] = {
    name: (ROWS[name].cmaa, ROWS[name].aio, ROWS[name].label) for name in TABLE2
}


def run_row(name: Optional[str], model_cfg) -> Row:
    """The row of a run: ``run.row`` by name, else the one the model settings describe (``cmaa.enabled``,
    ``aio.mode``, ``aio.order``; the projection Table 2 pairs with the CMAA switch)."""
    if name:
        return get_row(str(name))
    return row_for(model_cfg.cmaa.enabled, model_cfg.aio.mode, model_cfg.aio.order)


def variant_name(row: Row, select: str = "generated") -> str:
    """Name of a run's row in result files: the row's name, with ``_best-ias`` for ``aio.select: best_ias``."""
    name = row.name
    if row.aio != "off" and select and select != "generated":
        name += f"_{select.replace('_', '-')}"
    return name


#: The four LLMs of the paper: model_type -> (registered arch, label in the paper's tables), Table 2's order.
LLMS: Dict[str, Tuple[str, str]] = {
    "flant5xl": ("vislinginstruct_t5", "FlanT5-XL"),
    "flant5xxl": ("vislinginstruct_t5", "FlanT5-XXL"),
    "vicuna7b": ("vislinginstruct_vicuna", "Vicuna-7B"),
    "vicuna13b": ("vislinginstruct_vicuna", "Vicuna-13B"),
}
