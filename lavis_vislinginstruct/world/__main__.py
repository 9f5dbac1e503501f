"""Command line: ``python -m lavis_vislinginstruct.world --out DIR --seed 0 --n-train N --n-eval M``."""

import argparse
import logging
import time
from typing import List, Optional

from .instructions import MIXES
from .scenes import DEFAULT_IMAGE_SIZE
from .writer import generate_world

logger = logging.getLogger("lavis_vislinginstruct.world")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m lavis_vislinginstruct.world",
        description="Generate the demo's visual world (training + evaluation sets in official formats).",
    )
    parser.add_argument("--out", required=True, help="output folder (empty, absent, or a previous world)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random stream")
    parser.add_argument("--n-train", type=int, default=2000, help="training conversations (one image each)")
    parser.add_argument("--n-eval", type=int, default=200, help="records per evaluation set")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help="image side in pixels")
    parser.add_argument(
        "--mix", default="default", choices=sorted(MIXES), help="training mix (instructions.MIXES, default %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.n_train < 0 or args.n_eval < 0 or args.image_size < 16:
        parser.error("counts must be >= 0 and --image-size >= 16")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Generate the world and log a summary; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    manifest = generate_world(args.out, args.seed, args.n_train, args.n_eval, args.image_size, args.mix)
    logger.info(
        "wrote %d images and %d annotation files to %s in %.1f s (seed %d, %d px)",
        manifest["n_images"],
        len(manifest["files"]),
        args.out,
        time.perf_counter() - start,
        args.seed,
        args.image_size,
    )
    kinds = manifest["train"]["llava_instruct_150k"]["kinds"]
    logger.info("train llava_instruct_150k: %d conversations (mix %s) %s", manifest["n_train"], args.mix, kinds)
    for name, entry in manifest["eval"].items():
        logger.info(
            "eval %-9s: %d records, metric %s, chance %s, answer prior %s",
            name,
            entry["count"],
            entry["metric"],
            entry["chance"],
            entry["answer_prior"],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
