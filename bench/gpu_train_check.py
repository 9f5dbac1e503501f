"""GPU check of training: LAVIS's stock ``runner_base`` fine-tunes a vicuna7b-shaped VisLingInstruct under torchrun.

    python -m torch.distributed.run --nproc_per_node=1 bench/gpu_train_check.py [--steps 20] [--batch 4]
        [--project vicuna7b|vicuna13b|flant5xl|flant5xxl] [--resume]

No weights or data are read. The project config (``projects/vislinginstruct/train/<project>.yaml``: amp, AdamW,
the Appendix E schedule, ``blip2_image_train``/``blip_image_train``) is used with these overrides: no checkpoints
(``model.checkpoint``, ``model.vision.checkpoint``, ``model.llm.model`` empty, so every weight is random), the
bundled tiny tokenizers (the LLM's vocabulary shrinks to theirs, about 1K rows instead of 32K: the LM head is
slightly cheaper than the real one), one epoch of ``--steps`` iterations of ``--batch`` samples over a synthetic
LLaVA-Instruct-150K file with 224 px images written to a temporary folder. The model is built directly on the GPU
(random initialisation of 7B parameters takes minutes on a CPU).

Prints: samples/s over the steps after ``--warmup`` (from the start of one forward to the start of the next, the
GPU synchronised; the last step is not timed), peak GPU memory during training, the epoch's mean loss, and the
keys and size of the checkpoint the runner wrote. ``--resume`` then builds a fresh model and runner with
``run.resume_ckpt_path`` at that checkpoint and ``run.max_epoch=2``, as a user resumes: LAVIS's own
``_load_checkpoint`` (a strict ``load_state_dict`` of the trainable-only checkpoint, through DDP, onto the GPU),
then epoch 1; it reports the epoch it started at, the sampler's epoch, and the second checkpoint's keys and size.
(That a resumed run repeats the uninterrupted one is tested on CPU, ``tests/test_stock_runner.py``.) The runner
is always ``runner_base``: ``runner_vli`` is the CPU runner. Exits with status 2 when no GPU is visible.

Seen on one H100 (2026-11-26, torch 2.11, vicuna7b, batch 4, 30 steps): 14 to 19 samples/s for either runner,
19.5 GiB peak; the first run on a freshly started machine was about 3x slower, so run it twice.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
WORDS = (
    "the a man woman dog cat red blue green small large table street car bus sky tree window person holding "
    "standing sitting next to in on of with near front behind image shows there is are two three several people"
).split()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="vicuna7b", choices=["vicuna7b", "vicuna13b", "flant5xl", "flant5xxl"])
    parser.add_argument("--resume", action="store_true", help="then resume from checkpoint_0 for a second epoch")
    parser.add_argument("--steps", type=int, default=20, help="training iterations (one epoch)")
    parser.add_argument("--batch", type=int, default=4, help="samples per GPU and step (vicuna7b.yaml: 4)")
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the throughput")
    parser.add_argument("--answer-words", type=int, default=120, help="words per target (LLaVA answers are long)")
    return parser.parse_args(argv)


def write_data(root: str, n: int, answer_words: int) -> None:
    """``n`` LLaVA-format conversations on 224 px JPEGs, laid out as a LAVIS cache_root."""
    from PIL import Image

    rng = random.Random(0)
    images = os.path.join(root, "coco", "images", "train2017")
    os.makedirs(images, exist_ok=True)
    os.makedirs(os.path.join(root, "llava_instruct_150k"), exist_ok=True)
    records = []
    for i in range(n):
        name = f"{i:012d}.jpg"
        colour = tuple(rng.randrange(256) for _ in range(3))
        Image.new("RGB", (224, 224), colour).save(os.path.join(images, name))
        question = " ".join(rng.choice(WORDS) for _ in range(16)) + "?"
        answer = " ".join(rng.choice(WORDS) for _ in range(answer_words)) + "."
        records.append(
            {
                "id": f"{i:012d}",
                "image": name,
                "conversations": [{"from": "human", "value": "<image>\n" + question}, {"from": "gpt", "value": answer}],
            }
        )
    with open(os.path.join(root, "llava_instruct_150k", "llava_instruct_150k.json"), "w") as handle:
        json.dump(records, handle)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.stderr.write("gpu_train_check: no CUDA device is visible; this check needs one GPU (see the docstring)\n")
        return 2

    import lavis.tasks as tasks
    import torch.distributed as dist

    from lavis_vislinginstruct.train import build_runner, setup

    world = int(os.environ.get("WORLD_SIZE", 1))
    tmp = tempfile.mkdtemp(prefix="vli_gpu_check_")
    write_data(os.path.join(tmp, "data"), args.steps * args.batch * world, args.answer_words)
    tokenizer = "tiny_llama" if args.project.startswith("vicuna") else "tiny_t5"
    options = [
        'model.llm.model=""',
        'model.checkpoint=""',
        'model.vision.checkpoint=""',
        "model.qformer.tokenizer=tiny_bert",
        f"model.llm.tokenizer={tokenizer}",
        "run.runner=runner_base",
        "run.allow_random_weights=True",  # random weights on purpose: this measures speed and memory
        f"run.cache_root={tmp}/data",
        f"run.output_dir={tmp}/out",
        "run.max_epoch=1",
        f"run.batch_size_train={args.batch}",
        "run.num_workers=4",
        "run.warmup_steps=5",
        "run.log_freq=5",
    ]
    cfg_path = os.path.join(ROOT, "projects", "vislinginstruct", "train", f"{args.project}.yaml")
    cfg, job_id, created = setup(["--cfg-path", cfg_path, "--options", *options])

    task = tasks.setup_task(cfg)
    datasets = task.build_datasets(cfg)
    start = time.perf_counter()
    with torch.device("cuda"):  # random initialisation on the GPU
        model = task.build_model(cfg)
    build_s = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)

    stamps = []

    def stamp(module, inputs):
        torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    model.register_forward_pre_hook(stamp)
    runner = build_runner(cfg, job_id, task, model, datasets)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    runner.train()
    peak_gib = torch.cuda.max_memory_allocated() / 2**30

    if dist.get_rank() == 0:
        steady = stamps[min(args.warmup, len(stamps) - 2) :]
        samples_per_s = args.batch * world * (len(steady) - 1) / (steady[-1] - steady[0])
        log = [
            json.loads(line) for line in open(os.path.join(runner.output_dir, "log.txt")) if line.startswith('{"train')
        ]
        ckpt_path = os.path.join(runner.output_dir, "checkpoint_0.pth")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        report = {
            "device": torch.cuda.get_device_name(),
            "project": args.project,
            "runner": "runner_base",
            "processes": world,
            "params_total": n_params,
            "params_trainable": n_train,
            "build_s": round(build_s, 1),
            "steps": len(stamps),
            "batch_per_gpu": args.batch,
            "samples_per_s": round(samples_per_s, 2),
            "peak_gpu_mem_gib": round(peak_gib, 2),
            "train_log": log,
            "checkpoint_keys": sorted(ckpt["model"]),
            "checkpoint_mib": round(os.path.getsize(ckpt_path) / 2**20, 2),
        }
    if args.resume:
        first = os.path.join(runner.output_dir, "checkpoint_0.pth")
        del runner, model  # room for the fresh model
        torch.cuda.empty_cache()
        resumed = resume_run(cfg_path, options, first)
        if dist.get_rank() == 0:
            report["resume"] = resumed
    if dist.get_rank() == 0:
        print(json.dumps(report, indent=2))
    if created:
        dist.destroy_process_group()
    return 0


def resume_run(cfg_path: str, options, checkpoint: str) -> dict:
    """A fresh model and runner resumed from ``checkpoint`` for epoch 1 (module docstring)."""
    import lavis.tasks as tasks
    from lavis.common.registry import registry

    from lavis_vislinginstruct.train import build_runner, setup

    for name in ("output_dir", "result_dir"):  # LAVIS registers a runner's folders once per process
        registry.mapping["paths"].pop(name, None)
    extra = [f"run.resume_ckpt_path={checkpoint}", "run.max_epoch=2"]
    cfg, job_id, _ = setup(["--cfg-path", cfg_path, "--options", *options, *extra])
    task = tasks.setup_task(cfg)
    datasets = task.build_datasets(cfg)
    with torch.device("cuda"):
        model = task.build_model(cfg)
    runner = build_runner(cfg, job_id + "_resumed", task, model, datasets)
    runner.train()
    path = os.path.join(runner.output_dir, "checkpoint_1.pth")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    loader = runner.train_loader
    return {
        "start_epoch": runner.start_epoch,
        "loader_epoch": loader.epoch,
        "sampler_epoch": getattr(loader._dataloader.sampler, "epoch", None),
        "epoch_0_rerun": os.path.exists(os.path.join(runner.output_dir, "checkpoint_0.pth")),
        "checkpoint_keys": sorted(ckpt["model"]),
        "checkpoint_mib": round(os.path.getsize(path) / 2**20, 2),
    }


if __name__ == "__main__":
    sys.exit(main())
