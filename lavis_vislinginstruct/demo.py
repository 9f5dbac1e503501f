"""End-to-end demo on the generated visual world: ``python -m lavis_vislinginstruct.demo [--out demo_output] [--fast]``.

A tiny VisLingInstruct (Zhu et al., NAACL 2024) learns a world of flat shapes and short words
(:mod:`lavis_vislinginstruct.world`) on a CPU, and the four rows of the paper's Table 2 ablation are measured on
the world's held-out evaluation sets. Every step goes through the project's own entry points and configs:

1. **World.** :func:`lavis_vislinginstruct.world.generate_world` writes the training conversations
   (LLaVA-Instruct-150K format, the ``visual`` mix) and the GQA/VSR/ScienceQA/TextVQA-format evaluation sets, with
   each set's chance level and blind answer prior in ``manifest.json``.
2. **Stage A** (``projects/vislinginstruct/demo/stage_a.yaml`` through :func:`lavis_vislinginstruct.train.main`):
   the InstructBLIP architecture trained from scratch, everything trainable and CMAA off. This is our stand-in for
   the pretrained InstructBLIP that VisLingInstruct starts from; its "vanilla" row is InstructBLIP.
3. **Stage B** (``stage_b.yaml``): VisLingInstruct's Enhanced Multi-modal Alignment. CMAA is on and only the
   projection into the LLM trains, starting from stage A's weights (``model.checkpoint``).
4. **Evaluation** (``eval_<set>.yaml`` through :func:`lavis_vislinginstruct.evaluate.main`) of Table 2's rows:
   vanilla (stage A, CMAA off, AIO off), + EMA (stage B, AIO off), + EMA + Rewriting (AIO ``rewrite``) and
   + EMA + AIO (AIO ``full``).
5. **Report**: a Table-2-shaped markdown table with the chance and answer-prior rows, ``ablation.png``, and a few
   AIO traces; all under ``--out`` (``results.md``, ``results.json``).

Stage A starts from a written initialization (``stage_a/init.pth``, passed as ``model.checkpoint``): the
model's own random weights, except that the Q-Former's cross-attention weights are drawn with standard deviation
``1/sqrt(fan_in)`` instead of BERT's 0.02. At width 64, BERT's initialization lets about 0.5 % of the image's
variation through the cross-attention into the LLM's input (the visual tokens' spread across images, relative to
their spread overall); the model then learns the answer priors of the text and not the image within a CPU
budget: after 400 updates, shuffling the images among the questions left the loss unchanged.

``--fast`` runs the same pipeline smaller (``tests/test_demo.py``). Results are whatever the run measures.
"""

import argparse
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from omegaconf import OmegaConf

from lavis_vislinginstruct.aio.trace import AIOTrace, format_trace
from lavis_vislinginstruct.paths import package_path
from lavis_vislinginstruct.tasks.benchmarks import BENCHMARKS, ORDER, VARIANTS
from lavis_vislinginstruct.world import generate_world

logger = logging.getLogger("lavis_vislinginstruct.demo")

PROJECT = os.path.join("projects", "vislinginstruct", "demo")
ARCH = "vislinginstruct_vicuna"
MODEL_TYPE = "demo"
IMAGE_SIZE = 32


@dataclass(frozen=True)
class DemoSize:
    """How big a demo run is.

    Attributes:
        n_train: Training conversations (one image each) of the world.
        n_eval: Records of each held-out evaluation set.
        batch_size: Training batch size of both stages (``n_train // batch_size`` updates per epoch).
        stage_a_epochs: Epochs of stage A.
        stage_a_lr: Peak learning rate of stage A (warm-up, then cosine to 0).
        stage_b_epochs: Epochs of stage B.
        benchmarks: Held-out sets evaluated.
    """

    n_train: int
    n_eval: int
    batch_size: int
    stage_a_epochs: int
    stage_a_lr: float
    stage_b_epochs: int
    benchmarks: Tuple[str, ...]


SIZES = {
    # about 3.5 minutes on two quiet cores (stage A 2, stage B 0.75, evaluation 0.4)
    "full": DemoSize(
        n_train=6400,
        n_eval=200,
        batch_size=64,
        stage_a_epochs=4,
        stage_a_lr=2e-3,
        stage_b_epochs=2,
        benchmarks=("vsr", "gqa", "textvqa", "scienceqa"),
    ),
    # about 1.5 minutes on one thread: the answer formats and the OCR token are learned, not yet the image
    "fast": DemoSize(
        n_train=2048,
        n_eval=100,
        batch_size=32,
        stage_a_epochs=3,
        stage_a_lr=2e-3,
        stage_b_epochs=2,
        benchmarks=("gqa", "textvqa"),
    ),
}


