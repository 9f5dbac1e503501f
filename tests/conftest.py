"""Shared fixtures: offline and socket-guarded tests, a temporary LAVIS cache root, tiny models and images."""
import os
import socket
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # lmms-eval tasks read local files through `datasets`
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

import lavis_vislinginstruct  # noqa: E402,F401  (registers everything)

_LOOPBACK = ("127.", "::1", "localhost")
_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    """Tests may talk to this machine (gloo process groups) and nothing else."""
    host = address[0] if isinstance(address, tuple) else address
    if self.family == socket.AF_UNIX or str(host).startswith(_LOOPBACK):
        return _real_connect(self, address)
    raise RuntimeError(f"test tried to open a network connection to {address!r}")


_real_create_connection = socket.create_connection


def _guarded_create_connection(address, *args, **kwargs):
    """``socket.create_connection`` to this machine only (it returns the connected socket, as the real one)."""
    if not str(address[0]).startswith(_LOOPBACK):
        raise RuntimeError(f"test tried to open a network connection to {address!r}")
    return _real_create_connection(address, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket, "create_connection", _guarded_create_connection)


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    from lavis.common.registry import registry

    from lavis_vislinginstruct.paths import set_cache_root

    old = registry.mapping["paths"].get("cache_root")
    path = set_cache_root(str(tmp_path / "cache"))
    yield path
    registry.mapping["paths"]["cache_root"] = old


def build_tiny(arch: str, **overrides):
    """A tiny registered model from its packaged config, with dotted-key overrides (``cmaa.enabled=False``)."""
    from lavis.common.registry import registry
    from omegaconf import OmegaConf

    cls = registry.get_model_class(arch)
    cfg = OmegaConf.load(cls.default_config_path("tiny")).model
    for key, value in overrides.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    torch.manual_seed(0)
    return cls.from_config(cfg)


def write_base_and_finetuned(arch: str, folder, seed: int = 5):
    """An InstructBLIP-like checkpoint of a tiny model and a fine-tuned projection over it (other weights), saved as
    ``base.pth`` (every tensor) and ``finetuned.pth`` (trainable keys, as train.py writes); returns both paths."""
    from lavis_vislinginstruct.models.checkpoint import trainable_state_dict

    torch.manual_seed(seed)
    model = build_tiny(arch)
    base, finetuned = Path(folder) / "base.pth", Path(folder) / "finetuned.pth"
    torch.save({"model": model.full_state_dict()}, base)
    with torch.no_grad():
        model.proj.weight.add_(torch.randn_like(model.proj.weight) * 0.5)
    torch.save(trainable_state_dict(model), finetuned)
    return str(base), str(finetuned)


@pytest.fixture
def weights(arch, tmp_path):
    """(base.pth, finetuned.pth) of :func:`write_base_and_finetuned` for ``arch``."""
    return write_base_and_finetuned(arch, tmp_path)


@pytest.fixture(params=["vislinginstruct_vicuna", "vislinginstruct_t5"])
def arch(request):
    return request.param


@pytest.fixture
def tiny_model(arch):
    return build_tiny(arch).eval()


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, 32, 32, generator=g)
