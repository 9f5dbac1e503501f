"""The terminal chat, driven through its standard input with the tiny model (commands included)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lavis_vislinginstruct.chat import __main__ as chat
from lavis_vislinginstruct.chat.engine import Conversation
from lavis_vislinginstruct.chat.launch import decoding_from_args, load_model
from lavis_vislinginstruct.datasets.datasets.base import load_image

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--model-type", "tiny", "--max-new-tokens", "6", "--device", "cpu"]


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def files(tmp_path):
    red, blue, bad = tmp_path / "red.png", tmp_path / "blue.png", tmp_path / "bad.png"
    Image.new("RGB", (48, 48), (220, 30, 30)).save(red)
    Image.new("RGB", (48, 48), (30, 30, 220)).save(blue)
    bad.write_bytes(b"\x89PNG not really")
    return red, blue, bad


def test_chat_through_stdin(files, tmp_path):
    red, blue, bad = files
    saved, empty, new = tmp_path / "conv.json", tmp_path / "empty.json", tmp_path / "new.json"
    lines = ["What is in the picture?", "", "/aio full", "What colour is it?", "/trace", "/image /nonexistent.png",
             f"/image {bad}", f"/save {saved}", "/reset", f"/save {empty}", "/aio sideways", "/bogus",
             f"/image {blue}", "Again?", f"/save {new}", "/quit", "never read"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    run = subprocess.run([sys.executable, "-m", "lavis_vislinginstruct.chat", "--image", str(red), *FLAGS],
                         input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    out = run.stdout
    assert run.returncode == 0, run.stderr[-3000:]
    assert "WARNING: Random weights" in out
    assert "error: empty message" in out
    assert "AIO: full" in out
    assert "error: Image not found: /nonexistent.png (the image stays" in out
    assert f"error: Cannot read image {bad}" in out
    assert "error: /aio takes one of off, rewrite, full, got 'sideways'" in out
    assert "error: unknown command '/bogus'" in out and "/save FILE" in out

    conv = json.loads(saved.read_text())
    first, second = conv["turns"]
    assert conv["image"] == str(red)
    assert (first["question"], first["aio"], first["trace"]["mode"]) == ("What is in the picture?", "off", "off")
    assert second["aio"] == "full" and second["trace"]["initial"] == "What colour is it?"
    assert isinstance(second["trace"]["ias_initial"], float) and second["trace"]["comparison_prompt"]
    assert second["prompt"].startswith("Q: What is in the picture?\nA: ")
    assert second["prompt"].endswith("\n" + second["trace"]["used"])
    # answers streamed to the terminal as saved
    for turn in (first, second):
        assert "ASSISTANT: " in out and words(turn["answer"]) in words(out)
    assert "initial: What colour is it?  (IAS " in out and "optimized: " in out and "comparison prompt: " in out
    assert json.loads(empty.read_text())["turns"] == []  # /reset
    after = json.loads(new.read_text())  # /image starts a new conversation
    assert after["image"] == str(blue) and [t["question"] for t in after["turns"]] == ["Again?"]
    assert after["turns"][0]["history_turns"] == 0

    # the same questions through the engine of a separately loaded model give the same answers
    loaded = load_model(chat.parse_args(["--image", str(red), *FLAGS]))
    decoding = decoding_from_args(chat.parse_args(["--image", str(red), *FLAGS]))
    mine = Conversation(load_image(str(red)), str(red))
    assert loaded.engine.ask(mine, "What is in the picture?", decoding=decoding).answer == first["answer"]
    assert loaded.engine.ask(mine, "What colour is it?", aio="full", decoding=decoding).answer == second["answer"]


@pytest.mark.parametrize("extra, message", [
    (["--image", "/nonexistent/x.png"], "Image not found: /nonexistent/x.png"),
    (["--top-p", "0"], "decoding top_p must be in"),
    (["--options", "cmaa.on=1"], "model.cmaa.on"),
    (["--model-spec", "/nonexistent/model.yaml"], "model spec not found"),
])
def test_bad_flags(files, extra, message):
    red, _, _ = files
    argv = ["--image", str(red), *FLAGS]
    if extra[0] == "--image":
        argv = [*extra, *FLAGS]
    else:
        argv += extra
    with pytest.raises(SystemExit, match=message):
        chat.main(argv)


def test_corrupt_image_at_start(files):
    _, _, bad = files
    with pytest.raises(SystemExit, match="Cannot read image"):
        chat.main(["--image", str(bad), *FLAGS])