def project_file(name: str) -> str:
    """A config of ``projects/vislinginstruct/demo`` (found from the working directory or the source tree)."""
    for root in (os.getcwd(), os.path.dirname(package_path(""))):
        path = os.path.join(root, PROJECT, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{os.path.join(PROJECT, name)} not found: run the demo from the repository root")


# ------------------------------------------------------------------------------------------------- training


def write_initialization(path: str, seed: int) -> str:
    """Stage A's starting weights: the demo model's random initialization with a fan-in-scaled Q-Former cross-attention.

    See the module docstring for why. Written as a LAVIS-layout state dict (``{"model": ...}``), which stage A reads
    through ``model.checkpoint`` like an InstructBLIP checkpoint.
    """
    from lavis.common.registry import registry

    model_cls = registry.get_model_class(ARCH)
    cfg = OmegaConf.load(model_cls.default_config_path(MODEL_TYPE)).model
    stage_a = OmegaConf.load(project_file("stage_a.yaml")).model
    cfg = OmegaConf.merge(cfg, {k: v for k, v in stage_a.items() if k not in ("checkpoint",)})
    torch.manual_seed(seed)
    model = model_cls.from_config(cfg)
    for name, module in model.Qformer.named_modules():
        if isinstance(module, torch.nn.Linear) and ".crossattention." in f".{name}.":
            torch.nn.init.normal_(module.weight, std=1.0 / math.sqrt(module.in_features))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"model": model.full_state_dict()}, path)  # every weight (state_dict() is the trainable ones)
    return path


def train_stage(
    config: str, world: str, output_dir: str, epochs: int, batch_size: int, checkpoint: str, lr: float = 0.0
) -> Dict[str, Any]:
    """Run ``train.py`` on a demo config; returns the last checkpoint, the per-epoch mean losses and the time."""
    from lavis_vislinginstruct.train import main as train_main

    options = [
        f"run.cache_root={world}",
        f"run.output_dir={output_dir}",
        f"run.max_epoch={epochs}",
        f"run.batch_size_train={batch_size}",
        f"model.checkpoint={checkpoint}",
    ]
    if lr:
        options.append(f"run.init_lr={lr}")
    start = time.perf_counter()
    runner = train_main(["--cfg-path", project_file(config), "--options", *options])
    seconds = time.perf_counter() - start
    run_dir = str(runner.output_dir)
    losses = []
    with open(os.path.join(run_dir, "log.txt"), encoding="utf-8") as handle:
        for line in handle:  # the run's config (indented JSON), then one line of train stats per epoch
            if line.startswith('{"train_'):
                losses.append(float(json.loads(line)["train_loss"]))
    last = os.path.join(run_dir, f"checkpoint_{epochs - 1}.pth")
    if not os.path.isfile(last):
        raise FileNotFoundError(f"{config}: training wrote no {last}")
    return {"checkpoint": last, "epoch_losses": losses, "seconds": round(seconds, 1), "output_dir": run_dir}


# ----------------------------------------------------------------------------------------------- evaluation


def row_options(row: str, stage_a: str, stage_b: str) -> List[str]:
    """The ``--options`` of one Table 2 row (:data:`~lavis_vislinginstruct.tasks.benchmarks.VARIANTS`)."""
    cmaa, aio, _ = VARIANTS[row]
    options = [f"model.cmaa.enabled={cmaa}", f"model.aio.mode={aio}", f"model.checkpoint={stage_a}"]
    if cmaa:
        options.append(f"model.finetuned={stage_b}")
    return options


def evaluate_rows(
    world: str, out: str, benchmarks: Sequence[str], stage_a: str, stage_b: str
) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Evaluate every Table 2 row on every held-out set; returns ``{row: {benchmark: summary}}``."""
    from lavis_vislinginstruct.evaluate import main as evaluate_main

    results: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for row in VARIANTS:
        results[row] = {}
        for bench in benchmarks:
            start = time.perf_counter()
            options = [f"run.cache_root={world}", f"run.output_dir={os.path.join(out, 'eval', bench)}"]
            options += row_options(row, stage_a, stage_b)
            logs = evaluate_main(["--cfg-path", project_file(f"eval_{bench}.yaml"), "--options", *options])
            summary = next(iter(logs["metrics"].values()))
            summary["seconds"] = round(time.perf_counter() - start, 1)
            results[row][bench] = summary
            logger.info(
                "[eval] %-36s %-9s %s = %5.1f (%d samples, %.0f s)",
                VARIANTS[row][2],
                bench,
                summary["metric"],
                summary["value"],
                summary["num_samples"],
                summary["seconds"],
            )
    return results


# --------------------------------------------------------------------------------------------------- report


def baselines(manifest: Dict[str, Any], benchmarks: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Chance and blind answer prior of each set on the paper's scale (x100), from the world's manifest."""
    return {
        b: {key: 100.0 * manifest["eval"][b][key] for key in ("chance", "answer_prior")}
        for b in benchmarks
        if manifest["eval"][b].get("chance") is not None
    }


