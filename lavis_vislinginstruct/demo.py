"""End-to-end demo on the generated visual world: ``python -m lavis_vislinginstruct.demo [--out DIR] [--seeds N]``.

A tiny VisLingInstruct (Zhu et al., NAACL 2024) on a world of flat shapes and short words
(:mod:`lavis_vislinginstruct.world`), on a CPU: Table 2's ablation rows, plus one the paper does not have, measured on
the world's held-out evaluation sets. Every step goes through the project's own entry points and configs:

1. **World** (:func:`lavis_vislinginstruct.world.generate_world`): stage B's LLaVA-format training conversations
   and GQA/VSR/ScienceQA/TextVQA-format evaluation sets whose questions are asked the way users ask
   (:mod:`lavis_vislinginstruct.world.user_style`), with each set's chance level and blind answer prior.
2. **Base model**: the demo's stand-in for the pretrained InstructBLIP that VisLingInstruct starts from, shipped
   with the package and checked against its manifest's SHA-256 (:mod:`lavis_vislinginstruct.demo_pretrain`, which
   ``python -m lavis_vislinginstruct.demo pretrain`` or ``--from-scratch`` runs). Its "vanilla" row is InstructBLIP.
3. **Stage B** (``projects/vislinginstruct/demo/stage_b.yaml`` through :func:`lavis_vislinginstruct.train.main`):
   VisLingInstruct's Enhanced Multi-modal Alignment; CMAA on, only the projection into the LLM trains.
4. **Model spec** (``<out>/model.yaml``, :func:`lavis_vislinginstruct.models.spec.write_model_spec`): the trained
   model in one file, which every entry point takes with ``--model-spec``.
5. **Evaluation** (``eval_<set>.yaml`` through :func:`lavis_vislinginstruct.evaluate.main` with the spec) of the
   rows in :data:`ROWS`: vanilla (CMAA off, AIO off), + EMA, + EMA + Rewriting, + EMA + AIO, and + EMA + AIO with
   the two instructions' scores swapped for a random half of the samples (``run.row=ema_aio_shuffled``).
6. **Bare chat questions** (:mod:`lavis_vislinginstruct.demo_probes`, held-out scenes): questions as a person
   types them, with no benchmark wrapper, answered by the web demo's three rows.
7. **Report**: :mod:`lavis_vislinginstruct.demo_analysis` computes every cell with a 95 % bootstrap interval,
   paired differences, AIO's own figures and the IAS premise; :mod:`lavis_vislinginstruct.demo_report` writes
   ``results.json``, ``results.md`` and ``ablation.png``, and README's results block (``--readme``).

Steps 3-6 run once per seed (``--seeds N``: seeds 0..N-1 of stage B's data order and of the shuffled row); the
first seed's model is ``<out>/model.yaml``, the others are under ``<out>/seed_<k>/``, and the report says for each
paired difference whether its interval excludes zero under every seed. What was measured and tried for the choices
is in ``docs/demo-measurements.md``.

``--fast`` runs the same pipeline smaller (``tests/test_demo.py``). Results are whatever the run measures.
"""

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from lavis_vislinginstruct import demo_analysis as analysis
from lavis_vislinginstruct import demo_pretrain as pretraining
from lavis_vislinginstruct import demo_probes as probes
from lavis_vislinginstruct import demo_report as report
from lavis_vislinginstruct.demo_stages import LOG_FORMAT, project_file, set_up_process, train_stage, write_spec
from lavis_vislinginstruct.inference.rows import ROWS as ROW_DEFINITIONS
from lavis_vislinginstruct.inference.rows import Row
from lavis_vislinginstruct.tasks.benchmarks import ORDER
from lavis_vislinginstruct.world import generate_world

logger = logging.getLogger("lavis_vislinginstruct.demo")

IMAGE_SIZE = pretraining.IMAGE_SIZE
STEPS = 7


#: Table 2's four rows and the shuffled-order ablation, in table order (the one definition of a row).
ROWS: Dict[str, Row] = dict(ROW_DEFINITIONS)
LABELS = {name: row.label for name, row in ROWS.items()}
#: The rows that answer the held-out bare chat questions (the web demo's three columns).
CHAT_ROWS = ("vanilla", "ema", "ema_aio")


