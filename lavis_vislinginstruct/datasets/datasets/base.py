"""Shared pieces of the ``vli_*`` datasets: file readers, image loading, the base class and the collater.

Every dataset parses its official annotation file once into a list of plain records (``self.annotation``); a
record holds the image path and the already-normalized text fields. ``__getitem__`` loads the image and turns the
record into a sample of the plugin's ``samples`` contract (``docs/design.md``).

Bad files fail when the dataset is built, naming the file: an annotation file with no records (``[]``, ``{}``,
empty) ``holds no samples``; a record without a field its reader needs names the file, the record and the field
(:class:`Record`, which :func:`read_json`/:func:`read_jsonl` return, so every reader gets this without checks of
its own).
"""

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import torch
from lavis.datasets.datasets.base_dataset import BaseDataset
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)


class ImageLoadError(RuntimeError):
    """An image file exists but cannot be decoded."""


class MissingFieldError(KeyError, ValueError):
    """A record of an annotation file lacks a field its reader needs (the message names file, record and field).

    A ``KeyError`` for code that expects one from ``record[key]``, and a ``ValueError`` (bad input, which the
    command lines print as one line).
    """

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class _Source:
    """The file a record was read from and the file's parsed content, to locate the record in an error message."""

    __slots__ = ("path", "root", "line", "index")

    def __init__(self, path: str, line: Optional[int] = None, index: Optional[int] = None):
        self.path, self.root, self.line, self.index = path, None, line, index


class Record(dict):
    """A JSON object read by :func:`read_json`/:func:`read_jsonl`: a missing field raises :class:`MissingFieldError`.

    So every dataset reader, indexing records as plain dicts (``entry["imageId"]``), reports a missing field as
    ``<file>: record '<key>' (#3) has no field 'imageId' (it has: ...)`` instead of a bare ``KeyError``. The record
    is located only when the error is raised (a search of the file's content), so reading costs one reference per
    object. Pickled as a plain dict.
    """

    __slots__ = ("_source",)

    def __missing__(self, key: Any) -> Any:
        fields = ", ".join(map(str, list(self)[:12])) + (", ..." if len(self) > 12 else "")
        raise MissingFieldError(f"{self.where()} has no field {key!r} (it has: {fields or 'nothing'})")

    def __reduce__(self):
        return dict, (dict(self),)

    def where(self) -> str:
        """``<file>: record <location>``: ``#i`` in a list, ``'key' (#i)`` in a mapping, a JSON path when nested."""
        source = getattr(self, "_source", None)
        if source is None:
            return "record"
        steps = _locate(source.root, self) or []
        head = source.path if source.line is None else f"{source.path}: record #{source.index} (line {source.line})"
        if not steps:
            return head
        if source.line is None and len(steps) == 1:
            key, position, in_list = steps[0]
            return f"{head}: record #{key}" if in_list else f"{head}: record {key!r} (#{position})"
        path = "".join(f"[{key}]" if in_list else f".{key}" for key, _, in_list in steps).lstrip(".")
        return f"{head}: record {path}" if source.line is None else f"{head}, at {path}"


def _locate(root: Any, target: Record) -> Optional[List[tuple]]:
    """Steps ``(key or index, position, in a list)`` from ``root`` to the object ``target`` (by identity)."""
    stack: List[tuple] = [(root, [])]
    while stack:
        node, steps = stack.pop()
        if node is target:
            return steps
        if isinstance(node, dict):
            children = ((value, key, position, False) for position, (key, value) in enumerate(node.items()))
        elif isinstance(node, list):
            children = ((value, position, position, True) for position, value in enumerate(node))
        else:
            continue
        stack.extend(
            (value, steps + [(key, position, in_list)])
            for value, key, position, in_list in children
            if isinstance(value, (dict, list))
        )
    return None


def _records_from(source: _Source):
    """A ``json`` ``object_pairs_hook`` that makes every object a :class:`Record` of ``source``."""

    def hook(pairs: List[tuple]) -> Record:
        record = Record(pairs)
        record._source = source
        return record

    return hook


def read_json(path: str) -> Any:
    """Load a JSON file, naming the file when it is not valid JSON; its objects are :class:`Record` s."""
    source = _Source(path)
    with open(path, "r", encoding="utf-8") as handle:
        try:
            source.root = json.load(handle, object_pairs_hook=_records_from(source))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
    return source.root


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    """Load a JSON-lines file (blank lines skipped), naming the file and line of a bad record; objects are
    :class:`Record` s."""
    records = []
    with open(path, "r", encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            source = _Source(path, line_no, len(records))
            try:
                source.root = json.loads(line, object_pairs_hook=_records_from(source))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no} is not a JSON record: {err}") from err
            records.append(source.root)
    return records


