"""Cost of Autonomous Instruction Optimization: ``generate`` with aio=full relative to aio=off.

Same tiny model and inputs for both, on CPU. Two batches: VQA-like (a different question per image, short
answers) and captioning-like (one shared instruction, longer outputs). Prints wall time per sample, the ratio,
and how many vision-encoder and LLM passes each run made (LLM passes = forward calls, one per decoding step).
Targets: at most 3x (VQA-like) and 1.5x (captioning-like).

    python bench/aio.py [--batch 8] [--repeats 3] [--threads 1]

Times are the best of the repeats.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
import lavis_vislinginstruct  # noqa: E402,F401
from lavis.models import load_model_and_preprocess  # noqa: E402

QUESTIONS = ["what colour is the large circle", "how many shapes are in the image", "is the square on the left",
             "what word is written", "which shape is at the top", "what colour is the triangle",
             "is there a small shape", "what is the biggest shape"]


class Counter:
    def __init__(self, module):
        self.n = 0
        self.handle = module.register_forward_hook(self)

    def __call__(self, *args):
        self.n += 1


def run(model, samples, aio, settings, repeats):
    vision, llm = Counter(model.visual_encoder), Counter(model.llm)
    best = float("inf")
    for _ in range(repeats):
        model.instruction_optimizer.clear()  # each repeat pays for its rewrites
        start = time.perf_counter()
        model.generate(dict(samples), aio=aio, **settings)
        best = min(best, time.perf_counter() - start)
    vision.handle.remove()
    llm.handle.remove()
    return best, vision.n // repeats, llm.n // repeats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest numbers)")
    ap.add_argument("--model", default="vislinginstruct_vicuna")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, _, _ = load_model_and_preprocess(args.model, "tiny", is_eval=True)
    images = torch.randn(args.batch, 3, 32, 32)
    cases = {
        "VQA-like": ({"image": images, "text_input": [f"Question: {QUESTIONS[i % len(QUESTIONS)]}? \n Short answer:"
                                                      for i in range(args.batch)]},
                     dict(num_beams=5, max_length=10, min_length=1), 3.0),
        "captioning-like": ({"image": images, "text_input": ["A short image description:"] * args.batch},
                            dict(num_beams=5, max_length=80, min_length=10), 1.5),
    }
    print(f"{args.model} tiny, batch {args.batch}, CPU, {torch.get_num_threads()} threads")
    for name, (samples, settings, target) in cases.items():
        t_off, v_off, l_off = run(model, samples, "off", settings, args.repeats)
        t_on, v_on, l_on = run(model, samples, "full", settings, args.repeats)
        ratio = t_on / t_off
        print(f"{name}: off {1000 * t_off / args.batch:.1f} ms/sample ({v_off} vision, {l_off} LLM passes) | "
              f"full {1000 * t_on / args.batch:.1f} ms/sample ({v_on} vision, {l_on} LLM passes) | "
              f"ratio {ratio:.2f}x (target <= {target}x: {'met' if ratio <= target else 'NOT met'})")


if __name__ == "__main__":
    main()
