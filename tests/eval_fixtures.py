"""Helpers of the evaluation tests: tiny-model eval configs derived from the shipped ones, fixture data on disk.

``tiny_config`` loads ``projects/vislinginstruct/eval/<benchmark>_<llm>.yaml`` (so the shipped configs are what is
tested), switches it to ``model_type: tiny`` on CPU (``runner_vli``, 32-pixel images, 1 beam, short outputs) and
writes it into a temporary folder; ``lay_out`` (from ``test_builders``) puts the annotation fixtures and tiny images
where the dataset defaults expect them under ``cache_root``.
"""
import json
import sys
from pathlib import Path
from typing import Dict, List

from omegaconf import OmegaConf
from test_builders import lay_out  # noqa: F401  (re-exported for the evaluation tests)

REPO = Path(__file__).resolve().parents[1]
EVAL_CONFIGS = REPO / "projects" / "vislinginstruct" / "eval"

#: Benchmark -> shipped config used for its smoke test; both LLM families are covered.
SMOKE_LLM = {
    "flickr30k": "vicuna7b",
    "nocaps": "flant5xl",
    "vsr": "flant5xl",
    "gqa": "vicuna7b",
    "iconqa": "vicuna7b",
    "vizwiz": "flant5xl",
    "textvqa": "vicuna7b",
    "visdial": "flant5xl",
    "scienceqa": "vicuna7b",
    "hateful_memes": "flant5xl",
}


def tiny_config(benchmark: str, tmp: Path, llm: str = "", aio: str = "off", **run) -> Path:
    """A tiny-model CPU copy of a shipped eval config, written under ``tmp``; returns its path.

    Args:
        benchmark: Benchmark name (``scienceqa``).
        tmp: Folder for the config, the output (``tmp/out``) and the data (``tmp/cache``).
        llm: Shipped LLM variant to start from (default :data:`SMOKE_LLM`).
        aio: ``model.aio.mode`` (the shipped config's ``run.row`` is removed: the row is the one the model
            switches describe, CMAA on by default).
        **run: Extra ``run`` keys.
    """
    llm = llm or SMOKE_LLM[benchmark]
    cfg = OmegaConf.load(EVAL_CONFIGS / f"{benchmark}_{llm}.yaml")
    cfg.model.model_type = "tiny"
    del cfg.run["row"]  # the row comes from the model switches below (tests also pass them as options)
    cfg.model.aio.mode = aio
    cfg.model.aio.max_new_tokens = 6
    (builder,) = list(cfg.datasets)
    OmegaConf.update(cfg, f"datasets.{builder}.vis_processor.eval.image_size", 32, force_add=True)
    overrides = {
        "device": "cpu",
        "runner": "runner_vli",
        "num_workers": 0,
        "batch_size_eval": 2,
        "output_dir": str(tmp / "out"),
        "cache_root": str(tmp / "cache"),
        "chunk_size": 16,
    }
    if cfg.run.task == "vli_generation":
        overrides.update(num_beams=1, max_len=4, min_len=1)
    overrides.update(run)
    for key, value in overrides.items():
        cfg.run[key] = value
    path = tmp / f"{benchmark}_tiny.yaml"
    OmegaConf.save(cfg, path)
    return path


def read_jsonl(path: Path) -> List[Dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def result_files(result_dir: str, split: str) -> Dict[str, Path]:
    """The merged result files of ``split`` in ``result_dir``."""
    root = Path(result_dir)
    return {name: root / f"{split}_{name}.json" for name in ("metrics", "predictions", "traces", "run")}


def load(path: Path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _distributed_main(argv: List[str]) -> None:
    """``torchrun ... tests/eval_fixtures.py [--late-rank0 S] CFG [CFG ...] [--options k=v ...]``: each config in one
    gloo group. ``--late-rank0 S``: rank 0 reads the prediction shards S seconds late (a rank slowed by load), so
    the other rank has begun writing when it reads."""
    import time

    import torch.distributed as dist

    from lavis_vislinginstruct import evaluate
    from lavis_vislinginstruct.tasks.result_store import PredictionStore

    late = 0.0
    if argv[:1] == ["--late-rank0"]:
        late, argv = float(argv[1]), argv[2:]
    cut = argv.index("--options") if "--options" in argv else len(argv)
    configs, options = argv[:cut], argv[cut + 1 :]
    dist.init_process_group("gloo")
    if late and dist.get_rank() == 0:
        read = PredictionStore.read

        def late_read(store):
            time.sleep(late)
            return read(store)

        PredictionStore.read = late_read
    try:
        for cfg in configs:
            evaluate.main(["--cfg-path", cfg] + (["--options", *options] if options else []))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _distributed_main(sys.argv[1:])
