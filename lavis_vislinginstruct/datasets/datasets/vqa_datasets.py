"""Zero-shot open-ended VQA benchmarks: GQA (test-dev balanced), VizWiz (val) and TextVQA (val).

Samples: ``image``, ``text_input`` (Table 4 instruction), ``instance_id``, ``keep_spans`` (the question; for TextVQA
also the OCR token string of the prompt: the first 30 tokens) and the ground truth: ``answer`` (GQA, one string) or
``answers`` (VizWiz/TextVQA, the 10 raw human answers; normalization belongs to the metric).
"""

import logging
import os
from typing import Any, Dict, List

from lavis_vislinginstruct.datasets.datasets.base import VliDataset, read_json
from lavis_vislinginstruct.processors.templates import format_ocr_tokens, normalize_text

logger = logging.getLogger(__name__)


class GQAEvalDataset(VliDataset):
    """GQA from the official ``testdev_balanced_questions.json`` (dict keyed by question id).

    A LAVIS-converted list (``[{"image", "question", "question_id", "answer"}]``) is read as well. Images at
    ``<imageId>.jpg`` under ``vis_root``; ``instance_id`` is the question id.
    """

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Read official (dict) or LAVIS (list) question files."""
        records = []
        for path in ann_paths:
            data = read_json(path)
            if isinstance(data, dict):
                items = ((qid, f"{q['imageId']}.jpg", q["question"], q.get("answer", "")) for qid, q in data.items())
            else:
                items = ((q["question_id"], q["image"], q["question"], q.get("answer", "")) for q in data)
            for qid, image, question, answer in items:
                records.append(
                    {"image": image, "instance_id": str(qid), "question": normalize_text(question), "answer": answer}
                )
        return records

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Question sample with the GQA answer."""
        return {
            "text_input": self.text_processor(question=ann["question"]),
            "instance_id": ann["instance_id"],
            "keep_spans": [ann["question"]],
            "answer": ann["answer"],
        }


class VizWizEvalDataset(VliDataset):
    """VizWiz-VQA from the official ``Annotations/val.json`` (the paper's "test-dev 4319" = val size).

    Record ``{"image": "VizWiz_val_00000000.jpg", "question", "answers": [{"answer", "answer_confidence"}] x10,
    "answer_type", "answerable"}``; ``instance_id`` is the image file stem (one question per image). ``test.json``
    has no answers, so ``answers`` is then empty.
    """

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Read the official list."""
        records = []
        for path in ann_paths:
            for entry in read_json(path):
                records.append(
                    {
                        "image": entry["image"],
                        "instance_id": os.path.splitext(entry["image"])[0],
                        "question": normalize_text(entry["question"]),
                        "answers": [answer["answer"] for answer in entry.get("answers", [])],
                    }
                )
        return records

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Question sample with the 10 raw answers."""
        return {
            "text_input": self.text_processor(question=ann["question"]),
            "instance_id": ann["instance_id"],
            "keep_spans": [ann["question"]],
            "answers": list(ann["answers"]),
        }


def read_ocr_tokens(path: str) -> Dict[str, List[str]]:
    """Map image id → OCR tokens.

    Reads the official Rosetta file (``TextVQA_Rosetta_OCR_v0.2_<split>.json``: ``{"data": [{"image_id",
    "ocr_tokens", "ocr_info": [{"word", "bounding_box"}]}]}``; ``ocr_info`` words are used when ``ocr_tokens`` is
    absent) or a plain JSON mapping ``{image_id: [token, ...] | "token string"}``.
    """
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        ocr = {}
        for entry in data["data"]:
            tokens = entry.get("ocr_tokens")
            if tokens is None:
                tokens = [info["word"] for info in entry.get("ocr_info", [])]
            ocr[str(entry["image_id"])] = list(tokens)
        return ocr
    if isinstance(data, dict):
        return {str(key): [value] if isinstance(value, str) else list(value) for key, value in data.items()}
    raise ValueError(f"{path}: expected the Rosetta OCR file ({{'data': [...]}}) or a mapping image_id -> tokens")


class TextVQAEvalDataset(VliDataset):
    """TextVQA from the official ``TextVQA_0.5.1_val.json`` plus Rosetta OCR tokens (config key ``ocr_storage``).

    Images at ``<image_id>.jpg`` under ``vis_root`` (val images live in ``train_images/``); ``instance_id`` is the
    question id. An image absent from the OCR file gets no tokens (counted in a warning). Records keep every token;
    the instruction lists the first 30 (``templates.format_ocr_tokens``, as LAVIS main).
    """

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Read questions and attach the OCR tokens of their image."""
        ocr_path = self.require_file("ocr")
        ocr = read_ocr_tokens(ocr_path)
        records, without_ocr = [], 0
        for path in ann_paths:
            data = read_json(path)
            if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                raise ValueError(f"{path}: expected the official TextVQA layout {{'data': [...]}}")
            for entry in data["data"]:
                image_id = str(entry["image_id"])
                without_ocr += image_id not in ocr
                tokens = [normalize_text(token) for token in ocr.get(image_id, [])]
                records.append(
                    {
                        "image": f"{image_id}.jpg",
                        "instance_id": str(entry["question_id"]),
                        "question": normalize_text(entry["question"]),
                        "ocr_tokens": [token for token in tokens if token],
                        "answers": list(entry.get("answers", [])),
                    }
                )
        if without_ocr:
            logger.warning("TextVQA: %d questions have no entry in %s; they get no OCR tokens", without_ocr, ocr_path)
        return records

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Question + OCR sample with the 10 raw answers."""
        ocr_string = format_ocr_tokens(ann["ocr_tokens"])
        return {
            "text_input": self.text_processor(question=ann["question"], ocr_tokens=ann["ocr_tokens"]),
            "instance_id": ann["instance_id"],
            "keep_spans": [ann["question"]] + ([ocr_string] if ocr_string else []),
            "answers": list(ann["answers"]),
        }
