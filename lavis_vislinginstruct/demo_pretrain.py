"""The demo's InstructBLIP, pretrained once: ``python -m lavis_vislinginstruct.demo pretrain``.

VisLingInstruct (Zhu et al., NAACL 2024) starts from a pretrained InstructBLIP. The demo's stand-in for it is trained
here on the generated world (:mod:`lavis_vislinginstruct.world`), once, and shipped with the package
(``lavis_vislinginstruct/assets/demo_base/``: the weights and ``manifest.json``); ``make demo`` loads it as a user
loads InstructBLIP's weights. The steps, each through the project's own entry points:

1. **World**: the training conversations of stage A (the ``demo`` mix: benchmark-style questions and bare chat
   questions), comparison pairs, stage A2's second file (rewrites, and questions as replay) and the focus round's
   files (the ``demo_focus`` mix, written last with streams of their own). Its held-out sets are the demo's own
   (same seed and size), so training avoids their instructions as it does in the demo.
2. **Grounding** (:mod:`lavis_vislinginstruct.demo_grounding`): from a written initialization
   (:func:`~lavis_vislinginstruct.demo_stages.write_initialization`), the ViT, the Q-Former and the projection learn
   the world's answers through a linear classifier, as BLIP-2 trains its Q-Former before it meets the LLM.
   **Stage A** (``projects/vislinginstruct/demo/stage_a.yaml``): from there, the InstructBLIP architecture with
   everything trainable, CMAA off.
3. **Stage A2** (``stage_a2.yaml``): stage A's own Instruction Alignment Score (eq. 3) of both instructions of
   every comparison pair, written into AIO's comparison prompts; the LLM and the projection learn them and the
   rewrites (:func:`train_round`, as each round after it).
4. **Second round**: fresh comparison pairs scored by the merged stage A + A2 model (the scores AIO will show at
   inference come from a model that has learned the rewrites, and their IAS is lower than stage A's), trained the
   same way (``stage_a2.yaml`` again, from the merged weights): copying a long instruction (ScienceQA's options) or
   a user's wording is what the tiny LLM learns last, and more of it comes with this round
   (``docs/demo-measurements.md``).
5. **Focus round**: the same once more on the world's ``demo_focus`` data (comparison pairs mostly of spatial
   statements and multiple choice, user-style questions answered and rewritten): the families and wordings whose
   content AIO lost most often after the second round.
6. **Probes** (:mod:`lavis_vislinginstruct.demo_probes`): the merged model as the vanilla row, on fresh
   training-split scenes (what the recipe's choices were measured on) and held-out ones (reported, never tuned on).
7. **Release**: the weights and a manifest (the command, seed, threads, torch version, the code's commit, SHA-256,
   the stages' losses and times, the probes).

``--fast`` runs the same steps small (``tests/test_demo.py``) into ``<out>/release``; the full run writes the shipped
folder unless ``--release`` names another.
"""

import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch

from lavis_vislinginstruct import demo_probes as probes
from lavis_vislinginstruct.demo_grounding import write_grounded
from lavis_vislinginstruct.demo_stages import (
    AIO_GUARD,
    ARCH,
    MODEL_TYPE,
    comparison_score_summary,
    merge_checkpoints,
    score_comparison_pairs,
    set_up_process,
    train_stage,
    write_initialization,
)
from lavis_vislinginstruct.paths import package_path
from lavis_vislinginstruct.world import generate_world
from lavis_vislinginstruct.world.writer import read_comparison_candidates, write_comparison_training

logger = logging.getLogger("lavis_vislinginstruct.demo")

