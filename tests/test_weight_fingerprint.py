"""Evaluation runs are fingerprinted by their weights' bytes, not their paths (``result_store.with_weight_digests``):
a rerun of the same command resumes, a retrained checkpoint at the same path does not silently reuse predictions."""

import hashlib

import pytest

from lavis_vislinginstruct.tasks.evaluation import WEIGHT_KEYS
from lavis_vislinginstruct.tasks.result_store import PredictionStore, ResumeMismatchError, with_weight_digests


def test_weight_files_are_replaced_by_their_digest(tmp_path):
    ckpt = tmp_path / "a.pth"
    ckpt.write_bytes(b"weights-1")
    model = {"arch": "x", "checkpoint": str(ckpt), "finetuned": "", "vision": {"checkpoint": str(ckpt)},
             "llm": {"model": str(tmp_path)}}
    out = with_weight_digests(model, WEIGHT_KEYS)
    digest = {"sha256": hashlib.sha256(b"weights-1").hexdigest(), "bytes": 9}
    assert out["checkpoint"] == digest and out["vision"]["checkpoint"] == digest
    assert out["finetuned"] == "" and out["llm"]["model"] == str(tmp_path)  # empty and folders stay
    assert model["checkpoint"] == str(ckpt)  # the input is not changed


def test_resume_follows_the_bytes_of_the_weights(tmp_path):
    first, moved = tmp_path / "job1" / "checkpoint.pth", tmp_path / "job2" / "checkpoint.pth"
    for path in (first, moved):
        path.parent.mkdir()
        path.write_bytes(b"same weights")
    store = PredictionStore(str(tmp_path / "result"), "val")

    def settings(path):
        return {"model": with_weight_digests({"checkpoint": str(path)}, WEIGHT_KEYS)}

    store.write_run(settings(first))
    (tmp_path / "result" / "val_predictions_rank0.jsonl").write_text('{"instance_id": "1"}\n')
    assert store.check_run(settings(moved), resume=True) is True  # same bytes elsewhere (a new job folder)
    first.write_bytes(b"retrained weights")
    with pytest.raises(ResumeMismatchError, match="model.checkpoint"):
        store.check_run(settings(first), resume=True)
