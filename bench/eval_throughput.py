"""Evaluation throughput per task family on the tiny model (CPU), with AIO off, rewrite and full.

Runs the evaluation tasks' own ``valid_step`` (what ``evaluate.py`` runs per batch) on synthetic GQA-like
batches (generation: ``predict_answers``, 5 beams, up to 10 tokens) and IconQA-like batches (ranking:
``predict_class`` over 4 options), every sample with its own question as in the real benchmarks (so AIO's
memoized rewrite does not hide the rewrite cost). Prints samples per second and the cost of AIO as ratios
(samples/s with AIO off divided by samples/s with AIO on: how many times slower).

    python bench/eval_throughput.py [--batches 4] [--batch-size 4] [--arch vicuna t5] [--threads 1]

One torch thread by default, and process CPU time: on a shared or busy machine several OpenMP threads per process
wait on each other and wall times swing by 10x or more; one thread's CPU time repeats within a few percent.
"""
import argparse
import os
import sys
import time
from typing import Dict, List

import torch
from omegaconf import OmegaConf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
import lavis_vislinginstruct  # noqa: E402,F401
from lavis.common.registry import registry  # noqa: E402

from lavis_vislinginstruct.inference.rows import row_for  # noqa: E402
from lavis_vislinginstruct.tasks.benchmarks import BENCHMARKS  # noqa: E402
from lavis_vislinginstruct.tasks.evaluation import GenerationTask, RankingTask  # noqa: E402

COLORS = ["red", "blue", "green", "yellow", "black", "white", "brown", "purple"]
OBJECTS = ["cup", "plate", "lamp", "chair", "table", "sign", "bag", "box"]
MODES = ("off", "rewrite", "full")


def build_model(arch: str):
    cls = registry.get_model_class(f"vislinginstruct_{arch}")
    cfg = OmegaConf.load(cls.default_config_path("tiny")).model
    torch.manual_seed(0)
    return cls.from_config(cfg).eval()


def batch(family: str, index: int, size: int) -> Dict:
    """Synthetic samples with distinct questions (and 4 options for ranking)."""
    g = torch.Generator().manual_seed(index)
    items = []
    for i in range(size):
        k = index * size + i
        question = f"What color is the {OBJECTS[k % len(OBJECTS)]} number {k}?"
        if family == "generation":
            text = f"Question: {question} \n Short answer:"
            items.append({"text_input": text, "keep_spans": [question], "answer": "red"})
        else:
            options = [COLORS[(k + j) % len(COLORS)] for j in range(4)]
            lettered = " ".join(f"({chr(97 + j)}) {o}" for j, o in enumerate(options))
            text = f"Question: {question} Options: {lettered} \n Answer:"
            items.append({"text_input": text, "keep_spans": [question, *options], "candidates": options,
                          "correct_choice_idx": 0})
    samples = {key: [item[key] for item in items] for key in items[0]}
    samples["image"] = torch.randn(size, 3, 32, 32, generator=g)
    samples["instance_id"] = [str(index * size + i) for i in range(size)]
    return samples


def task_for(family: str, mode: str):
    """The evaluation task of ``family`` for the row with CMAA on and AIO ``mode`` (a fresh pipeline)."""
    row = row_for(True, mode)
    if family == "generation":
        bench = BENCHMARKS["gqa"]
        return GenerationTask(bench, GenerationTask.settings_from({}, bench), {}, {}, {}, row)
    bench = BENCHMARKS["iconqa"]
    return RankingTask(bench, RankingTask.settings_from({}, bench), {}, {}, {}, row)


def throughput(model, family: str, mode: str, batches: int, size: int) -> float:
    """Samples per CPU second of ``valid_step`` over ``batches`` batches after one warm-up batch."""
    task = task_for(family, mode)
    task.valid_step(model, batch(family, 10_000, size))  # warm-up
    start = time.process_time()
    for index in range(batches):
        records = task.valid_step(model, batch(family, index, size))
        assert len(records) == size
    return batches * size / (time.process_time() - start)


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--arch", nargs="+", default=["vicuna", "t5"], choices=["vicuna", "t5"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for arch in args.arch:
        model = build_model(arch)
        for family in ("generation", "ranking"):
            sps = {mode: throughput(model, family, mode, args.batches, args.batch_size) for mode in MODES}
            rows.append((arch, family, sps))

    out = sys.stdout
    out.write(f"tiny model, CPU ({torch.get_num_threads()} threads), {args.batches} batches of {args.batch_size}\n")
    out.write(f"{'LLM':8} {'family':11} {'off s/s':>8} {'rewrite':>8} {'full':>8}   off/rewrite  off/full\n")
    for arch, family, sps in rows:
        out.write(
            f"{arch:8} {family:11} {sps['off']:8.2f} {sps['rewrite']:8.2f} {sps['full']:8.2f}   "
            f"{sps['off'] / sps['rewrite']:10.2f}x {sps['off'] / sps['full']:8.2f}x\n"
        )


if __name__ == "__main__":
    main()
