"""End-to-end demo on the generated visual world: ``python -m lavis_vislinginstruct.demo [--out demo_output] [--fast]``.

A tiny VisLingInstruct (Zhu et al., NAACL 2024) learns a world of flat shapes and short words
(:mod:`lavis_vislinginstruct.world`) on a CPU, and Table 2's ablation rows, plus one the paper does not have, are
measured on the world's held-out evaluation sets. Every step goes through the project's own entry points and configs:

1. **World** (:func:`lavis_vislinginstruct.world.generate_world`): LLaVA-format training conversations (the
   ``demo`` mix), pairs for AIO's comparison data, and GQA/VSR/ScienceQA/TextVQA-format evaluation sets whose
   questions are asked the way users ask (:mod:`lavis_vislinginstruct.world.user_style`), with each set's chance
   level and blind answer prior.
2. **Stage A** (``projects/vislinginstruct/demo/stage_a.yaml`` through :func:`lavis_vislinginstruct.train.main`):
   the InstructBLIP architecture trained from scratch, everything trainable, CMAA off.
3. **Scores** (:func:`~lavis_vislinginstruct.demo_stages.score_comparison_pairs`): stage A's own Instruction
   Alignment Score (eq. 3) of both instructions of every comparison pair;
   :func:`lavis_vislinginstruct.world.writer.write_comparison_training` writes the comparison prompts with those
   scores (:mod:`lavis_vislinginstruct.world.comparison`).
4. **Stage A2** (``stage_a2.yaml``): stage A continued on the comparison prompts and the world's second file
   (rewrites, and questions as stage A asks them; :attr:`DemoSize.n_replay` adds stage A's own conversations, 0 in
   both sizes). Stages A and A2 are our stand-in for the pretrained InstructBLIP that VisLingInstruct starts from; its
   "vanilla" row is InstructBLIP.
5. **Stage B** (``stage_b.yaml``): VisLingInstruct's Enhanced Multi-modal Alignment; CMAA on, only the projection
   into the LLM trains, from stage A2's weights.
6. **Model spec** (``<out>/model.yaml``, :func:`lavis_vislinginstruct.models.spec.write_model_spec`): the trained
   model in one file (weights copied to ``<out>/weights/``), which every entry point takes with ``--model-spec``.
7. **Evaluation** (``eval_<set>.yaml`` through :func:`lavis_vislinginstruct.evaluate.main` with the spec) of the
   rows in :data:`ROWS`: vanilla (CMAA off, AIO off), + EMA, + EMA + Rewriting, + EMA + AIO, and + EMA + AIO with
   the two instructions' scores swapped for a random half of the samples, so the prompt's order carries no IAS
   ranking (``run.row=ema_aio_shuffled``).
8. **Report**: :mod:`lavis_vislinginstruct.demo_analysis` computes every cell with a 95 % bootstrap interval,
   paired differences, AIO's own figures and the IAS premise; :mod:`lavis_vislinginstruct.demo_report` writes
   ``results.json``, ``results.md`` and ``ablation.png``, and README's results block (``--readme``).

The choices of this pipeline (stage A's initialization, stage A2's length, AIO's guard) and what was measured and
tried for VSR, which stays near chance, are in ``docs/demo-measurements.md``.

``--fast`` runs the same pipeline smaller (``tests/test_demo.py``). Results are whatever the run measures.
"""

import argparse
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from lavis_vislinginstruct import demo_analysis as analysis
from lavis_vislinginstruct import demo_report as report
from lavis_vislinginstruct.demo_stages import (
    comparison_score_summary,
    merge_checkpoints,
    project_file,
    score_comparison_pairs,
    train_stage,
    write_initialization,
    write_spec,
)
from lavis_vislinginstruct.inference.rows import ROWS as ROW_DEFINITIONS
from lavis_vislinginstruct.inference.rows import Row
from lavis_vislinginstruct.tasks.benchmarks import ORDER
from lavis_vislinginstruct.world import generate_world
from lavis_vislinginstruct.world.writer import read_comparison_candidates, write_comparison_training

