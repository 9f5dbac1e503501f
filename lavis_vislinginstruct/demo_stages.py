"""The steps of the demo's stages (:mod:`lavis_vislinginstruct.demo` runs them in order).

Each step trains, scores or writes one thing of the demo (VisLingInstruct, Zhu et al., NAACL 2024, on the generated
world of :mod:`lavis_vislinginstruct.world`) through the project's public entry points: ``train.py``
(:func:`lavis_vislinginstruct.train.main`) on the configs of ``projects/vislinginstruct/demo``, the model's own
Instruction Alignment Score, and the model spec writer. Why the steps are as they are (stage A's initialization, stage
A2's length) is in ``docs/demo-measurements.md``.
"""

import json
import logging
import math
import os
import time
from typing import Any, Dict, Sequence, Tuple

import torch
from omegaconf import OmegaConf

from lavis_vislinginstruct.paths import package_path

PROJECT = os.path.join("projects", "vislinginstruct", "demo")
ARCH = "vislinginstruct_vicuna"
MODEL_TYPE = "demo"


LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
#: AIO's guard in the demo: none, the paper's (the generated instruction is used as it is; docs/demo-measurements.md).
AIO_GUARD = "none"


def set_up_process(threads: int) -> None:
    """A demo process (the demo, the pretraining, an evaluation worker): ``threads`` torch threads, deterministic
    kernels (the numbers are reproducible for a fixed thread count) and the demo's log format."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def project_file(name: str) -> str:
    """A config of ``projects/vislinginstruct/demo`` (found from the working directory or the source tree)."""
    for root in (os.getcwd(), os.path.dirname(package_path(""))):
        path = os.path.join(root, PROJECT, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{os.path.join(PROJECT, name)} not found: run the demo from the repository root")


#: Standard deviation of the ViT's position embeddings at initialization (EVA's: 0.02).
POS_EMBED_STD = 0.5


def write_initialization(path: str, seed: int) -> str:
    """The base model's starting weights: the demo model's random initialization with a fan-in-scaled Q-Former
    cross-attention and position embeddings at the scale of the patch features (:data:`POS_EMBED_STD`).

    Why: ``docs/demo-measurements.md`` ("Initialization"). Written as a LAVIS-layout state dict
    (``{"model": ...}``), which the next step reads through ``model.checkpoint`` like an InstructBLIP checkpoint.
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
    torch.nn.init.normal_(model.visual_encoder.pos_embed, std=POS_EMBED_STD)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"model": model.full_state_dict()}, path)  # every weight (state_dict() is the trainable ones)
    return path


def train_stage(
    config: str,
    world: str,
    output_dir: str,
    epochs: int,
    batch_size: int,
    checkpoint: str,
    lr: float = 0.0,
    options: Sequence[str] = (),
) -> Dict[str, Any]:
    """Run ``train.py`` on a demo config; returns the last checkpoint, the per-epoch mean losses and the time."""
    from lavis_vislinginstruct.train import main as train_main

    overrides = [
        f"run.cache_root={world}",
        f"run.output_dir={output_dir}",
        f"run.max_epoch={epochs}",
        f"run.batch_size_train={batch_size}",
        f"model.checkpoint={checkpoint}",
        *options,
    ]
    if lr:
        overrides.append(f"run.init_lr={lr}")
    start = time.perf_counter()
    runner = train_main(["--cfg-path", project_file(config), "--options", *overrides])
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
    # LAVIS names a run's folder by the time to ten minutes, so a rerun within them appends to the same log: this
    # run's epochs are the last ones
    return {"checkpoint": last, "epoch_losses": losses[-epochs:], "seconds": round(seconds, 1), "output_dir": run_dir}


def score_comparison_pairs(
    world: str, pairs: Sequence[Dict[str, Any]], checkpoint: str, batch_size: int = 64
) -> Dict[str, Tuple[float, float]]:
    """The model's own IAS (``model.pipeline().alignment_scores``) of both instructions of every comparison pair.

    The model is stage A as it is evaluated as the vanilla row (CMAA off); images are the pairs' training images.

    Returns:
        ``pair id -> (IAS initial, IAS rewritten)``.
    """
    from lavis_vislinginstruct.datasets.datasets.base import load_image
    from lavis_vislinginstruct.models.loading import load_with_options

    model, vis, _ = load_with_options(ARCH, MODEL_TYPE, [f"checkpoint={checkpoint}", "cmaa.enabled=False"], "cpu")
    images = os.path.join(world, "coco", "images", "train2017")
    scores: Dict[str, Tuple[float, float]] = {}
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        image = torch.stack([vis["eval"](load_image(os.path.join(images, p["image"]))) for p in batch])
        with torch.no_grad():
            initial = model.pipeline().alignment_scores({"image": image}, [p["initial"] for p in batch]).tolist()
            rewritten = model.pipeline().alignment_scores({"image": image}, [p["rewritten"] for p in batch]).tolist()
        scores.update({p["id"]: (a, b) for p, a, b in zip(batch, initial, rewritten)})
    return scores


def comparison_score_summary(
    pairs: Sequence[Dict[str, Any]], scores: Dict[str, Tuple[float, float]]
) -> Dict[str, Any]:
    """How stage A scored the pairs: mean IAS and how often the rewrite scored lower, for user-style and common
    initial instructions (the rewrite of a user-style one is the common first phrasing)."""
    out: Dict[str, Any] = {}
    for user in (True, False):
        chosen = [scores[p["id"]] for p in pairs if p["user"] == user]
        if chosen:
            out["user_style" if user else "common"] = {
                "pairs": len(chosen),
                "mean_ias_initial": round(sum(a for a, _ in chosen) / len(chosen), 3),
                "mean_ias_rewritten": round(sum(b for _, b in chosen) / len(chosen), 3),
                "rewrite_scored_lower": round(sum(b < a for a, b in chosen) / len(chosen), 4),
            }
    return out


def merge_checkpoints(path: str, stage_a: str, stage_a2: str) -> str:
    """The InstructBLIP stand-in as one file: stage A's weights with stage A2's (the LLM and the projection; the
    runner's checkpoints hold only what trained) on top. Written at a stable path, ``weights/instructblip.pth``."""
    state = torch.load(stage_a, map_location="cpu", weights_only=True)["model"]
    update = torch.load(stage_a2, map_location="cpu", weights_only=True)["model"]
    unknown = sorted(set(update) - set(state))
    if unknown:
        raise KeyError(f"{stage_a2} holds weights stage A has not: {unknown[:5]}")
    state.update(update)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"model": state}, path)
    return path


def write_spec(path: str, base: str, projection: str) -> str:
    """The model spec ``path`` (``<out>/model.yaml``): the demo's weights (InstructBLIP stand-in and EMA projection)
    and AIO's guard (none, the paper's); a spec names weights, not rows: entry points choose the row."""
    from lavis_vislinginstruct.models.spec import write_model_spec

    model = {"arch": ARCH, "model_type": MODEL_TYPE, "checkpoint": base, "finetuned": projection,
             "aio": {"guard": AIO_GUARD}}
    comment = ("The demo's trained VisLingInstruct (python -m lavis_vislinginstruct.demo): the shipped InstructBLIP\n"
               "stand-in and the EMA projection of stage B. Use it with --model-spec, e.g.\n"
               "python -m lavis_vislinginstruct.optimize --model-spec demo_output/model.yaml --image IMAGE "
               "--instruction TEXT --answer")
    return write_model_spec(path, model, comment)
