"""``vli_generation`` and ``vli_ranking``: zero-shot evaluation of VisLingInstruct (NAACL 2024, section 4.3).

Both tasks run in LAVIS 1.0.2's evaluation flow (``RunnerBase.evaluate`` → ``task.evaluation(model, loader)`` →
``task.after_evaluation(results, split, epoch)``), on the stock ``runner_base`` (GPU) or ``runner_vli`` (CPU):

1. ``evaluation`` reads the prediction shards already in ``result_dir`` (:mod:`.result_store`) and predicts only
   the samples that have none: the split's remaining samples are divided between the ranks (every
   ``world_size``-th sample, so nothing is padded or repeated), loaded by a loader over just those samples, and
   each batch's records are appended to the rank's JSONL shard and flushed. An interrupted run, started again
   with the same ``run.output_dir`` and job id, therefore resumes where it stopped.
2. ``after_evaluation``: rank 0 merges all shards (one record per ``instance_id``, dataset order; a missing
   sample is an error), scores them with the benchmark's metric (:mod:`.benchmarks`), and writes
   ``<split>_predictions.json``, ``<split>_metrics.json`` and, with AIO on, ``<split>_traces.json`` (the AIO
   traces). Every rank returns the same metrics dict (``agg_metrics`` = the Table 1 number).

The model never formats prompts: samples carry ``text_input`` (Table 4's instruction, filled by the dataset).
Both tasks answer through one :class:`~lavis_vislinginstruct.inference.pipeline.VisLingInstructPipeline` per
run, built for the run's row of Table 2 (``run.row``: ``vanilla``, ``ema``, ``ema_rewrite``, ``ema_aio``,
``ema_aio_shuffled``; :mod:`lavis_vislinginstruct.inference.rows`), so one loaded model can run every row.
Without ``run.row`` the row is the one the model settings describe (``model.cmaa.enabled``, ``model.aio.mode``,
``model.aio.order``). Generation answers with the pipeline's ``generate`` (captioning, and short answers with
InstructBLIP's ``predict_answers`` length penalty); ranking calls its ``predict_class`` over
``samples["candidates"]`` (NLL, lower is better). The pipeline returns one AIO trace per sample, kept with the
predictions. A resumed run first gives the pipeline's optimizer the rewrites of the samples it already finished
(``InstructionOptimizer.remember``), so the remaining samples get the rewrites, and traces, of an uninterrupted run.
The summary counts how often AIO changed the instruction, lost task content and fell back (``summary["aio"]``).

Run keys read here (``run:`` section): ``row``, ``benchmark`` (default: inferred from the dataset), ``test_splits``
(default: the benchmark's split), ``resume`` (default True), ``max_samples`` (first N samples only; 0 = all),
generation: ``inference_method``, ``num_beams``, ``max_len``, ``min_len``, ``length_penalty``,
``repetition_penalty`` (translated into the run's :class:`~lavis_vislinginstruct.models.generation.Decoding`); ranking:
``score`` (``sum`` (default) | ``mean`` NLL per candidate, :meth:`RankingTask.settings_from`), ``chunk_size``;
Visual Dialog: ``visdial_dense_annotations`` (NDCG). ``run.task`` picks the protocol: each benchmark runs with the
paper's (section 4.3), and VSR also with ``vli_ranking`` (:mod:`.benchmarks`).
"""

import datetime
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from lavis.common.dist_utils import get_rank, get_world_size, is_dist_avail_and_initialized, is_main_process
from lavis.common.logger import MetricLogger
from lavis.common.registry import registry
from lavis.datasets.data_utils import prepare_sample
from lavis.tasks.base_task import BaseTask
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Subset

from ..aio.trace import AIOTrace, summarize
from ..datasets.builders.base import resolve_storage
from ..inference.pipeline import VisLingInstructPipeline
from ..inference.rows import Row
from ..models.config import VisLingInstructCfg
from ..models.generation import Decoding
from .benchmarks import Benchmark, benchmark_for, run_row, variant_name
from .result_store import PredictionStore, file_digest, merge_records, with_weight_digests

logger = logging.getLogger(__name__)

#: Model keys that name weight files; the run fingerprint holds their digests, not their paths.
WEIGHT_KEYS = ("checkpoint", "finetuned", "hf_checkpoint", "vision.checkpoint")