def table(results: Dict[str, Dict[str, Dict[str, Any]]], base: Dict[str, Dict[str, float]], benchmarks) -> str:
    """Table 2's shape (rows: ablation variants, columns: held-out sets) with the chance and answer-prior rows."""
    cols = [b for b in ORDER if b in benchmarks]
    head = "| Row | " + " | ".join(f"{BENCHMARKS[b].title} ({BENCHMARKS[b].metric})" for b in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for row, per_bench in results.items():
        cells = [f"{per_bench[b]['value']:.1f}" if b in per_bench else "–" for b in cols]
        lines.append(f"| {VARIANTS[row][2]} | " + " | ".join(cells) + " |")
    baseline_rows = (("chance", "*chance (uniform guess)*"), ("answer_prior", "*answer prior (blind, best per type)*"))
    for key, label in baseline_rows:
        cells = [f"{base[b][key]:.1f}" if b in base else "–" for b in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def margins(results, base) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Accuracy minus chance and minus answer prior, per row and set (paper scale points)."""
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for row, per_bench in results.items():
        out[row] = {
            b: {
                "over_chance": round(s["value"] - base[b]["chance"], 1),
                "over_prior": round(s["value"] - base[b]["answer_prior"], 1),
            }
            for b, s in per_bench.items()
            if b in base
        }
    return out


def chart(results, base, benchmarks, path: str) -> str:
    """Grouped bars of the four rows per set, chance (dotted) and answer prior (dashed) as short lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [b for b in ORDER if b in benchmarks]
    rows = list(results)
    width = 0.8 / len(rows)
    colors = ["#9e9e9e", "#64b5f6", "#ffb74d", "#e53935"]
    fig, ax = plt.subplots(figsize=(2.2 * len(cols) + 2, 4))
    for j, row in enumerate(rows):
        xs = [i + (j - (len(rows) - 1) / 2) * width for i in range(len(cols))]
        values = [results[row].get(b, {}).get("value", 0.0) for b in cols]
        ax.bar(xs, values, width, color=colors[j % len(colors)], label=VARIANTS[row][2])
    with_base = [i for i, b in enumerate(cols) if b in base]
    for i in with_base:
        for key, style, label in (("chance", "dotted", "chance"), ("answer_prior", "dashed", "answer prior")):
            label = label if i == with_base[0] else None
            ax.hlines(base[cols[i]][key], i - 0.45, i + 0.45, colors="black", linestyles=style, label=label)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([BENCHMARKS[b].title for b in cols])
    ax.set_ylabel("accuracy on held-out scenes (%)")
    ax.set_ylim(0, 115)
    ax.set_title("VisLingInstruct demo: Table 2 ablation on the generated world")
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def read_traces(results, row: str) -> Dict[str, List[Dict[str, Any]]]:
    """The AIO traces of one row per set (the ``<split>_traces.json`` files evaluate.py writes)."""
    traces = {}
    for bench, summary in results.get(row, {}).items():
        path = summary.get("files", {}).get("traces")
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                traces[bench] = [{"benchmark": bench, **t} for t in json.load(handle)]
    return traces


def aio_usage(results) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Per AIO row and set: how many samples were answered with a new instruction, and why the others were not."""
    usage: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for row in ("ema_rewrite", "ema_aio"):
        for bench, traces in read_traces(results, row).items():
            reasons: Dict[str, int] = {}
            for t in traces:
                if t["used"] == t["initial"]:
                    reason = (t.get("reason") or "kept").split(":")[0]
                    reasons[reason] = reasons.get(reason, 0) + 1
            changed = sum(t["used"] != t["initial"] for t in traces)
            usage.setdefault(row, {})[bench] = {"samples": len(traces), "changed": changed, "kept_because": reasons}
    return usage


def sample_traces(results, n: int = 3) -> List[Dict[str, Any]]:
    """``n`` traces of the full-AIO row: those whose instruction AIO changed first, then GQA's (short), in order."""
    pool = [t for traces in read_traces(results, "ema_aio").values() for t in traces]
    return sorted(pool, key=lambda t: (t["used"] == t["initial"], t["benchmark"] != "gqa"))[:n]


def format_demo_trace(trace: Dict[str, Any]) -> str:
    """One AIO trace of an evaluation file as text, with the shared trace formatter."""
    head = f"{trace['benchmark']} {trace['instance_id']}"
    return head + "\n" + format_trace(AIOTrace.from_dict(trace))


def usage_line(usage) -> str:
    """``aio_usage`` in one line: ``+ EMA + Rewriting: gqa 24/200, ...; + EMA + AIO ...: ...``."""
    parts = []
    for row, per_bench in usage.items():
        cells = ", ".join(f"{b} {u['changed']}/{u['samples']}" for b, u in per_bench.items())
        parts.append(f"{VARIANTS[row][2]}: {cells}")
    return "; ".join(parts) or "none"


# ------------------------------------------------------------------------------------------------ main flow


def run(out: str, size: DemoSize, seed: int = 0) -> Dict[str, Any]:
    """The whole demo; returns the summary also written to ``<out>/results.json``."""
    out = os.path.abspath(out)
    world = os.path.join(out, "world")
    timings: Dict[str, float] = {}
    start = time.perf_counter()

    logger.info(
        "[1/5] world: %d training conversations, %d held-out records per set -> %s", size.n_train, size.n_eval, world
    )
    manifest = generate_world(
        world, seed=seed, n_train=size.n_train, n_eval=size.n_eval, image_size=IMAGE_SIZE, mix="visual"
    )
    timings["world"] = round(time.perf_counter() - start, 1)

    logger.info("[2/5] stage A: InstructBLIP-style model from scratch, everything trainable, CMAA off")
    init = write_initialization(os.path.join(out, "stage_a", "init.pth"), seed)
    stage_a = train_stage(
        "stage_a.yaml", world, os.path.join(out, "stage_a"), size.stage_a_epochs, size.batch_size, init, size.stage_a_lr
    )
    timings["stage_a"] = stage_a["seconds"]
    logger.info("[2/5] stage A done in %.0f s; mean loss per epoch %s", stage_a["seconds"], stage_a["epoch_losses"])

    logger.info("[3/5] stage B: EMA fine-tuning, CMAA on, only the projection trains")
    stage_b = train_stage(
        "stage_b.yaml", world, os.path.join(out, "stage_b"), size.stage_b_epochs, size.batch_size, stage_a["checkpoint"]
    )
    timings["stage_b"] = stage_b["seconds"]
    logger.info("[3/5] stage B done in %.0f s; mean loss per epoch %s", stage_b["seconds"], stage_b["epoch_losses"])

    logger.info("[4/5] evaluation: %d rows x %s", len(VARIANTS), ", ".join(size.benchmarks))
    t0 = time.perf_counter()
    results = evaluate_rows(world, out, size.benchmarks, stage_a["checkpoint"], stage_b["checkpoint"])
    timings["evaluation"] = round(time.perf_counter() - t0, 1)

    logger.info("[5/5] report")
    base = baselines(manifest, size.benchmarks)
    markdown = table(results, base, size.benchmarks)
    png = chart(results, base, size.benchmarks, os.path.join(out, "ablation.png"))
    traces = sample_traces(results)
    usage = aio_usage(results)
    timings["total"] = round(time.perf_counter() - start, 1)
    summary = {
        "size": asdict(size),
        "seed": seed,
        "table": {row: {b: s["value"] for b, s in per.items()} for row, per in results.items()},
        "baselines": base,
        "margins": margins(results, base),
        "stage_a": stage_a,
        "stage_b": stage_b,
        "traces": traces,
        "aio_usage": usage,
        "timings_s": timings,
        "files": {"markdown": os.path.join(out, "results.md"), "chart": png, "world": world},
    }
    text = "\n\n".join(
        [
            "## VisLingInstruct demo: Table 2 ablation on the generated world (held-out scenes)",
            markdown,
            "Scores x100: accuracy (GQA exact match, TextVQA VQA accuracy, VSR/ScienceQA ranking). Chance picks "
            "uniformly among a question's possible answers; the answer prior always picks the answer most frequent "
            "for its question type in the set (the best a model that ignores the image can do).",
            f"Training loss per epoch: stage A {stage_a['epoch_losses']}, stage B {stage_b['epoch_losses']}.",
            "Samples answered with an instruction AIO changed: " + usage_line(usage) + ".",
            "AIO traces (+ EMA + AIO row):\n\n```\n" + "\n\n".join(format_demo_trace(t) for t in traces) + "\n```",
        ]
    )
    with open(summary["files"]["markdown"], "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    logger.info("\n%s\n", text)
    logger.info("timings (s): %s", timings)
    logger.info(
        "results: %s, %s, %s; checkpoints under %s/stage_{a,b}; predictions and AIO traces under %s/eval",
        summary["files"]["markdown"],
        png,
        os.path.join(out, "results.json"),
        out,
        out,
    )
    return summary


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command line of the demo."""
    parser = argparse.ArgumentParser(prog="python -m lavis_vislinginstruct.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    parser.add_argument("--fast", action="store_true", help="the same pipeline smaller (for the test suite)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and of the initialization")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run the demo from the command line; returns the summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    logger.info("VisLingInstruct demo (%s), %d torch threads", "fast" if args.fast else "full", torch.get_num_threads())
    return run(args.out, SIZES["fast" if args.fast else "full"], args.seed)


if __name__ == "__main__":
    main()