IMAGE_SIZE = 32
WEIGHTS = "instructblip.pth"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PretrainSize:
    """How big a pretraining run is.

    Attributes:
        n_train: Stage A's conversations (one image each).
        n_compare: Comparison pairs scored by stage A and trained in stage A2.
        n_compare_second: Comparison pairs of the second round, scored by the merged stage A + A2 model.
        n_text: Conversations of stage A2's second file (rewrites and questions).
        n_replay: Stage A conversations replayed in stage A2.
        n_focus_compare: Comparison pairs of the focus round (the ``demo_focus`` mix), scored by the model after the
            second round.
        n_focus_text: Conversations of the focus round's own file (the ``demo_focus`` mix).
        n_focus_replay: Stage A conversations replayed in the focus round.
        n_eval: Records of each held-out set of the world (the demo's: training avoids their instructions).
        grounding_updates: Updates of the grounding phase (batch ``batch_size``).
        grounding_lr: Peak learning rate of the grounding phase.
        batch_size: Stage A's batch size.
        stage_a_epochs: Epochs of stage A.
        stage_a_lr: Peak learning rate of stage A (warm-up, then cosine to 0).
        stage_a2_batch_size: Stage A2's batch size.
        stage_a2_epochs: Epochs of stage A2.
        stage_a2_lr: Peak learning rate of stage A2.
        second_epochs: Epochs of the second comparison round (batch size and learning rate: stage A2's).
        focus_epochs: Epochs of the focus round (batch size and learning rate: stage A2's).
        n_probe: Probe questions per type (:mod:`lavis_vislinginstruct.demo_probes`), for each split.
    """

    n_train: int
    n_compare: int
    n_compare_second: int
    n_text: int
    n_replay: int
    n_focus_compare: int
    n_focus_text: int
    n_focus_replay: int
    n_eval: int
    grounding_updates: int
    grounding_lr: float
    batch_size: int
    stage_a_epochs: int
    stage_a_lr: float
    stage_a2_batch_size: int
    stage_a2_epochs: int
    stage_a2_lr: float
    second_epochs: int
    focus_epochs: int
    n_probe: int


SIZES = {
    "full": PretrainSize(n_train=51200, n_compare=3200, n_compare_second=6400, n_text=9600, n_replay=3200,
                         n_focus_compare=4800, n_focus_text=6400, n_focus_replay=800, n_eval=400,
                         grounding_updates=5000, grounding_lr=2e-3, batch_size=64, stage_a_epochs=3,
                         stage_a_lr=2e-3, stage_a2_batch_size=32, stage_a2_epochs=3, stage_a2_lr=1e-3, second_epochs=2,
                         focus_epochs=2, n_probe=200),
    "fast": PretrainSize(n_train=256, n_compare=64, n_compare_second=32, n_text=128, n_replay=32,
                         n_focus_compare=32, n_focus_text=32, n_focus_replay=16, n_eval=60,
                         grounding_updates=10, grounding_lr=2e-3, batch_size=32, stage_a_epochs=1, stage_a_lr=2e-3,
                         stage_a2_batch_size=32, stage_a2_epochs=1, stage_a2_lr=1e-3, second_epochs=1, focus_epochs=1,
                         n_probe=10),
}


def release_dir() -> str:
    """The shipped base's folder inside the package."""
    return package_path(os.path.join("assets", "demo_base"))