class VliEvalTask(BaseTask):
    """Shared evaluation loop, result files and scoring; subclasses implement :meth:`predict`.

    Args:
        benchmark: The benchmark being evaluated.
        settings: Decoding (generation) or scoring (ranking) settings, passed to the model.
        model_info: Arch, model type, the row and its switches (``row``, ``cmaa``, ``projection``, ``aio``,
            ``aio_select``, ``variant``).
        row: The row of Table 2 the run answers as.
        fingerprint_settings: Everything that determines the predictions (model, dataset, task settings).
        options: ``resume``, ``max_samples``, ``test_splits``, ``visdial_dense_annotations``.
    """

    family = ""
    task_name = ""

    def __init__(
        self,
        benchmark: Benchmark,
        settings: Dict[str, Any],
        model_info: Dict[str, Any],
        fingerprint_settings: Dict[str, Any],
        options: Dict[str, Any],
        row: Row,
    ):
        super().__init__()
        self.row = row
        self._pipeline: Optional[VisLingInstructPipeline] = None
        self.benchmark = benchmark
        self.settings = settings
        self.model_info = model_info
        self.fingerprint_settings = fingerprint_settings
        self.options = options
        self._runs: Dict[str, Dict[str, Any]] = {}

    @classmethod
    def settings_from(cls, run_cfg, benchmark: Benchmark) -> Dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def setup_task(cls, cfg=None, **kwargs) -> "VliEvalTask":
        """Resolve the benchmark (``run.benchmark`` or the config's dataset), settings and ablation switches."""
        run = cfg.run_cfg
        bench = benchmark_for(run.get("benchmark"), list(cfg.datasets_cfg.keys()))
        if cls.family not in bench.families:
            allowed = " or ".join(f"vli_{family}" for family in bench.families)
            raise ValueError(f"{bench.name} is evaluated by {allowed}, not {cls.task_name}: set run.task accordingly")
        settings = cls.settings_from(run, bench)
        model_container = OmegaConf.to_container(cfg.model_cfg, resolve=True)
        typed = VisLingInstructCfg.from_omegaconf(cfg.model_cfg)
        row = run_row(run.get("row"), typed)
        model_info = {
            "arch": model_container.get("arch"),
            "model_type": model_container.get("model_type"),
            **row.to_dict(),
            "aio_select": typed.aio.select,
            "aio_guard": typed.aio.guard,
            "aio_order": row.order,
            "finetuned": model_container.get("finetuned", "") or "",
            "variant": variant_name(row, typed.aio.select),
        }
        if model_info["finetuned"] and typed.finetuned != model_info["finetuned"]:
            raise ValueError(
                f"model.finetuned={model_info['finetuned']!r} would not be loaded (the typed model config does not "
                "keep it); refusing to evaluate other weights than the config names"
            )
        dense = run.get("visdial_dense_annotations", "") or ""  # relative paths are under cache_root
        options = {
            "resume": bool(run.get("resume", True)),
            "max_samples": int(run.get("max_samples", 0) or 0),
            "test_splits": list(run.get("test_splits") or [bench.split]),
            "visdial_dense_annotations": resolve_storage(dense) if dense else "",
            "protocol": cls.family,  # tells the scorer of a benchmark with two protocols (VSR) which one ran
        }
        weights = with_weight_digests(_without_row_switches(model_container), WEIGHT_KEYS)
        model_info["weights"] = _weight_values(weights)
        model_info["weight_files"] = _weight_values(model_container)
        fingerprint_settings = {
            "benchmark": bench.name,
            "task": {"name": cls.task_name, **settings},
            "row": row.to_dict(),
            "model": weights,
            "dataset": OmegaConf.to_container(cfg.datasets_cfg, resolve=True),
        }
        return cls(bench, settings, model_info, fingerprint_settings, options, row)

    def pipeline(self, model) -> VisLingInstructPipeline:
        """The run's pipeline: ``model`` answering as the run's row (built on first use, kept for the run so AIO's
        rewrite cache serves every batch)."""
        if self._pipeline is None or self._pipeline.model is not model:
            self._pipeline = VisLingInstructPipeline(model, self.row)
        return self._pipeline

    def build_datasets(self, cfg) -> Dict[str, Any]:
        """LAVIS's builders; fails early if a split of ``run.test_splits`` was not built."""
        datasets = super().build_datasets(cfg)
        built = datasets[self.benchmark.builder]
        absent = [s for s in self.options["test_splits"] if s not in built]
        if absent:
            raise ValueError(
                f"run.test_splits {absent} not built by {self.benchmark.builder} (it has {sorted(built)}); "
                f"{self.benchmark.name}'s evaluation split is {self.benchmark.split!r}"
            )
        return datasets

    # ----------------------------------------------------------------------------------------------- loop

    def evaluation(self, model, data_loader, cuda_enabled: Optional[bool] = None) -> List[Dict[str, Any]]:
        """Predict the split's samples that have no prediction yet, appending records to this rank's shard."""
        dataset = getattr(data_loader, "loader", data_loader).dataset  # PrefetchLoader (GPU) wraps the loader
        split = getattr(dataset, "split", None) or "eval"
        ids = _instance_ids(dataset)
        if self.options["max_samples"]:
            ids = ids[: self.options["max_samples"]]
        store = PredictionStore(registry.get_path("result_dir"), split)
        self._runs[split] = {"store": store, "ids": ids}

        reuse = store.check_run(self.fingerprint_settings, self.options["resume"])  # same verdict on every rank
        _barrier()
        if is_main_process():
            if not reuse:
                store.clear()
            store.write_run(self.fingerprint_settings)
        rank, world = get_rank(), get_world_size()
        store.repair(rank)
        _barrier()
        done_records = store.read()
        done = {str(r["instance_id"]) for r in done_records if "instance_id" in r}
        # every rank must divide the same pending list: a rank that read after another had begun writing would see
        # fewer pending samples, take another share of them, and leave a sample to no rank
        _barrier()
        remembered = _remember_rewrites(self.pipeline(model), done_records)
        pending = [i for i, sample_id in enumerate(ids) if sample_id not in done]
        mine = pending[rank::world]
        logger.info(
            "%s %s: %d samples, %d already predicted, %d to predict on %d rank(s)",
            self.benchmark.name, split, len(ids), len(ids) - len(pending), len(pending), world,
        )
        if remembered:
            logger.info("AIO: %d rewrites of finished samples reused", remembered)

        self.model_info.update(projection_record(model, self.row, self.model_info))
        if cuda_enabled is None:
            cuda_enabled = next(model.parameters()).is_cuda
        start, written = time.time(), 0
        if mine:
            loader = self._loader(data_loader, dataset, mine, cuda_enabled)
            metric_logger = MetricLogger(delimiter="  ")
            with store.writer(rank) as writer:
                header = f"Evaluation {self.benchmark.name} ({self.model_info['variant']})"
                for samples in metric_logger.log_every(loader, 10, header):
                    samples = prepare_sample(samples, cuda_enabled=cuda_enabled)
                    writer.write(self.valid_step(model=model, samples=samples))
                written = writer.count
        _barrier()
        return [{"rank": rank, "new_samples": written, "seconds": time.time() - start}]

    def valid_step(self, model, samples: Dict[str, Any]) -> List[Dict[str, Any]]:
        """One record per sample: id, the model's output, the instruction used, ground truth, AIO trace."""
        outputs, traces = self.predict(model, samples)
        records = []
        for i, output in enumerate(outputs):
            record = {"instance_id": str(samples["instance_id"][i]), **output}
            record["instruction"] = traces[i].used
            for key in self.benchmark.gt_keys:
                record[key] = _plain(samples[key][i])
            if traces[i].mode != "off":
                record["aio"] = traces[i].to_dict()
            records.append(record)
        return records

    def predict(self, model, samples: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], List[AIOTrace]]:
        """The model's output fields for each sample of the batch, and the AIO traces."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------------------- results

    def after_evaluation(self, val_result, split_name, epoch, **kwargs) -> Dict[str, Any]:
        """Rank 0 merges and scores (module docstring); every rank returns the same summary."""
        _barrier()
        summary, error = None, None
        if is_main_process():
            try:
                summary = self._finalize(split_name, val_result)
            except Exception as err:  # noqa: BLE001  (re-raised below, after the other ranks are told)
                summary, error = {"__error__": f"{type(err).__name__}: {err}"}, err
        if is_dist_avail_and_initialized():
            box = [summary]
            dist.broadcast_object_list(box, src=0)
            summary = box[0]
        if error is not None:
            raise error
        if "__error__" in summary:
            raise RuntimeError(f"rank 0 could not merge the results: {summary['__error__']}")
        return summary

    def _finalize(self, split_name: str, val_result: List[Dict[str, Any]]) -> Dict[str, Any]:
        run = self._runs.get(split_name) or next(iter(self._runs.values()))
        store, ids = run["store"], run["ids"]
        records = merge_records(store.read(), ids)
        scores = self.benchmark.scorer(records, self.options)
        files = {
            "predictions": store.write_json(
                "predictions.json", [{k: v for k, v in r.items() if k != "aio"} for r in records], indent=None
            )
        }
        traces = [{"instance_id": r["instance_id"], **r["aio"]} for r in records if r.get("aio")]
        if traces:
            files["traces"] = store.write_json("traces.json", traces, indent=None)
        aio_counts = summarize([AIOTrace.from_dict(t) for t in traces]) if traces else None
        value = float(scores[self.benchmark.metric])
        summary = {
            "benchmark": self.benchmark.name,
            "title": self.benchmark.title,
            "split": store.split,
            "metric": self.benchmark.metric,
            "value": value,
            "agg_metrics": value,
            "metrics": scores,
            "num_samples": len(records),
            "aio": aio_counts,
            "model": dict(self.model_info),
            "variant": self.model_info["variant"],
            "task": {"name": self.task_name, **self.settings},
            "world_size": get_world_size(),
            "rank0": val_result[0] if val_result else {},
            "finished": datetime.datetime.now().isoformat(timespec="seconds"),
            "files": files,
        }
        files["metrics"] = store.path("metrics.json")
        store.write_json("metrics.json", summary)
        with open(os.path.join(registry.get_path("output_dir"), "evaluate.txt"), "a", encoding="utf-8") as handle:
            handle.write(json.dumps({split_name: {"agg_metrics": value, **scores}}) + "\n")
        bench = self.benchmark
        logger.info("%s %s (%s): %s = %.2f", bench.name, split_name, summary["variant"], bench.metric, value)
        if aio_counts:
            logger.info(
                "AIO on %d samples: instruction changed %d, task content lost %d, guard (%s) fell back %d, empty %d",
                aio_counts["samples"], aio_counts["changed"], aio_counts["content_lost"],
                self.model_info.get("aio_guard", "?"), aio_counts["guard_fired"], aio_counts["empty"],
            )
        return summary

    # ------------------------------------------------------------------------------------------- helpers

    @staticmethod
    def _loader(data_loader, dataset, indices: List[int], cuda_enabled: bool) -> DataLoader:
        """A loader over ``indices`` with the runner's batch size, workers and collater."""
        base = getattr(data_loader, "loader", data_loader)
        return DataLoader(
            Subset(dataset, indices),
            batch_size=base.batch_size or 1,
            num_workers=base.num_workers,
            collate_fn=base.collate_fn,
            shuffle=False,
            pin_memory=cuda_enabled,
        )