logger = logging.getLogger("lavis_vislinginstruct.demo")

IMAGE_SIZE = 32
STEPS = 8


#: Table 2's four rows and the shuffled-order ablation, in table order (the one definition of a row).
ROWS: Dict[str, Row] = dict(ROW_DEFINITIONS)
LABELS = {name: row.label for name, row in ROWS.items()}


@dataclass(frozen=True)
class DemoSize:
    """How big a demo run is.

    Attributes:
        n_train: Training conversations (one image each) of the world's first file (stage A).
        n_compare: Comparison pairs scored by stage A and trained in stage A2.
        n_text: Conversations of the world's second file (rewrites and questions, stage A2).
        n_replay: Stage A conversations replayed in stage A2.
        n_eval: Records of each held-out evaluation set.
        batch_size: Training batch size of stages A and B.
        stage_a2_batch_size: Training batch size of stage A2 (long sequences: more updates per second).
        stage_a_epochs: Epochs of stage A.
        stage_a_lr: Peak learning rate of stage A (warm-up, then cosine to 0).
        stage_a2_epochs: Epochs of stage A2.
        stage_a2_lr: Peak learning rate of stage A2.
        stage_b_epochs: Epochs of stage B.
        benchmarks: Held-out sets evaluated.
    """

    n_train: int
    n_compare: int
    n_text: int
    n_replay: int
    n_eval: int
    batch_size: int
    stage_a2_batch_size: int
    stage_a_epochs: int
    stage_a_lr: float
    stage_a2_epochs: int
    stage_a2_lr: float
    stage_b_epochs: int
    benchmarks: Tuple[str, ...]


SIZES = {
    "full": DemoSize(
        n_train=6400,
        n_compare=1600,
        n_text=5600,
        n_replay=0,
        n_eval=400,
        batch_size=64,
        stage_a2_batch_size=32,
        stage_a_epochs=4,
        stage_a_lr=2e-3,
        stage_a2_epochs=4,
        stage_a2_lr=2e-3,
        stage_b_epochs=1,
        benchmarks=("vsr", "gqa", "textvqa", "scienceqa"),
    ),
    "fast": DemoSize(
        n_train=2048,
        n_compare=384,
        n_text=1536,
        n_replay=0,
        n_eval=60,
        batch_size=32,
        stage_a2_batch_size=16,
        stage_a_epochs=3,
        stage_a_lr=2e-3,
        stage_a2_epochs=6,
        stage_a2_lr=2e-3,
        stage_b_epochs=1,
        benchmarks=("vsr", "gqa", "textvqa"),
    ),
}


def _step(k: int, text: str, *args: Any) -> None:
    logger.info(f"[{k}/{STEPS}] {text}", *args)


# ----------------------------------------------------------------------------------------------- evaluation


def row_options(row: str) -> List[str]:
    """The ``--options`` of one row of :data:`ROWS` (on top of the model spec, which loads both projections)."""
    return [f"run.row={ROWS[row].name}", "model.aio.guard=none", f"run.job_id={row}"]


