"""Prediction files of an evaluation run: written as they are made, resumable, merged across ranks.

Layout under the runner's ``result_dir`` (``<run.output_dir>/<job id>/result``), for split ``<split>``:

* ``<split>_predictions_rank<r>.jsonl``: one JSON record per line, appended and flushed after every batch by
  rank ``r``. A run that is interrupted leaves complete lines (a half-written last line is cut off when the rank
  reopens its file), so the next run with the same ``result_dir`` skips every ``instance_id`` found in any shard,
  whatever the world size of the earlier run was.
* ``<split>_run.json``: the fingerprint of the settings that determine the predictions (model, dataset and task
  settings; weight files by their SHA-256, :func:`with_weight_digests`). Resuming with different settings or weights
  is refused instead of mixing two models' predictions.
* After the loop, rank 0 merges every shard (:func:`merge_records`): duplicates (a sample predicted twice, as
  distributed samplers pad) are dropped by ``instance_id``, and a sample without any prediction is an error.

Reading and merging are pure functions of the files; the task decides when to call them (only rank 0 merges).
"""

import glob
import hashlib
import json
import logging
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set

logger = logging.getLogger(__name__)

_SHARD = re.compile(r"_predictions_rank(\d+)\.jsonl$")


def file_digest(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks (a 1 GB checkpoint takes a few seconds)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def with_weight_digests(model: Dict[str, Any], keys: Sequence[str]) -> Dict[str, Any]:
    """A copy of a model config where each weight file named by a dotted key of ``keys`` is replaced by
    ``{"sha256", "bytes"}``: predictions are reused when the weights are the same bytes (wherever they lie), never
    when a file at the same path was retrained. Folders (an HF LLM) and absent paths stay as they are."""
    out = json.loads(json.dumps(model, default=str))
    for key in keys:
        parent, _, leaf = key.rpartition(".")
        node = out
        for part in parent.split(".") if parent else []:
            node = node.get(part) if isinstance(node, dict) else None
        value = node.get(leaf) if isinstance(node, dict) else None
        if isinstance(value, str) and value and os.path.isfile(value):
            node[leaf] = {"sha256": file_digest(value), "bytes": os.path.getsize(value)}
    return out


def fingerprint(settings: Dict[str, Any]) -> str:
    """Stable SHA-256 (hex, 16 chars) of a JSON-serializable settings dict."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ResumeMismatchError(RuntimeError):
    """Existing predictions were made with other settings than this run's."""


class PredictionStore:
    """The prediction files of one split in one result directory (module docstring).

    Args:
        result_dir: Directory of the result files (created if missing).
        split: Split name, the file prefix.
    """

    def __init__(self, result_dir: str, split: str):
        self.result_dir = str(result_dir)
        self.split = split
        os.makedirs(self.result_dir, exist_ok=True)

    # ------------------------------------------------------------------------------------------------ paths

    def path(self, name: str) -> str:
        """``<result_dir>/<split>_<name>``."""
        return os.path.join(self.result_dir, f"{self.split}_{name}")

    def shard_path(self, rank: int) -> str:
        """The JSONL file rank ``rank`` appends to."""
        return self.path(f"predictions_rank{rank}.jsonl")

    def shard_paths(self) -> List[str]:
        """Every shard present (from this or earlier runs, any world size), in rank order."""
        paths = glob.glob(glob.escape(self.path("predictions_rank")) + "*.jsonl")
        found = [(int(m.group(1)), p) for p in paths if (m := _SHARD.search(p))]
        return [p for _, p in sorted(found)]

    # --------------------------------------------------------------------------------------- run settings

    def check_run(self, settings: Dict[str, Any], resume: bool) -> bool:
        """Compare ``settings`` with the recorded ones; returns whether earlier predictions may be reused.

        Raises:
            ResumeMismatchError: If predictions exist, ``resume`` is on and they were made with other settings.
        """
        run_file = self.path("run.json")
        has_shards = bool(self.shard_paths())
        if not resume or not has_shards:
            return False
        if not os.path.isfile(run_file):
            raise ResumeMismatchError(
                f"{self.result_dir} holds {self.split} predictions without {os.path.basename(run_file)}; "
                "delete them or pass --options run.resume=False"
            )
        with open(run_file, "r", encoding="utf-8") as handle:
            recorded = json.load(handle)
        if recorded.get("fingerprint") != fingerprint(settings):
            changed = _changed_keys(recorded.get("settings", {}), settings)
            raise ResumeMismatchError(
                f"{self.result_dir} holds {self.split} predictions made with other settings (changed: "
                f"{', '.join(changed[:8]) or 'unknown'}). Resume with the same settings, give this run its own "
                "run.job_id, or start over with --options run.resume=False"
            )
        return True

    def write_run(self, settings: Dict[str, Any]) -> None:
        """Record the settings of this run (rank 0 only)."""
        with open(self.path("run.json"), "w", encoding="utf-8") as handle:
            json.dump({"fingerprint": fingerprint(settings), "settings": settings}, handle, indent=1, default=str)

    def clear(self) -> None:
        """Delete the shards and merged files of this split (rank 0 only, before any rank writes)."""
        names = ["run.json", "predictions.json", "metrics.json", "traces.json"]
        for path in self.shard_paths() + [self.path(n) for n in names]:
            if os.path.exists(path):
                os.remove(path)

    # ------------------------------------------------------------------------------------- reading/writing

    def repair(self, rank: int) -> None:
        """Cut a half-written last line off this rank's shard (left by an interrupted run)."""
        path = self.shard_path(rank)
        if not os.path.isfile(path):
            return
        with open(path, "rb+") as handle:
            data = handle.read()
            if not data or data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            handle.truncate(keep)
        logger.warning("%s: removed an incomplete last record (%d bytes)", path, len(data) - keep)

    def read(self) -> List[Dict[str, Any]]:
        """All records of all shards, shard by shard in file order; unreadable lines are skipped with a warning."""
        records = []
        for path in self.shard_paths():
            with open(path, "r", encoding="utf-8") as handle:
                for line_no, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        logger.warning("%s:%d is not a complete record; it is ignored", path, line_no)
        return records

    def done_ids(self) -> Set[str]:
        """The ``instance_id`` of every record already written."""
        return {str(r["instance_id"]) for r in self.read() if "instance_id" in r}

    def writer(self, rank: int) -> "ShardWriter":
        """Append-mode writer of this rank's shard."""
        return ShardWriter(self.shard_path(rank))

    def write_json(self, name: str, payload: Any, indent: Optional[int] = 1) -> str:
        """Write ``<split>_<name>`` atomically (temporary file + rename); returns its path."""
        path = self.path(name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=indent, ensure_ascii=False)
        os.replace(tmp, path)
        return path


class ShardWriter:
    """Appends JSON records to one shard, flushing after each batch so a crash loses at most the current batch."""

    def __init__(self, path: str):
        self.path = path
        self._handle = open(path, "a", encoding="utf-8")
        self.count = 0

    def write(self, records: Iterable[Dict[str, Any]]) -> None:
        """Append records (one line each) and flush."""
        for record in records:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.count += 1
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge_records(records: Sequence[Dict[str, Any]], expected_ids: Sequence[str]) -> List[Dict[str, Any]]:
    """One record per expected ``instance_id``, in dataset order; duplicates keep their first record.

    Args:
        records: Records of all shards (any order, duplicates allowed).
        expected_ids: The dataset's ids, in its order.

    Returns:
        The merged records.

    Raises:
        RuntimeError: If an expected id has no record (a lost prediction).
    """
    by_id: Dict[str, Dict[str, Any]] = {}
    for record in records:
        by_id.setdefault(str(record["instance_id"]), record)
    missing = [i for i in expected_ids if i not in by_id]
    if missing:
        raise RuntimeError(
            f"{len(missing)} of {len(expected_ids)} samples have no prediction (e.g. {missing[:5]}); "
            "rerun the same command to predict them (finished samples are kept)"
        )
    expected = set(expected_ids)
    extra = [i for i in by_id if i not in expected]
    if extra:
        logger.warning(
            "%d predictions are for samples not evaluated in this run (e.g. %s); ignored", len(extra), extra[:5]
        )
    duplicates = len(records) - len(by_id)
    if duplicates:
        logger.info("merged %d records: %d duplicates dropped", len(records), duplicates)
    return [by_id[i] for i in expected_ids]


def _changed_keys(old: Any, new: Any, prefix: str = "") -> List[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: List[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    old_json = json.dumps(old, sort_keys=True, default=str)
    new_json = json.dumps(new, sort_keys=True, default=str)
    return [] if old_json == new_json else [prefix.rstrip(".")]
