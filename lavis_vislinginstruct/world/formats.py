"""Official annotation records built from the world's scenes and questions (pure functions, no I/O).

One function per record kind, each returning the JSON-ready dict of the official format (see
``/work/shared/notes/datasets.md`` and the benchmark samples): Karpathy ``dataset_flickr30k.json`` images, GQA
questions1.2 entries, VSR jsonl lines, ScienceQA ``problems.json`` entries and ``pid_splits.json``, TextVQA 0.5.1
questions, and Rosetta OCR entries (``{"image_id", "ocr_tokens", "ocr_info": [{"word", "bounding_box"}]}`` with a
box normalized to the image, as the official ``TextVQA_Rosetta_OCR_v0.2_*.json`` files and their readers use).
Fields the world has no real value for get plausible constants; invented URLs use the reserved ``.invalid`` domain.
"""

import json
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .scenes import Scene
from .tasks import MultipleChoice, Question, Statement

INVALID_URL = "https://example.invalid/vli-world"  # reserved TLD: the links look real but never resolve
SCIENCEQA_META = {  # qtype -> (category, skill)
    "color": ("Colors", "Identify colors"),
    "shape": ("Shapes", "Identify shapes"),
    "size": ("Sizes", "Compare sizes"),
    "count": ("Counting", "Count shapes"),
    "text": ("Reading", "Read words in pictures"),
}
SCIENCEQA_LECTURE = "Flat shapes can be circles, squares or triangles. Each shape has a color and a size."
GQA_META = {  # qtype -> (structural, semantic, detailed, global group, program operation)
    "color": ("query", "attr", "colorObj", "color", "query"),
    "shape": ("query", "cat", "categoryObj", "shape", "query"),
    "size": ("query", "attr", "sizeObj", "size", "query"),
    "count": ("query", "global", "countAll", "number", "count"),
    "exist": ("verify", "obj", "existC", None, "exist"),
}


def tokens(text: str) -> List[str]:
    """Lower-cased word tokens without punctuation (Karpathy ``tokens``, TextVQA ``question_tokens``)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def karpathy_image(filename: str, imgid: int, references: Sequence[str], split: str = "test") -> Dict[str, Any]:
    """One ``images`` entry of Karpathy's ``dataset_flickr30k.json`` (sentence ids ``5 * imgid + k``)."""
    sentences = [
        {"raw": raw, "tokens": tokens(raw), "imgid": imgid, "sentid": len(references) * imgid + k}
        for k, raw in enumerate(references)
    ]
    return {
        "filename": filename,
        "imgid": imgid,
        "sentids": [s["sentid"] for s in sentences],
        "sentences": sentences,
        "split": split,
    }


def gqa_question(question: Question, image_id: str, qid: str, text: Optional[str] = None) -> Dict[str, Any]:
    """One entry of GQA's ``testdev_balanced_questions.json`` (a one-step semantic program); ``text`` words the
    question (default: its phrasing)."""
    structural, semantic, detailed, group, operation = GQA_META[question.qtype]
    slots = dict(question.slots)
    target = slots.get("ref", slots.get("thing", "shapes")).replace("the ", "", 1)
    return {
        "question": question.text if text is None else text,
        "imageId": image_id,
        "answer": question.answer,
        "fullAnswer": question.full_answer,
        "isBalanced": True,
        "groups": {"global": group, "local": f"10q-{question.qtype}"},
        "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
        "semantic": [
            {"operation": "select", "dependencies": [], "argument": target},
            {"operation": operation, "dependencies": [0], "argument": question.qtype},
        ],
        "semanticStr": f"select: {target}->{operation}: {question.qtype} [0]",
        "entailed": [],
        "equivalent": [qid],
        "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
    }


def vsr_line(
    image: str, statement: Statement, annotator_id: int, voters: Tuple[int, int, int], caption: Optional[str] = None
) -> Dict[str, Any]:
    """One line of a VSR split file; two validators agree with the label, one disagrees. ``caption`` words the
    statement (default: its phrasing).

    The vote fields are strings such as ``"[18, 2]"``, as in the real files (not JSON lists as VSR's README shows).
    """
    agree, disagree = list(voters[:2]), list(voters[2:])
    true_votes, false_votes = (agree, disagree) if statement.label else (disagree, agree)
    return {
        "image": image,
        "image_link": f"{INVALID_URL}/vsr/{image}",
        "caption": statement.text if caption is None else caption,
        "label": statement.label,
        "relation": statement.relation,
        "subj": statement.subj,
        "obj": statement.obj,
        "annotator_id": annotator_id,
        "vote_true_validator_id": json.dumps(true_votes),
        "vote_false_validator_id": json.dumps(false_votes),
    }


def scienceqa_problem(
    problem: MultipleChoice, hint: str, split: str = "test", text: Optional[str] = None
) -> Dict[str, Any]:
    """One entry of ScienceQA's ``problems.json`` (always with ``image.png``); ``text`` words the question."""
    category, skill = SCIENCEQA_META[problem.question.qtype]
    return {
        "question": problem.question.text if text is None else text,
        "choices": list(problem.choices),
        "answer": problem.answer_index,
        "hint": hint,
        "image": "image.png",
        "task": "closed choice",
        "grade": "grade1",
        "subject": "natural science",
        "topic": "shapes",
        "category": category,
        "skill": skill,
        "lecture": SCIENCEQA_LECTURE,
        "solution": problem.question.full_answer,
        "split": split,
    }


def scienceqa_pid_splits(test_pids: List[str]) -> Dict[str, List[str]]:
    """``pid_splits.json`` (official keys): all problems in ``test``, the first tenth also in ``minitest``."""
    splits: Dict[str, List[str]] = {key: [] for key in ("train", "val", "trainval", "minitrain", "minival")}
    splits["test"] = list(test_pids)
    splits["minitest"] = test_pids[: max(1, len(test_pids) // 10)] if test_pids else []
    return splits


def textvqa_question(
    question: Question, scene: Scene, image_id: str, question_id: int, image_size: int, text: Optional[str] = None
) -> Dict[str, Any]:
    """One ``data`` entry of ``TextVQA_0.5.1_val.json``; all 10 answers are the rendered word; ``text`` words the
    question (default: its phrasing)."""
    text = question.text if text is None else text
    return {
        "question": text,
        "image_id": image_id,
        "image_classes": sorted({o.shape.capitalize() for o in scene.objects}),
        "flickr_original_url": f"{INVALID_URL}/textvqa/{image_id}_o.jpg",
        "flickr_300k_url": f"{INVALID_URL}/textvqa/{image_id}_z.jpg",
        "image_width": image_size,
        "image_height": image_size,
        "answers": [question.answer] * 10,
        "question_tokens": tokens(text),
        "question_id": question_id,
        "set_name": "val",
    }


def rosetta_ocr(image_id: str, word: str, box: Tuple[int, int, int, int], image_size: int) -> Dict[str, Any]:
    """One ``data`` entry of ``TextVQA_Rosetta_OCR_v0.2_val.json`` for a perfectly read word at pixel ``box``."""
    x, y, width, height = box
    bounding_box = {
        "top_left_x": x / image_size,
        "top_left_y": y / image_size,
        "width": width / image_size,
        "height": height / image_size,
        "rotation": 0.0,
        "roll": 0.0,
        "pitch": 0.0,
        "yaw": 0.0,
    }
    return {"image_id": image_id, "ocr_tokens": [word], "ocr_info": [{"word": word, "bounding_box": bounding_box}]}
