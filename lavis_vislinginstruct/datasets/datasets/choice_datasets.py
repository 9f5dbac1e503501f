"""Zero-shot ranking benchmarks with a fixed candidate list: VSR, IconQA, ScienceQA (IMG) and Hateful Memes.

Samples: ``image``, ``text_input`` (Table 4 instruction), ``instance_id``, ``keep_spans`` (the question or
statement, each option, the context), ``candidates`` (list[str], ranked by the model) and the ground truth
``correct_choice_idx`` (index into ``candidates``; VSR and Hateful Memes also keep the raw ``label``).
"""

import os
from typing import Any, Dict, List, Optional

from lavis_vislinginstruct.datasets.datasets.base import VliDataset, read_json, read_jsonl
from lavis_vislinginstruct.processors.templates import normalize_text

VSR_CANDIDATES = ["true", "false"]
HATEFUL_MEMES_CANDIDATES = ["no", "yes"]


class VSREvalDataset(VliDataset):
    """VSR zero-shot split from the official ``data/splits/zeroshot/test.jsonl``.

    Ranking (not generation): candidates ``["true", "false"]`` answer Table 4's "is this statement true or
    false?"; ``label`` 1 (True) → ``correct_choice_idx`` 0, ``label`` 0 → 1. ``instance_id`` is the line index.
    Images: COCO 2017 file names under ``vis_root`` (train2017 and val2017 merged, as the VSR README says).
    """

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Read the JSON-lines records."""
        records = []
        for path in ann_paths:
            for entry in read_jsonl(path):
                if entry.get("label") not in (0, 1):
                    raise ValueError(f"{path}: record {len(records)} has label {entry.get('label')!r}, not 0/1")
                records.append(
                    {
                        "image": entry["image"],
                        "instance_id": str(len(records)),
                        "statement": normalize_text(entry["caption"]),
                        "label": int(entry["label"]),
                    }
                )
        return records

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Statement sample with true/false candidates."""
        return {
            "text_input": self.text_processor(statement=ann["statement"]),
            "instance_id": ann["instance_id"],
            "keep_spans": [ann["statement"]],
            "candidates": list(VSR_CANDIDATES),
            "label": ann["label"],
            "correct_choice_idx": 0 if ann["label"] == 1 else 1,
        }


class MultipleChoiceDataset(VliDataset):
    """Records with ``question``, ``choices``, ``answer`` (index) and an optional ``context``."""

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Question + options sample; candidates are the choices."""
        context = ann.get("context", "")
        return {
            "text_input": self.text_processor(question=ann["question"], choices=ann["choices"], context=context),
            "instance_id": ann["instance_id"],
            "keep_spans": ([context] if context else []) + [ann["question"]] + list(ann["choices"]),
            "candidates": list(ann["choices"]),
            "correct_choice_idx": ann["answer"],
        }

    @staticmethod
    def choice_record(pid: str, problem: Dict[str, Any], image: str, where: str) -> Dict[str, Any]:
        """Validate one problem (question, choices, integer answer) and normalize its text."""
        choices = problem.get("choices")
        answer = problem.get("answer")
        if not isinstance(choices, list) or not choices or not isinstance(answer, int):
            raise ValueError(f"{where}: problem {pid} needs 'choices' (list) and an integer 'answer'")
        if not 0 <= answer < len(choices):
            raise ValueError(f"{where}: problem {pid} answer {answer} is not an index of its {len(choices)} choices")
        return {
            "image": image,
            "instance_id": str(pid),
            "question": normalize_text(problem["question"]),
            "choices": [normalize_text(str(choice)) for choice in choices],
            "answer": answer,
        }


class IconQAEvalDataset(MultipleChoiceDataset):
    """IconQA multi-text-choice test split (6316 problems), in either official layout.

    * Per-problem directories (the release's ``iconqa_data/iconqa/test/choose_txt``, set as ``storage``):
      ``<pid>/data.json`` with ``question``, ``choices``, ``answer`` (int) and the image ``<pid>/image.png`` beside it.
    * Aggregated ``problems.json`` as ``storage`` with ``pid_splits.json`` as ``pid_splits_storage``: the pids of
      ``pid_splits[pid_split_key]`` (default ``choose_txt_<split>``), images at
      ``<vis_root>/<split>/<ques_type>/<pid>/image.png``.

    ``instance_id`` is the pid. Args: ``pid_split_key`` (see above) and :class:`VliDataset`'s.
    """

    def __init__(self, *, pid_split_key: Optional[str] = None, **kwargs):
        self.pid_split_key = pid_split_key
        super().__init__(**kwargs)

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Read problem directories or ``problems.json`` + ``pid_splits.json``."""
        records = []
        for path in ann_paths:
            if os.path.isdir(path):
                records.extend(self._from_directories(path))
            else:
                records.extend(self._from_problems(path))
        return records

    def _from_directories(self, root: str) -> List[Dict[str, Any]]:
        pids = sorted((name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name))), key=_pid_key)
        records = []
        for pid in pids:
            data_path = os.path.join(root, pid, "data.json")
            if not os.path.isfile(data_path):
                raise FileNotFoundError(f"IconQA problem {pid} has no data.json: {data_path}")
            image = os.path.join(root, pid, "image.png")
            records.append(self.choice_record(pid, read_json(data_path), image, data_path))
        return records

    def _from_problems(self, path: str) -> List[Dict[str, Any]]:
        problems = read_json(path)
        pid_splits = read_json(self.require_file("pid_splits"))
        key = self.pid_split_key or f"choose_txt_{self.split}"
        if key not in pid_splits:
            raise KeyError(f"{self.files['pid_splits']} has no split {key!r} (keys: {sorted(pid_splits)})")
        records = []
        for pid in pid_splits[key]:
            pid = str(pid)
            if pid not in problems:
                raise KeyError(f"pid {pid} of split {key!r} is not in {path}")
            problem = problems[pid]
            split = problem.get("split", self.split)
            image = os.path.join(split, problem.get("ques_type", "choose_txt"), pid, "image.png")
            records.append(self.choice_record(pid, problem, image, path))
        return records


