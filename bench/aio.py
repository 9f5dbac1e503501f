"""Cost of Autonomous Instruction Optimization: ``generate`` with aio=full relative to aio=off, on two models.

* ``random``: the tiny model with random weights (its outputs never end, so every stage runs to its cap);
* ``trained``: the demo world's trained model (``--model-spec``, default ``demo_output/model.yaml``; without it the
  benchmark trains one with ``python -m lavis_vislinginstruct.demo --fast`` into a temporary folder first). It ends
  its outputs at EOS, like a real LLM, and is asked the world's own held-out questions.

Two batches each: VQA-like (a different question per image, 5 beams x 10 tokens) and captioning-like (one shared
instruction, 5 beams, 10 to 80 tokens). Reported per case: milliseconds per sample with AIO off and full, their
ratio, the LLM forward passes, and where AIO's time goes (the traces' per-stage timings). Times are process CPU
seconds (one torch thread), the best of ``--repeats``: on a shared machine wall time swings with the other
processes' load, CPU time much less. Targets, ratio full/off: VQA-like <= 3x (random) and <= 1.6x (trained),
captioning-like <= 1.5x (trained).

    python bench/aio.py [--batch 8] [--repeats 3] [--models random trained] [--model-spec demo_output/model.yaml]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
import lavis_vislinginstruct  # noqa: E402,F401
from lavis.models import load_model_and_preprocess  # noqa: E402

from lavis_vislinginstruct.aio.trace import STAGES  # noqa: E402
from lavis_vislinginstruct.datasets.datasets.base import load_image  # noqa: E402
from lavis_vislinginstruct.models.loading import load_with_options  # noqa: E402
from lavis_vislinginstruct.processors.templates import CAPTION, GQA  # noqa: E402

QUESTIONS = ["what colour is the large circle", "how many shapes are in the image", "is the square on the left",
             "what word is written", "which shape is at the top", "what colour is the triangle",
             "is there a small shape", "what is the biggest shape"]
TARGETS = {("random", "VQA-like"): 3.0, ("trained", "VQA-like"): 1.6, ("trained", "captioning-like"): 1.5}


class Counter:
    def __init__(self, module):
        self.n = 0
        self.handle = module.register_forward_hook(self)

    def __call__(self, *args):
        self.n += 1


def run(model, samples, aio, settings, repeats):
    """Best CPU seconds of ``generate``, LLM passes per call and the stage timings of the best full run."""
    llm = Counter(model.llm)
    best, stages = float("inf"), {}
    for _ in range(repeats):
        start = time.process_time()  # model.generate builds a pipeline per call: each repeat pays for its rewrites
        _, traces = model.generate(dict(samples), aio=aio, return_traces=True, **settings)
        seconds = time.process_time() - start
        if seconds < best:
            best, stages = seconds, traces[0].timings
    llm.handle.remove()
    return best, llm.n // repeats, stages


def random_model(batch):
    torch.manual_seed(0)
    model, _, _ = load_model_and_preprocess("vislinginstruct_vicuna", "tiny", is_eval=True)
    images = torch.randn(batch, 3, 32, 32)
    questions = [GQA.format(question=QUESTIONS[i % len(QUESTIONS)] + "?") for i in range(batch)]
    return model, images, questions


def trained_model(batch, spec):
    """The demo's model and ``batch`` of its world's held-out GQA-like questions with their images."""
    if not os.path.isfile(spec):
        out = tempfile.mkdtemp(prefix="vli-bench-demo-")
        print(f"{spec} not found: training the --fast demo model into {out} first", flush=True)
        subprocess.run([sys.executable, "-m", "lavis_vislinginstruct.demo", "--fast", "--out", out], check=True,
                       stdout=subprocess.DEVNULL)
        spec = os.path.join(out, "model.yaml")
    model, vis, _ = load_with_options(spec=spec)
    world = os.path.join(os.path.dirname(os.path.abspath(spec)), "world")
    with open(os.path.join(world, "gqa", "annotations", "testdev_balanced_questions.json"), encoding="utf-8") as f:
        records = list(json.load(f).values())[:batch]
    images = torch.stack([vis["eval"](load_image(os.path.join(world, "gqa", "images", f"{r['imageId']}.jpg")))
                          for r in records])
    return model, images, [GQA.format(question=r["question"]) for r in records]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest numbers)")
    ap.add_argument("--models", nargs="+", default=["random", "trained"], choices=["random", "trained"])
    ap.add_argument("--model-spec", default="demo_output/model.yaml", help="the trained model (written by make demo)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch}, CPU, {torch.get_num_threads()} thread(s), best of {args.repeats}; ms = CPU ms/sample")
    for which in args.models:
        model, images, questions = random_model(args.batch) if which == "random" else trained_model(
            args.batch, args.model_spec)
        cases = {
            "VQA-like": ({"image": images, "text_input": questions}, dict(num_beams=5, max_length=10, min_length=1)),
            "captioning-like": ({"image": images, "text_input": [CAPTION] * args.batch},
                                dict(num_beams=5, max_length=80, min_length=10)),
        }
        for name, (samples, settings) in cases.items():
            t_off, l_off, _ = run(model, samples, "off", settings, args.repeats)
            t_on, l_on, stages = run(model, samples, "full", settings, args.repeats)
            ratio = t_on / t_off
            target = TARGETS.get((which, name))
            verdict = f" (target <= {target}x: {'met' if ratio <= target else 'NOT met'})" if target else ""
            split = ", ".join(f"{s} {1000 * stages[s] / args.batch:.1f}" for s in STAGES if s in stages)
            print(f"{which:7} {name:15}: off {1000 * t_off / args.batch:6.1f} ms ({l_off} LLM passes) | full "
                  f"{1000 * t_on / args.batch:6.1f} ms ({l_on} LLM passes; AIO stages, wall ms/sample: {split}) | "
                  f"ratio {ratio:.2f}x{verdict}", flush=True)


if __name__ == "__main__":
    main()