def evaluate_rows(world: str, out: str, spec: str, benchmarks: Sequence[str]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Evaluate every row of :data:`ROWS` on every held-out set; returns ``{row: {benchmark: summary}}``.

    A rerun of the same demo resumes finished predictions when the weights are the same bytes (the run fingerprint
    holds their digests); after a retrain that changed them, the row starts over.
    """
    from lavis_vislinginstruct.evaluate import main as evaluate_main
    from lavis_vislinginstruct.tasks.result_store import ResumeMismatchError

    results: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for row in ROWS:
        results[row] = {}
        for bench in benchmarks:
            start = time.perf_counter()
            argv = ["--cfg-path", project_file(f"eval_{bench}.yaml"), "--model-spec", spec, "--options",
                    f"run.cache_root={world}", f"run.output_dir={os.path.join(out, 'eval', bench)}", *row_options(row)]
            try:
                logs = evaluate_main(argv)
            except ResumeMismatchError as err:
                logger.info("[eval] %s %s: earlier predictions are not this model's (%s); starting over", row, bench,
                            err)
                logs = evaluate_main(argv + ["run.resume=False"])
            summary = next(iter(logs["metrics"].values()))
            summary["seconds"] = round(time.perf_counter() - start, 1)
            results[row][bench] = summary
            logger.info("[eval] %-38s %-9s %s = %5.1f (%d samples, %.0f s)", ROWS[row].label, bench,
                        summary["metric"], summary["value"], summary["num_samples"], summary["seconds"])
    return results


def _read(path: Optional[str]) -> List[Dict[str, Any]]:
    if not path or not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def baselines(manifest: Dict[str, Any], benchmarks: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Chance and blind answer prior of each set on the paper's scale (x100), from the world's manifest."""
    return {
        b: {key: 100.0 * manifest["eval"][b][key] for key in ("chance", "answer_prior")}
        for b in benchmarks
        if manifest["eval"][b].get("chance") is not None
    }


# ------------------------------------------------------------------------------------------------ main flow


def run(out: str, size: DemoSize, seed: int = 0) -> Dict[str, Any]:
    """The whole demo; returns the summary also written to ``<out>/results.json``."""
    out = os.path.abspath(out)
    world = os.path.join(out, "world")
    timings: Dict[str, float] = {}
    start = time.perf_counter()

    _step(1, "world: %d training conversations, %d comparison pairs, %d held-out questions per set -> %s",
          size.n_train, size.n_compare, size.n_eval, world)
    manifest = generate_world(world, seed=seed, n_train=size.n_train, n_eval=size.n_eval, image_size=IMAGE_SIZE,
                              mix="demo", n_compare=size.n_compare, text_mix="demo_text", n_text=size.n_text)
    timings["world"] = round(time.perf_counter() - start, 1)

    _step(2, "stage A: InstructBLIP-style model from scratch, everything trainable, CMAA off")
    init = write_initialization(os.path.join(out, "stage_a", "init.pth"), seed)
    stage_a = train_stage("stage_a.yaml", world, os.path.join(out, "stage_a"), size.stage_a_epochs, size.batch_size,
                          init, size.stage_a_lr)
    timings["stage_a"] = stage_a["seconds"]
    _step(2, "stage A done in %.0f s; mean loss per epoch %s", stage_a["seconds"], stage_a["epoch_losses"])

    _step(3, "stage A's own IAS of %d comparison pairs -> comparison prompts", size.n_compare)
    t0 = time.perf_counter()
    pairs = read_comparison_candidates(world)
    scores = score_comparison_pairs(world, pairs, stage_a["checkpoint"])
    from lavis_vislinginstruct.aio.config import AIOCfg

    written = write_comparison_training(world, scores, AIOCfg.compare_template, AIOCfg.compare_cue, size.n_replay,
                                        seed=seed, pairs=pairs)
    score_summary = comparison_score_summary(pairs, scores)
    timings["scores"] = round(time.perf_counter() - t0, 1)
    _step(3, "scored in %.0f s: %s", timings["scores"], score_summary)

    _step(4, "stage A2: %d comparison prompts, %d rewrites and questions, %d replayed", written["comparison"],
          written["phase2"], written["replay"])
    storage = f"datasets.vli_llava_instruct_150k.build_info.annotations.train.storage={written['train']}"
    stage_a2 = train_stage("stage_a2.yaml", world, os.path.join(out, "stage_a2"), size.stage_a2_epochs,
                           size.stage_a2_batch_size, stage_a["checkpoint"], size.stage_a2_lr, [storage])
    timings["stage_a2"] = stage_a2["seconds"]
    base = merge_checkpoints(os.path.join(out, "weights", "instructblip.pth"), stage_a["checkpoint"],
                             stage_a2["checkpoint"])
    _step(4, "stage A2 done in %.0f s; mean loss per epoch %s", stage_a2["seconds"], stage_a2["epoch_losses"])

    _step(5, "stage B: EMA fine-tuning, CMAA on, only the projection trains")
    stage_b = train_stage("stage_b.yaml", world, os.path.join(out, "stage_b"), size.stage_b_epochs, size.batch_size,
                          base)
    timings["stage_b"] = stage_b["seconds"]
    _step(5, "stage B done in %.0f s; mean loss per epoch %s", stage_b["seconds"], stage_b["epoch_losses"])

    projection = os.path.join(out, "weights", "ema_projection.pth")
    shutil.copyfile(stage_b["checkpoint"], projection)
    spec = write_spec(out, base, projection)
    _step(6, "model spec %s (weights under %s)", spec, os.path.dirname(base))

    _step(7, "evaluation: %d rows x %s", len(ROWS), ", ".join(size.benchmarks))
    t0 = time.perf_counter()
    results = evaluate_rows(world, out, spec, size.benchmarks)
    timings["evaluation"] = round(time.perf_counter() - t0, 1)

    _step(8, "report: intervals, paired differences, AIO figures")
    cols = [b for b in ORDER if b in size.benchmarks]
    rows = {row: {b: _read(s["files"]["predictions"]) for b, s in per.items()} for row, per in results.items()}
    traces = {row: {b: _read(s["files"].get("traces")) for b, s in per.items()}
              for row, per in results.items() if ROWS[row].aio != "off"}
    reported = {row: {b: s["value"] for b, s in per.items()} for row, per in results.items()}
    figures = analysis.analyse(rows, traces, cols, reported)
    base_levels = baselines(manifest, cols)
    png = os.path.join(out, "ablation.png")
    picked = report.pick_traces(rows, traces, cols)
    timings["total"] = round(time.perf_counter() - start, 1)
    summary = {
        "size": asdict(size),
        "seed": seed,
        "rows": {name: {**row.to_dict(), "label": row.label} for name, row in ROWS.items()},
        "table": {row: {b: s["value"] for b, s in per.items()} for row, per in results.items()},
        **figures,
        "baselines": base_levels,
        "stages": {"stage_a": stage_a, "stage_a2": stage_a2, "stage_b": stage_b},
        "comparison_scores": score_summary,
        "world": {"train": manifest["train"]["llava_instruct_150k"]["shares"], "n_eval": size.n_eval},
        "traces": picked,
        "timings_s": timings,
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "machine": platform.machine(), "python": platform.python_version()},
        "files": {"markdown": os.path.join(out, "results.md"), "chart": png, "world": world, "model_spec": spec},
    }
    text = report.write_report(out, summary)
    logger.info("\n%s", text)
    logger.info("timings (s): %s", timings)
    logger.info("results: %s, %s, %s; the trained model: %s", summary["files"]["markdown"], png,
                os.path.join(out, "results.json"), spec)
    return summary


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command line of the demo."""
    parser = argparse.ArgumentParser(prog="python -m lavis_vislinginstruct.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    parser.add_argument("--fast", action="store_true", help="the same pipeline smaller (for the test suite)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and of the initialization")
    parser.add_argument("--readme", default=None,
                        help="only rewrite this README's demo results block from <out>/results.json, then exit")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (default %(default)s; the table is reproducible for a fixed count)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run the demo from the command line; returns the summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.readme:
        summary = report.load_results(args.out)
        report.update_readme(args.readme, summary)
        logger.info("updated %s from %s", args.readme, os.path.join(args.out, "results.json"))
        return summary
    if args.threads < 1:
        raise SystemExit("error: --threads must be >= 1")
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    logger.info("VisLingInstruct demo (%s), %d torch threads", "fast" if args.fast else "full", torch.get_num_threads())
    return run(args.out, SIZES["fast" if args.fast else "full"], args.seed)


if __name__ == "__main__":
    main()