@dataclass(frozen=True)
class DemoSize:
    """How big a demo run is.

    Attributes:
        n_train: Training conversations (one image each) of stage B.
        n_eval: Records of each held-out evaluation set.
        n_chat: Held-out bare chat questions (:mod:`lavis_vislinginstruct.demo_probes`, type ``bare``).
        batch_size: Stage B's batch size.
        stage_b_epochs: Epochs of stage B.
        benchmarks: Held-out sets evaluated.
        pretrain: The size of the pretraining run that ``--from-scratch`` runs first
            (:data:`lavis_vislinginstruct.demo_pretrain.SIZES`).
    """

    n_train: int
    n_eval: int
    n_chat: int
    batch_size: int
    stage_b_epochs: int
    benchmarks: Tuple[str, ...]
    pretrain: str


SIZES = {
    "full": DemoSize(n_train=6400, n_eval=400, n_chat=200, batch_size=64, stage_b_epochs=1,
                     benchmarks=("vsr", "gqa", "textvqa", "scienceqa"), pretrain="full"),
    "fast": DemoSize(n_train=512, n_eval=60, n_chat=30, batch_size=32, stage_b_epochs=1,
                     benchmarks=("vsr", "gqa", "textvqa"), pretrain="fast"),
}


def _step(k: int, text: str, *args: Any) -> None:
    logger.info(f"[{k}/{STEPS}] {text}", *args)


# ----------------------------------------------------------------------------------------------- evaluation


def row_options(row: str, seed: int = 0) -> List[str]:
    """The ``--options`` of one row of :data:`ROWS` (on top of the model spec, which loads both projections);
    ``seed`` seeds the shuffled row's coin flips."""
    return [f"run.row={ROWS[row].name}", "model.aio.guard=none", f"model.aio.seed={seed}", f"run.job_id={row}"]


def evaluate_one(world: str, out: str, spec: str, row: str, bench: str, seed: int = 0) -> Dict[str, Any]:
    """One row of :data:`ROWS` on one held-out set through ``evaluate.py``; returns its metric summary.

    A rerun of the same demo resumes finished predictions when the weights are the same bytes (the run fingerprint
    holds their digests); after a retrain that changed them, the row starts over.
    """
    from lavis_vislinginstruct.evaluate import main as evaluate_main
    from lavis_vislinginstruct.tasks.result_store import ResumeMismatchError

    start = time.perf_counter()
    argv = ["--cfg-path", project_file(f"eval_{bench}.yaml"), "--model-spec", spec, "--options",
            f"run.cache_root={world}", f"run.output_dir={os.path.join(out, 'eval', bench)}", *row_options(row, seed)]
    try:
        logs = evaluate_main(argv)
    except ResumeMismatchError as err:
        logger.info("[eval] %s %s: earlier predictions are not this model's (%s); starting over", row, bench, err)
        logs = evaluate_main(argv + ["run.resume=False"])
    summary = next(iter(logs["metrics"].values()))
    summary["seconds"] = round(time.perf_counter() - start, 1)
    logger.info("[eval] %-38s %-9s %s = %5.1f (%d samples, %.0f s)", ROWS[row].label, bench, summary["metric"],
                summary["value"], summary["num_samples"], summary["seconds"])
    return summary


def evaluate_rows(world: str, out: str, spec: str, benchmarks: Sequence[str], seed: int = 0,
                  workers: int = 0) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Every row of :data:`ROWS` on every held-out set (:func:`evaluate_one`); returns ``{row: {benchmark: summary}}``.

    ``workers`` > 0 runs the (row, set) evaluations in that many worker processes of one torch thread each, which
    give the same numbers whatever their count; 0 runs them here, in order.
    """
    jobs = [(row, bench) for row in ROWS for bench in benchmarks]
    if workers:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # one torch thread per worker: the demo's tiny models run fastest so, and their numbers do not depend on how
        # many workers run beside it
        with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), set_up_process, (1,)) as pool:
            futures = [pool.submit(evaluate_one, world, out, spec, row, bench, seed) for row, bench in jobs]
            summaries = [f.result() for f in futures]
    else:
        summaries = [evaluate_one(world, out, spec, row, bench, seed) for row, bench in jobs]
    results: Dict[str, Dict[str, Dict[str, Any]]] = {row: {} for row in ROWS}
    for (row, bench), summary in zip(jobs, summaries):
        results[row][bench] = summary
    return results


def chat_rows(spec: str, n: int, rows: Sequence[str] = CHAT_ROWS) -> Dict[str, Dict[str, Any]]:
    """Held-out bare chat questions (as a person types them, no benchmark wrapper) answered by ``rows`` of the
    spec's model: the share whose reply holds the right answer word, with its interval, and a few examples."""
    from lavis_vislinginstruct.inference.pipeline import VisLingInstructPipeline
    from lavis_vislinginstruct.models.generation import Decoding
    from lavis_vislinginstruct.models.loading import load_with_options

    model, vis, _ = load_with_options(spec=spec, options=["aio.guard=none"])
    items = probes.probe_items("eval", n, seed=0, types=("bare",))
    out = {}
    for row in rows:
        pipeline = VisLingInstructPipeline(model, row, Decoding(max_new_tokens=20, num_beams=1))
        replies = probes.answer_items(pipeline, vis["eval"], items, IMAGE_SIZE)
        out[row] = {**probes.score(items, replies)["bare"],
                    "examples": [{"question": it.instruction, "answer": it.answer, "reply": r}
                                 for it, r in list(zip(items, replies))[:3]]}
    return out


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