def load_image(path: str) -> Image.Image:
    """Open an image as RGB.

    Raises:
        FileNotFoundError: If ``path`` does not exist (the message names it).
        ImageLoadError: If the file cannot be decoded (the message names it).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Image not found: {path}")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageLoadError(f"Cannot read image {path}: {err}") from err


def _holds_nothing(path: str) -> bool:
    """Whether the file ``path`` is empty or holds only ``[]``/``{}`` (small files only: one read of a few bytes)."""
    if not os.path.isfile(path) or os.path.getsize(path) > 64:
        return False
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        return "".join(handle.read().split()) in ("", "[]", "{}")


def collate_samples(samples: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack tensors (the images) and keep every other field as a per-sample list.

    LAVIS 1.0.2's ``default_collate`` fails on per-sample candidate lists of different lengths and turns
    string lists into tuples; here ``candidates`` stays ``list[list[str]]`` and ``text_input`` ``list[str]``.

    Args:
        samples: Samples of one batch, all with the same keys.

    Returns:
        The batch dict.
    """
    if not samples:
        return {}
    batch: Dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch


class VliDataset(BaseDataset):
    """Base of every ``vli_*`` dataset.

    Subclasses implement :meth:`load_annotations` (official files → records with at least ``image`` and
    ``instance_id``) and :meth:`build_sample` (record → sample fields other than ``image``).

    Args:
        vis_processor: Image processor (LAVIS processor from the builder config).
        text_processor: Text processor (``vli_instruction`` for evaluation, ``vli_text`` for training).
        vis_root: Directory that the records' image paths are relative to.
        ann_paths: Main annotation file(s) of the split.
        split: LAVIS split name (``train``, ``val`` or ``test``).
        files: Extra named files of the split (``ocr``, ``pid_splits``), from ``<name>_storage`` config keys.
    """

    #: Whether a missing image may be skipped (only for training data, see ``skip_missing_images``).
    skip_missing_images = False

    def __init__(
        self,
        vis_processor=None,
        text_processor=None,
        vis_root: str = "",
        ann_paths: Sequence[str] = (),
        split: str = "val",
        files: Optional[Dict[str, str]] = None,
    ):
        self.vis_processor = vis_processor
        self.text_processor = text_processor
        self.vis_root = vis_root
        self.split = split
        self.files = dict(files or {})
        self.num_skipped_missing_images = 0
        ann_paths = list(ann_paths)
        for path in ann_paths:
            if _holds_nothing(path):
                raise ValueError(f"{path} holds no samples ({type(self).__name__}, split {split})")
        records = self.load_annotations(ann_paths)
        if not records:
            raise ValueError(f"{' + '.join(ann_paths)} holds no samples of split {split} ({type(self).__name__})")
        self.annotation = self._check_images(records)
        if not self.annotation:
            raise FileNotFoundError(
                f"{type(self).__name__} ({split}): none of the {len(records)} samples has its image under {vis_root}"
            )
        self._check_unique_ids()
        logger.info("%s (%s): %d samples", type(self).__name__, split, len(self.annotation))

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Parse the official annotation files into records."""
        raise NotImplementedError

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Turn a record into the sample's text and ground-truth fields."""
        raise NotImplementedError

    def image_path(self, ann: Dict[str, Any]) -> str:
        """Absolute path of a record's image (records may also hold absolute paths)."""
        return os.path.join(self.vis_root, ann["image"])

    def require_file(self, role: str) -> str:
        """Path of the extra file ``role`` (config key ``<role>_storage``), or a clear error if none is set."""
        if role not in self.files:
            raise ValueError(
                f"{type(self).__name__} needs build_info.annotations.{self.split}.{role}_storage in its config"
            )
        return self.files[role]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        ann = self.annotation[index]
        sample = self.build_sample(ann)
        sample["image"] = self.vis_processor(load_image(self.image_path(ann)))
        return sample

    def __len__(self) -> int:
        return len(self.annotation)

    def collater(self, samples: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
        """See :func:`collate_samples`."""
        return collate_samples(samples)

    def _check_images(self, records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Fail early (before hours of evaluation) on missing images; training data may skip them instead."""
        present: Dict[str, bool] = {}
        for ann in records:
            path = self.image_path(ann)
            if path not in present:
                present[path] = os.path.isfile(path)
        kept = [ann for ann in records if present[self.image_path(ann)]]
        missing = [ann for ann in records if not present[self.image_path(ann)]]
        if missing and not self.skip_missing_images:
            raise FileNotFoundError(
                f"Image not found: {self.image_path(missing[0])} (sample {missing[0]['instance_id']} of "
                f"{type(self).__name__} {self.split}; {len(missing)} of {len(records)} samples lack their image). "
                "Check build_info.images.storage and cache_root."
            )
        self.num_skipped_missing_images = len(missing)
        if missing:
            logger.warning(
                "%s (%s): skipped %d of %d samples whose image is missing under %s (first: %s)",
                type(self).__name__,
                self.split,
                len(missing),
                len(records),
                self.vis_root,
                self.image_path(missing[0]),
            )
        return kept

    def _check_unique_ids(self) -> None:
        seen = set()
        for ann in self.annotation:
            if ann["instance_id"] in seen:
                raise ValueError(f"{type(self).__name__} ({self.split}): duplicate instance_id {ann['instance_id']!r}")
            seen.add(ann["instance_id"])
