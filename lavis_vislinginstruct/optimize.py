"""Command line: print the Autonomous Instruction Optimization trace for one image and instruction.

    python -m lavis_vislinginstruct.optimize --model vislinginstruct_vicuna --model-type tiny \\
        --image photo.jpg --instruction "What is in the picture?" [--json]

Real weights: ``--model-type vicuna7b --options llm.model=/path/to/vicuna-7b`` (and ``checkpoint=...`` for a
local InstructBLIP file). ``--keep`` names text the optimized instruction must keep (e.g. the question).
``--answer`` answers in the same pass with the instruction AIO chose (``used``), through the one pipeline
(:class:`~lavis_vislinginstruct.inference.pipeline.VisLingInstructPipeline`): AIO runs once.

Any HF image-text-to-text model (LLaVA-1.5, LLaVA-NeXT, Qwen2-VL, InstructBLIP, ...) instead of VisLingInstruct:
``--hf FOLDER`` (a folder or hub id that ``AutoModelForImageTextToText`` reads), with ``--options aio.<field>=value``
for the AIO settings (:class:`~lavis_vislinginstruct.inference.hf_pipeline.VisionLanguagePipeline`).
"""
import argparse
import dataclasses
import logging
import sys
from typing import List, Optional

import torch

import lavis_vislinginstruct  # noqa: F401  (registers the models)
from lavis_vislinginstruct.aio.trace import format_trace
from lavis_vislinginstruct.chat.launch import random_weights_notice
from lavis_vislinginstruct.datasets.datasets.base import load_image
from lavis_vislinginstruct.inference.pipeline import VisLingInstructPipeline
from lavis_vislinginstruct.inference.rows import config_row
from lavis_vislinginstruct.models.generation import Decoding
from lavis_vislinginstruct.models.loading import load_with_options

logger = logging.getLogger(__name__)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m lavis_vislinginstruct.optimize", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="registered model name (default: vislinginstruct_vicuna)")
    ap.add_argument("--model-type", default=None,
                    help="vicuna7b, vicuna13b, flant5xl, flant5xxl, tiny or demo (default: tiny)")
    ap.add_argument("--model-spec", default=None,
                    help="a model spec file naming a trained model, e.g. demo_output/model.yaml (written by make demo)")
    ap.add_argument("--hf", default=None, metavar="FOLDER",
                    help="an HF image-text-to-text model folder (LLaVA, LLaVA-NeXT, Qwen2-VL, ...) instead of --model")
    ap.add_argument("--image", required=True, help="path of the image")
    ap.add_argument("--instruction", required=True, help="the initial instruction")
    ap.add_argument("--keep", action="append", default=[], help="text the optimized instruction must keep")
    ap.add_argument("--mode", default="full", choices=["rewrite", "full"])
    ap.add_argument("--select", default="", choices=["", "generated", "best_ias"],
                    help="which instruction is used after the comparison (default: the model config's)")
    ap.add_argument("--answer", action="store_true", help="also answer with the instruction finally used")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--options", nargs="*", default=[],
                    help="model config overrides, key=value, with or without evaluate.py's model. prefix "
                         "(cmaa.enabled=False = model.cmaa.enabled=False); with --hf, AIO settings aio.<field>=value")
    ap.add_argument("--json", action="store_true", help="print the trace as JSON")
    return ap.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    if not args.instruction.strip():
        raise SystemExit("error: --instruction is empty")
    try:
        image = load_image(args.image)
    except (FileNotFoundError, RuntimeError) as err:
        raise SystemExit(f"error: {err}")
    if args.hf:
        trace, extra = _optimize_hf(args, image)
        print(format_trace(trace, "json" if args.json else "text", extra))
        return {**trace.to_dict(), **extra}
    if not args.model_spec:
        args.model, args.model_type = args.model or "vislinginstruct_vicuna", args.model_type or "tiny"
    try:
        model, vis, _ = load_with_options(args.model, args.model_type, args.options, args.device, args.model_spec)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}")
    notice = random_weights_notice(model.cfg)
    if notice:  # on stderr: stdout holds the trace (JSON with --json)
        print(notice, file=sys.stderr)
    samples = {"image": vis["eval"](image).unsqueeze(0).to(args.device), "text_input": [args.instruction],
               "keep_spans": [args.keep]}
    aio = dataclasses.replace(model.cfg.aio, select=args.select or model.cfg.aio.select)
    pipeline = VisLingInstructPipeline(model, config_row(model.cfg, args.mode), Decoding.from_lavis(max_length=30),
                                       aio=aio)
    extra = {}
    if args.answer:
        (answer,), (trace,) = pipeline.generate(samples, return_traces=True)
        extra["answer"] = answer
    else:
        (trace,) = pipeline.optimize(samples)
    print(format_trace(trace, "json" if args.json else "text", extra))
    return {**trace.to_dict(), **extra}


def _optimize_hf(args: argparse.Namespace, image) -> tuple:
    """The trace (and answer, with ``--answer``) of an HF image-text-to-text model (``--hf``)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from lavis_vislinginstruct.aio.config import aio_settings
    from lavis_vislinginstruct.inference.hf_pipeline import VisionLanguagePipeline

    if args.model or args.model_type or args.model_spec:
        raise SystemExit("error: --hf replaces --model, --model-type and --model-spec; give one of them")
    try:
        aio = aio_settings(args.options)
        if args.select:
            aio = dataclasses.replace(aio, select=args.select)
        model = AutoModelForImageTextToText.from_pretrained(args.hf).to(args.device).eval()
        processor = AutoProcessor.from_pretrained(args.hf)
        pipeline = VisionLanguagePipeline(model, processor, args.mode, aio=aio)
    except (OSError, ValueError) as err:
        raise SystemExit(f"error: --hf {args.hf}: {err}")
    if args.answer:
        (answer,), (trace,) = pipeline.generate([image], [args.instruction], return_traces=True,
                                                keep_spans=[args.keep])
        return trace, {"answer": answer}
    return pipeline.optimize([image], [args.instruction], keep_spans=[args.keep])[0], {}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(sys.argv[1:])