def base_weights(out: str, size: DemoSize, from_scratch: bool) -> Tuple[str, Dict[str, Any]]:
    """The InstructBLIP stand-in the run starts from, copied to ``<out>/weights/instructblip.pth``, and its
    manifest: the shipped one (checked against its SHA-256), or one pretrained now with ``from_scratch``."""
    if from_scratch:
        folder = os.path.join(out, "pretrain", "release")
        manifest = pretraining.pretrain(os.path.join(out, "pretrain"), pretraining.SIZES[size.pretrain], 0, folder)
        source = os.path.join(folder, pretraining.WEIGHTS)
    else:
        source, manifest = pretraining.shipped_base()
    target = os.path.join(out, "weights", "instructblip.pth")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(source, target)
    return target, manifest


def run_seed(out: str, world: str, base: str, size: DemoSize, seed: int, cols: Sequence[str],
             workers: int = 0) -> Dict[str, Any]:
    """Stage B, the model spec (``<out>/model.yaml``), every row on every held-out set and the bare chat questions,
    under one seed."""
    timings: Dict[str, float] = {}
    _step(3, "seed %d: stage B, EMA fine-tuning, CMAA on, only the projection trains", seed)
    stage_b = train_stage("stage_b.yaml", world, os.path.join(out, "stage_b"), size.stage_b_epochs, size.batch_size,
                          base, options=[f"run.seed={seed}"])
    timings["stage_b"] = stage_b["seconds"]
    _step(3, "seed %d: stage B done in %.0f s; mean loss per epoch %s", seed, stage_b["seconds"],
          stage_b["epoch_losses"])
    projection = os.path.join(out, "weights", "ema_projection.pth")
    os.makedirs(os.path.dirname(projection), exist_ok=True)
    shutil.copyfile(stage_b["checkpoint"], projection)
    spec = write_spec(os.path.join(out, "model.yaml"), base, projection)
    _step(4, "seed %d: model spec %s", seed, spec)

    _step(5, "seed %d: evaluation, %d rows x %s", seed, len(ROWS), ", ".join(cols))
    t0 = time.perf_counter()
    results = evaluate_rows(world, out, spec, cols, seed, workers)
    timings["evaluation"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    chat = chat_rows(spec, size.n_chat)
    timings["chat"] = round(time.perf_counter() - t0, 1)
    _step(6, "seed %d: bare chat questions answered right: %s", seed,
          {row: cell["accuracy"] for row, cell in chat.items()})

    rows = {row: {b: _read(s["files"]["predictions"]) for b, s in per.items()} for row, per in results.items()}
    traces = {row: {b: _read(s["files"].get("traces")) for b, s in per.items()}
              for row, per in results.items() if ROWS[row].aio != "off"}
    reported = {row: {b: s["value"] for b, s in per.items()} for row, per in results.items()}
    return {
        "seed": seed,
        **analysis.analyse(rows, traces, cols, reported),
        "chat": chat,
        "traces": report.pick_traces(rows, traces, cols),
        "stage_b": stage_b,
        "model_spec": spec,
        "timings_s": timings,
    }


def run(out: str, size: DemoSize, seeds: Sequence[int] = (0,), from_scratch: bool = False,
        workers: int = 0) -> Dict[str, Any]:
    """The whole demo; returns the summary also written to ``<out>/results.json``.

    The first seed's run is the demo's model (``<out>/model.yaml``) and its figures are the summary's top level;
    every seed's figures are under ``seeds``, and ``robust`` says for each paired difference whether its interval
    excludes zero, on the same side, under every seed.
    """
    out = os.path.abspath(out)
    world = os.path.join(out, "world")
    timings: Dict[str, Any] = {}
    start = time.perf_counter()
    _step(1, "world: %d training conversations for stage B, %d held-out questions per set -> %s", size.n_train,
          size.n_eval, world)
    manifest = generate_world(world, seed=0, n_train=size.n_train, n_eval=size.n_eval, image_size=IMAGE_SIZE,
                              mix="demo")
    timings["world"] = round(time.perf_counter() - start, 1)

    _step(2, "base model: %s", "pretraining it now (--from-scratch)" if from_scratch else "the shipped InstructBLIP "
          "stand-in (lavis_vislinginstruct/assets/demo_base)")
    t0 = time.perf_counter()
    base, base_manifest = base_weights(out, size, from_scratch)
    timings["base"] = round(time.perf_counter() - t0, 1)

    cols = [b for b in ORDER if b in size.benchmarks]
    per_seed = []
    for k, seed in enumerate(seeds):
        folder = out if k == 0 else os.path.join(out, f"seed_{seed}")
        per_seed.append(run_seed(folder, world, base, size, seed, cols, workers))
    timings["seeds"] = [s["timings_s"] for s in per_seed]

    _step(7, "report: intervals, paired differences, AIO figures, %d seed(s)", len(seeds))
    first = per_seed[0]
    png = os.path.join(out, "ablation.png")
    timings["total"] = round(time.perf_counter() - start, 1)
    summary = {
        "size": asdict(size),
        "seed": first["seed"],
        "rows": {name: {**row.to_dict(), "label": row.label} for name, row in ROWS.items()},
        **{key: first[key] for key in report.FIGURES},
        "chat": first["chat"],
        "seeds": [{key: s[key] for key in ("seed", "chat", *report.FIGURES)} for s in per_seed],
        "robust": analysis.robust_differences([s["differences"] for s in per_seed]),
        "baselines": baselines(manifest, cols),
        "base": {key: base_manifest.get(key) for key in ("command", "commit", "sha256", "seconds", "probes",
                                                          "aio_content", "stages", "comparison_scores")},
        "stages": {"stage_b": first["stage_b"]},
        "world": {"train": manifest["train"]["llava_instruct_150k"]["shares"], "n_eval": size.n_eval},
        "traces": first["traces"],
        "timings_s": timings,
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(), "eval_workers": workers,
                        "machine": platform.machine(), "python": platform.python_version()},
        "files": {"markdown": os.path.join(out, "results.md"), "chart": png, "world": world,
                  "model_spec": first["model_spec"]},
    }
    text = report.write_report(out, summary)
    logger.info("\n%s", text)
    logger.info("timings (s): %s", timings)
    logger.info("results: %s, %s, %s; the trained model: %s", summary["files"]["markdown"], png,
                os.path.join(out, "results.json"), first["model_spec"])
    return summary


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command line of the demo."""
    parser = argparse.ArgumentParser(prog="python -m lavis_vislinginstruct.demo", description=__doc__.split("\n")[0],
                                     epilog="python -m lavis_vislinginstruct.demo pretrain --help: the base model's "
                                            "pretraining")
    parser.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    parser.add_argument("--fast", action="store_true", help="the same pipeline smaller (for the test suite)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="run stage B and the evaluation under seeds 0..N-1 (default %(default)s)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="pretrain the base model first instead of loading the shipped one")
    parser.add_argument("--readme", default=None,
                        help="only rewrite this README's demo results block from <out>/results.json, then exit")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of stage B and the chat questions (default %(default)s; the table is "
                             "reproducible for a fixed count)")
    parser.add_argument("--workers", type=int, default=2,
                        help="evaluation worker processes of one torch thread each (default %(default)s; 0: in this "
                             "process); the numbers do not depend on it")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run the demo (or, with ``pretrain`` first, the base model's pretraining) from the command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["pretrain"]:
        return pretraining.main(argv[1:])
    args = parse_args(argv)
    if args.readme:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        summary = report.load_results(args.out)
        report.update_readme(args.readme, summary)
        logger.info("updated %s from %s", args.readme, os.path.join(args.out, "results.json"))
        return summary
    if args.threads < 1:
        raise SystemExit("error: --threads must be >= 1")
    if args.seeds < 1:
        raise SystemExit("error: --seeds must be >= 1")
    if args.workers < 0:
        raise SystemExit("error: --workers must be >= 0")
    set_up_process(args.threads)
    logger.info("VisLingInstruct demo (%s), %d torch threads, %d seed(s)", "fast" if args.fast else "full",
                torch.get_num_threads(), args.seeds)
    return run(args.out, SIZES["fast" if args.fast else "full"], range(args.seeds), args.from_scratch, args.workers)


if __name__ == "__main__":
    main()