class ScienceQAEvalDataset(MultipleChoiceDataset):
    """ScienceQA IMG test set (2017 problems) from the official ``problems.json`` + ``pid_splits.json``.

    Pids of ``pid_splits[split]`` whose problem has an image (``require_image``), images at
    ``<vis_root>/<split>/<pid>/<image>``; ``instance_id`` is the pid. The problem's ``hint`` is the context, put
    before the instruction as ``Context: {hint}. `` when non-empty (the official code's wrapper; LAVIS main's
    ``context: {hint}. `` with ``wrappers: lavis``; ``processors.templates``).

    Args:
        require_image: Keep only problems with an image (the paper's "set with image context").
        **kwargs: See :class:`VliDataset`; ``pid_splits_storage`` is required.
    """

    def __init__(self, *, require_image: bool = True, **kwargs):
        self.require_image = require_image
        super().__init__(**kwargs)

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Select the split's problems (with an image) and keep the hint as context."""
        pid_splits_path = self.require_file("pid_splits")
        pid_splits = read_json(pid_splits_path)
        if self.split not in pid_splits:
            raise KeyError(f"{pid_splits_path} has no split {self.split!r} (keys: {sorted(pid_splits)})")
        problems: Dict[str, Any] = {}
        for path in ann_paths:
            problems.update(read_json(path))
        records = []
        for pid in pid_splits[self.split]:
            pid = str(pid)
            if pid not in problems:
                raise KeyError(f"pid {pid} of split {self.split!r} is not in {', '.join(ann_paths)}")
            problem = problems[pid]
            if self.require_image and not problem.get("image"):
                continue
            image = os.path.join(problem.get("split", self.split), pid, problem.get("image") or "image.png")
            record = self.choice_record(pid, problem, image, ann_paths[0])
            record["context"] = normalize_text(problem.get("hint") or "")
            records.append(record)
        return records


class HatefulMemesEvalDataset(VliDataset):
    """Hateful Memes "val 1040" = ``dev_seen.jsonl`` (500) + ``dev_unseen.jsonl`` (540), as the paper counts.

    400 memes are in both files; by default both copies are kept (1040 samples, the paper's count) and
    ``instance_id`` is ``"<file stem>_<id>"`` (e.g. ``dev_seen_8291``) so they stay distinct.
    ``dedupe_shared_ids: true`` keeps the first occurrence only (640 in the full files). Candidates ``["no",
    "yes"]``, so ``correct_choice_idx`` == ``label`` (1 = hateful). Images ``img/NNNNN.png`` under ``vis_root``.

    Args:
        dedupe_shared_ids: Keep each meme id once.
        **kwargs: See :class:`VliDataset`.
    """

    def __init__(self, *, dedupe_shared_ids: bool = False, **kwargs):
        self.dedupe_shared_ids = dedupe_shared_ids
        super().__init__(**kwargs)

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Read the JSON-lines files in order."""
        records, seen = [], set()
        for path in ann_paths:
            stem = os.path.splitext(os.path.basename(path))[0]
            for entry in read_jsonl(path):
                if entry.get("label") not in (0, 1):
                    raise ValueError(f"{path}: meme {entry.get('id')!r} has label {entry.get('label')!r}, not 0/1")
                meme_id = int(entry["id"])
                if self.dedupe_shared_ids and meme_id in seen:
                    continue
                seen.add(meme_id)
                records.append(
                    {
                        "image": entry["img"],
                        "instance_id": f"{stem}_{meme_id}",
                        "text": normalize_text(entry["text"]),
                        "label": int(entry["label"]),
                    }
                )
        return records

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Meme sample with no/yes candidates."""
        return {
            "text_input": self.text_processor(text=ann["text"]),
            "instance_id": ann["instance_id"],
            "keep_spans": [ann["text"]],
            "candidates": list(HATEFUL_MEMES_CANDIDATES),
            "label": ann["label"],
            "correct_choice_idx": ann["label"],
        }


def _pid_key(pid: str):
    """Numeric pids in numeric order, others after them."""
    return (0, int(pid), "") if pid.isdigit() else (1, 0, pid)
