"""The ``python -m lavis_vislinginstruct.optimize`` command on the tiny model."""
import json

import pytest
from PIL import Image

from lavis_vislinginstruct import optimize


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (48, 48), (220, 30, 30)).save(path)
    return str(path)


@pytest.mark.parametrize("model", ["vislinginstruct_vicuna", "vislinginstruct_t5"])
def test_prints_a_json_trace(image_path, capsys, model):
    trace = optimize.main(["--model", model, "--image", image_path, "--instruction", "What colour is the square?",
                           "--keep", "What colour is the square?", "--json", "--device", "cpu"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == trace
    assert printed["initial"] == "What colour is the square?" and printed["mode"] == "full"
    assert isinstance(printed["ias_initial"], float) and isinstance(printed["ias_rewritten"], float)
    assert "What colour is the square?" in printed["used"]  # kept by the fallback if the tiny model dropped it


def test_text_output_and_answer(image_path, capsys):
    optimize.main(["--image", image_path, "--instruction", "Describe it.", "--mode", "rewrite", "--answer",
                   "--device", "cpu"])
    out = capsys.readouterr().out
    assert "initial: Describe it." in out and "answer:" in out and "used:" in out


@pytest.mark.parametrize("args, message", [
    (["--image", "/nonexistent/x.png", "--instruction", "hi"], "Image not found: /nonexistent/x.png"),
    (["--instruction", "  "], "--instruction is empty"),
])
def test_bad_input(image_path, args, message):
    if "--image" not in args:
        args = ["--image", image_path] + args
    with pytest.raises(SystemExit, match=message):
        optimize.main(args + ["--device", "cpu"])


def test_corrupt_image(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(SystemExit, match="bad.png"):
        optimize.main(["--image", str(bad), "--instruction", "hi", "--device", "cpu"])


def test_unknown_option_key(image_path):
    with pytest.raises(SystemExit, match="model.cmaa.on"):
        optimize.main(["--image", image_path, "--instruction", "hi", "--device", "cpu", "--options", "cmaa.on=1"])


def test_answer_uses_the_optimized_instruction_and_runs_aio_once(image_path, tmp_path, capsys, monkeypatch):
    """With a spec whose model config says ``aio.mode: full`` (the demo's), ``--answer`` must answer with ``used``
    and AIO off: a second optimization of the optimized instruction was the bug."""
    import torch

    from lavis_vislinginstruct.aio.optimizer import InstructionOptimizer
    from lavis_vislinginstruct.datasets.datasets.base import load_image
    from lavis_vislinginstruct.models.loading import load_with_options
    from lavis_vislinginstruct.models.spec import write_model_spec

    spec = write_model_spec(str(tmp_path / "model.yaml"), {"arch": "vislinginstruct_vicuna", "model_type": "tiny",
                                                           "aio": {"mode": "full", "guard": "none"}})
    calls, loaded = [], []
    real = InstructionOptimizer.optimize
    monkeypatch.setattr(InstructionOptimizer, "optimize",
                        lambda self, *a, **k: calls.append(a[1]) or real(self, *a, **k))
    monkeypatch.setattr(optimize, "load_with_options", lambda *a, **k: loaded.append(load_with_options(*a, **k))
                        or loaded[0])
    out = optimize.main(["--model-spec", spec, "--image", image_path, "--instruction", "What colour is it?",
                         "--answer", "--device", "cpu", "--json"])
    assert calls == [["What colour is it?"]]  # AIO ran once, on the user's instruction
    model, vis, _ = loaded[0]
    image = vis["eval"](load_image(image_path)).unsqueeze(0)
    with torch.no_grad():
        expected = model.generate({"image": image, "text_input": [out["used"]]}, aio="off", max_length=30)[0]
    assert out["answer"] == expected