def sha256(path: str) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _commit() -> Dict[str, Any]:
    root = os.path.dirname(package_path(""))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def probe_model(checkpoint: str, n_per_type: int) -> Dict[str, Any]:
    """The probes of a base checkpoint on both splits: ``probes`` (vanilla row: CMAA off, greedy, 10 new tokens) and
    ``aio_content`` (AIO full with the paper's unguarded selection, CMAA off, ``n_per_type // 2`` per family)."""
    from lavis_vislinginstruct.inference.pipeline import VisLingInstructPipeline
    from lavis_vislinginstruct.inference.rows import row_for
    from lavis_vislinginstruct.models.generation import Decoding
    from lavis_vislinginstruct.models.loading import load_with_options

    model, vis, _ = load_with_options(ARCH, MODEL_TYPE, [f"checkpoint={checkpoint}", f"aio.guard={AIO_GUARD}"], "cpu")
    vanilla = VisLingInstructPipeline(model, "vanilla", Decoding(max_new_tokens=10, num_beams=1))
    optimizing = VisLingInstructPipeline(model, row_for(False, "full"))
    out: Dict[str, Any] = {"probes": {}, "aio_content": {}}
    for split in ("train", "eval"):
        items = probes.probe_items(split, n_per_type, seed=0)
        out["probes"][split] = probes.score(items, probes.answer_items(vanilla, vis["eval"], items, IMAGE_SIZE))
        out["aio_content"][split] = probes.aio_content(
            optimizing, vis["eval"], probes.aio_items(split, max(n_per_type // 2, 1), seed=0), IMAGE_SIZE)
    return out


@dataclass(frozen=True)
class Round:
    """One comparison round after stage A: its comparison pairs, epochs, the world's conversation file trained
    beside them (stem) and how many stage A conversations are replayed."""

    pairs: List[Dict[str, Any]]
    epochs: int
    text: str
    replay: int


def train_round(world: str, out: str, name: str, step: int, spec: Round, weights: str, size: PretrainSize,
                seed: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """One round: the model's (``weights``) own IAS of the round's pairs written into comparison prompts, trained with
    ``stage_a2.yaml`` beside the round's conversations and replay; what trained is merged onto ``weights`` into
    ``<out>/instructblip.pth``. Returns the stage's record (``epoch_losses``, ``seconds``, ...) and the scores'
    summary."""
    from lavis_vislinginstruct.aio.config import AIOCfg

    logger.info("[pretrain %d/7] %s: the model's own IAS of %d comparison pairs", step, name, len(spec.pairs))
    scores = score_comparison_pairs(world, spec.pairs, weights)
    summary = comparison_score_summary(spec.pairs, scores)
    written = write_comparison_training(world, scores, AIOCfg.compare_template, AIOCfg.compare_cue, spec.replay,
                                        name=f"{name}_comparison.json", seed=seed, pairs=spec.pairs, text=spec.text)
    logger.info("[pretrain %d/7] %s: %d comparison prompts, %d conversations of %s.json, %d replayed", step, name,
                written["comparison"], written["text"], spec.text, written["replay"])
    storage = f"datasets.vli_llava_instruct_150k.build_info.annotations.train.storage={written['train']}"
    stage = train_stage("stage_a2.yaml", world, os.path.join(out, name), spec.epochs, size.stage_a2_batch_size,
                        weights, size.stage_a2_lr, [storage])
    # the runner's checkpoint holds what trained (the LLM, the projection): merged onto the weights it started from
    merge_checkpoints(os.path.join(out, WEIGHTS), weights, stage["checkpoint"])
    logger.info("[pretrain %d/7] %s done in %.0f s; mean loss per epoch %s", step, name, stage["seconds"],
                stage["epoch_losses"])
    return stage, summary


def pretrain(out: str, size: PretrainSize, seed: int = 0, release: Optional[str] = None,
             argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Train the demo's base model and write it with its manifest to ``release``; returns the manifest."""
    out = os.path.abspath(out)
    release = os.path.abspath(release or os.path.join(out, "release"))
    world = os.path.join(out, "world")
    start = time.perf_counter()
    code = _commit()  # the code as it is when training starts
    n_pairs = size.n_compare + size.n_compare_second
    logger.info("[pretrain 1/7] world: %d conversations, %d comparison pairs, %d rewrites and questions, focus round "
                "%d pairs and %d conversations -> %s", size.n_train, n_pairs, size.n_text, size.n_focus_compare,
                size.n_focus_text, world)
    generate_world(world, seed=seed, n_train=size.n_train, n_eval=size.n_eval, image_size=IMAGE_SIZE, mix="demo",
                   n_compare=n_pairs, text_mix="demo_text", n_text=size.n_text, focus_mix="demo_focus",
                   n_focus_compare=size.n_focus_compare, n_focus_text=size.n_focus_text)

    logger.info("[pretrain 2/7] grounding: ViT, Q-Former and projection through an answer classifier, %d updates",
                size.grounding_updates)
    init = write_initialization(os.path.join(out, "grounding", "init.pth"), seed)
    grounding = write_grounded(init, os.path.join(out, "grounding", "grounded.pth"), size.grounding_updates,
                               size.batch_size, size.grounding_lr, seed, IMAGE_SIZE)
    logger.info("[pretrain 2/7] stage A: everything trainable, CMAA off")
    stage_a = train_stage("stage_a.yaml", world, os.path.join(out, "stage_a"), size.stage_a_epochs, size.batch_size,
                          grounding["checkpoint"], size.stage_a_lr)
    logger.info("[pretrain 2/7] stage A done in %.0f s; mean loss per epoch %s", stage_a["seconds"],
                stage_a["epoch_losses"])

    pairs = read_comparison_candidates(world)
    # each round: its comparison pairs, epochs, conversation file and replay (batch size and learning rate: stage A2's)
    rounds = {"stage_a2": Round(pairs[: size.n_compare], size.stage_a2_epochs, "phase2", size.n_replay),
              "second_round": Round(pairs[size.n_compare:], size.second_epochs, "phase2", size.n_replay),
              "focus_round": Round(read_comparison_candidates(world, "focus"), size.focus_epochs, "focus",
                                   size.n_focus_replay)}
    stages: Dict[str, Dict[str, Any]] = {}
    summaries: Dict[str, Any] = {}
    weights_so_far, base = stage_a["checkpoint"], os.path.join(out, WEIGHTS)
    for k, (name, spec) in enumerate(rounds.items()):
        stages[name], summaries[name] = train_round(world, out, name, 3 + k, spec, weights_so_far, size, seed + k)
        weights_so_far = base

    logger.info("[pretrain 6/7] probes, %d questions per type and split", size.n_probe)
    probed = probe_model(base, size.n_probe)
    for split, per in probed["probes"].items():
        logger.info("[pretrain 6/7] %s probes: %s; AIO content kept (used): %s", split,
                    {k: v["accuracy"] for k, v in per.items()},
                    {k: v["content_kept"]["estimate"] for k, v in probed["aio_content"][split].items()})

    os.makedirs(release, exist_ok=True)
    weights = os.path.join(release, WEIGHTS)
    shutil.copyfile(base, weights)
    manifest = {
        "command": " ".join(["python -m lavis_vislinginstruct.demo pretrain", *(argv or [])]).strip(),
        "seed": seed,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        **code,
        "weights": WEIGHTS,
        "sha256": sha256(weights),
        "bytes": os.path.getsize(weights),
        "size": asdict(size),
        "stages": {"grounding": {k: grounding[k] for k in ("losses", "accuracy", "seconds")},
                   **{name: {k: s[k] for k in ("epoch_losses", "seconds")} for name, s in
                      (("stage_a", stage_a), *stages.items())}},
        "comparison_scores": summaries,
        **probed,
        "seconds": round(time.perf_counter() - start, 1),
    }
    with open(os.path.join(release, MANIFEST), "w", encoding="utf-8") as handle:
        handle.write(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    logger.info("[pretrain 7/7] %s (%.1f MB, sha256 %s) and %s in %.0f s", weights, manifest["bytes"] / 1e6,
                manifest["sha256"][:12], MANIFEST, manifest["seconds"])
    return manifest


def shipped_base(folder: Optional[str] = None) -> Tuple[str, Dict[str, Any]]:
    """The path of the shipped base weights, after checking their SHA-256 against the manifest, and the manifest.

    Raises:
        FileNotFoundError: If the weights or the manifest are missing (``make demo FROM_SCRATCH=1`` trains them).
        ValueError: If the weights are not the manifest's bytes, or the manifest is not one.
    """
    folder = folder or release_dir()
    manifest_path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise FileNotFoundError(f"no demo base manifest at {manifest_path}: run `python -m lavis_vislinginstruct.demo "
                                "--from-scratch` (or `make demo FROM_SCRATCH=1`) to pretrain it")
    with open(manifest_path, encoding="utf-8") as handle:
        try:
            manifest = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{manifest_path} is not valid JSON ({err})") from None
    missing = [key for key in ("weights", "sha256") if not isinstance(manifest.get(key), str)]
    if missing:
        raise ValueError(f"{manifest_path} has no {' or '.join(missing)} (a manifest that `demo pretrain` writes)")
    weights = os.path.join(folder, manifest["weights"])
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"the demo base weights {weights} named by {manifest_path} are missing")
    found = sha256(weights)
    if found != manifest["sha256"]:
        raise ValueError(f"{weights}: SHA-256 {found} is not the manifest's {manifest['sha256']} ({manifest_path}); "
                         "the file is damaged or was replaced (a Git LFS pointer?)")
    return weights, manifest


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """``python -m lavis_vislinginstruct.demo pretrain [--out DIR] [--fast] [--seed N] [--threads N] [--release D]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lavis_vislinginstruct.demo pretrain",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_pretrain", help="work folder (default: %(default)s)")
    parser.add_argument("--fast", action="store_true", help="the same steps, small (for the test suite)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and of the initialization")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default %(default)s, as the shipped base was trained)")
    parser.add_argument("--release", default=None,
                        help="where the weights and manifest go (default: the package's shipped folder; with "
                             "--fast: <out>/release)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        raise SystemExit("error: --threads must be >= 1")
    set_up_process(args.threads)
    release = args.release or (None if args.fast else release_dir())
    return pretrain(args.out, SIZES["fast" if args.fast else "full"], args.seed, release,
                    list(argv if argv is not None else sys.argv[2:]))