@registry.register_task("vli_generation")
class GenerationTask(VliEvalTask):
    """Captioning (``generate``) and short-answer VQA (``predict_answers``): Flickr30K, NoCaps, GQA, VizWiz, TextVQA."""

    family = "generation"
    task_name = "vli_generation"

    @classmethod
    def settings_from(cls, run_cfg, benchmark: Benchmark) -> Dict[str, Any]:
        method = run_cfg.get("inference_method", benchmark.method)
        if method not in ("generate", "predict_answers"):
            raise ValueError(f"run.inference_method must be generate or predict_answers, got {method!r}")
        return {
            "method": method,
            "num_beams": int(run_cfg.get("num_beams", benchmark.num_beams)),
            "max_len": int(run_cfg.get("max_len", benchmark.max_len)),
            "min_len": int(run_cfg.get("min_len", benchmark.min_len)),
            "length_penalty": _optional_float(run_cfg.get("length_penalty")),  # None: the model family's default
            "repetition_penalty": _optional_float(run_cfg.get("repetition_penalty")),  # generate only
        }

    def decoding(self, model) -> Decoding:
        """The run's decoding: LAVIS's run keys (``max_len``, ``min_len``, ...) translated here, with the defaults of
        InstructBLIP's ``generate`` (captioning) or ``predict_answers`` (short answers)."""
        s = self.settings
        length_penalty = 1.0 if s["method"] == "generate" else model.answer_length_penalty()
        repetition_penalty = 1.5  # InstructBLIP's generate default; predict_answers passes none of its own
        if s["length_penalty"] is not None:
            length_penalty = s["length_penalty"]
        if s["method"] == "generate" and s["repetition_penalty"] is not None:
            repetition_penalty = s["repetition_penalty"]
        return Decoding.from_lavis(
            max_length=s["max_len"], min_length=s["min_len"], num_beams=s["num_beams"],
            repetition_penalty=repetition_penalty, length_penalty=length_penalty,
        )

    def predict(self, model, samples: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Generated text per sample (stripped)."""
        texts, traces = self.pipeline(model).generate(samples, self.decoding(model), return_traces=True)
        return [{"prediction": text.strip()} for text in texts], traces


@registry.register_task("vli_ranking")
class RankingTask(VliEvalTask):
    """Candidate ranking by LM loss (``predict_class``): IconQA, ScienceQA, Hateful Memes, Visual Dialog (and VSR on
    request)."""

    family = "ranking"
    task_name = "vli_ranking"

    @classmethod
    def settings_from(cls, run_cfg, benchmark: Benchmark) -> Dict[str, Any]:
        """``run.score`` defaults to ``sum``, the paper's protocol: InstructBLIP's ``_predict_class`` in LAVIS
        ranks by the summed NLL of the candidate's tokens (T5 sums; Vicuna divides by one padded length that all
        candidates of a sample share, which orders them as the sum). ``mean`` (per-token NLL) is an option: it does
        not favour short candidates as the sum does, but it is not what the paper's numbers used."""
        score = run_cfg.get("score", "sum")
        if score not in ("mean", "sum"):
            raise ValueError(f"run.score must be mean or sum (NLL per candidate), got {score!r}")
        return {"score": score, "chunk_size": int(run_cfg.get("chunk_size", 128))}

    def predict(self, model, samples: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Best candidate (index and text) and every candidate's NLL."""
        out = self.pipeline(model).predict_class(
            samples, score=self.settings["score"], chunk_size=self.settings["chunk_size"], return_traces=True
        )
        records = []
        for ranking, scores, candidates in zip(out["rankings"], out["scores"], samples["candidates"]):
            best = int(ranking[0])
            records.append(
                {"prediction": best, "prediction_text": candidates[best], "scores": [float(x) for x in scores]}
            )
        return records, out["traces"]


# ------------------------------------------------------------------------------------------------ helpers


def _instance_ids(dataset) -> List[str]:
    annotation = getattr(dataset, "annotation", None)
    if annotation is None or any("instance_id" not in ann for ann in annotation):
        raise TypeError(
            f"{type(dataset).__name__} has no annotation records with 'instance_id'; the vli_* evaluation tasks "
            "need a vli_* dataset"
        )
    return [str(ann["instance_id"]) for ann in annotation]


def _remember_rewrites(pipeline: VisLingInstructPipeline, records: List[Dict[str, Any]]) -> int:
    """Give the pipeline's AIO the rewrites of already finished samples (a resumed run then equals an uninterrupted
    one); returns how many."""
    pairs = [(r["aio"]["initial"], r["aio"]["rewritten"]) for r in records if r.get("aio")]
    return pipeline.optimizer.remember(pairs) if pairs else 0


def projection_record(model, row: Row, model_info: Dict[str, Any]) -> Dict[str, Any]:
    """Which projection file the row's answers read, and its SHA-256 (empty for random weights); the digest of a
    weight file the run already fingerprinted (``model_info``: ``weight_files``, ``weights``) is reused, not read
    again."""
    path = model.projection_source(row.projection)
    known = {file: model_info["weights"][key] for key, file in model_info.get("weight_files", {}).items()}
    digest = (known.get(path) or file_digest(path)) if path and os.path.isfile(path) else ""
    return {"projection_file": path, "projection_sha256": digest}


def _weight_values(model: Dict[str, Any]) -> Dict[str, str]:
    """Per weight key of :data:`WEIGHT_KEYS` that is set: its value, or the file's SHA-256 where
    :func:`with_weight_digests` replaced the path by ``{"sha256", "bytes"}`` (a folder or an id stays as it is)."""
    out = {}
    for key in WEIGHT_KEYS:
        node: Any = model
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node:
            out[key] = node["sha256"] if isinstance(node, dict) else str(node)
    return out


def _without_row_switches(model: Dict[str, Any]) -> Dict[str, Any]:
    """The model config without the switches a row sets (the run's row is fingerprinted on its own)."""
    out = json.loads(json.dumps(model, default=str))
    out.get("cmaa", {}).pop("enabled", None)
    for key in ("mode", "order"):
        out.get("aio", {}).pop(key, None)
    return out


def _barrier() -> None:
    if is_dist_avail_and_initialized():
        dist.barrier()


def _optional_float(value: Any) -> Optional[float]:
    return None if value is None or value == "" else float(value)


def _plain(value: Any) -> Any:
    """JSON-safe copy: tensors become numbers/lists, tuples lists."""
    if torch.is_tensor(value):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
