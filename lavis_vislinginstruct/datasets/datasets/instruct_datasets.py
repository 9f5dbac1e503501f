"""LLaVA-Instruct-150K as VisLingInstruct's training data (NAACL 2024, section 4.1).

Official file ``llava_instruct_150k.json`` (https://huggingface.co/datasets/liuhaotian/LLaVA-Instruct-150K): a
list of ``{"id", "image": "<COCO train2017 file>", "conversations": [{"from": "human"|"gpt", "value"}, ...]}``.

One sample per conversation: ``text_output`` is the last answer, ``text_input`` everything before it (LAVIS's
``LLaVA150kInstructDataset`` keeps only the first turn instead); ``expand_turns: true`` adds one sample per turn,
each with the turns before it. How ``text_input`` is written is the option ``text_format``
(:mod:`lavis_vislinginstruct.processors.templates` holds the wording):

* ``official`` (the default): as the official VisLingInstruct ``llava_dataset.py`` (Zhudongsheng75/VisLingInstruct
  ``vislinginstruct/datasets/datasets/llava_dataset.py:28-39``): ``Qusetion: {q} \\n Answer: {a} \\n ...
  Qusetion: {q_last} \\n Answer: `` (its spelling, ``<image>`` and newlines removed from questions), oldest turns
  dropped while over 400 words (:func:`templates.format_llava_official`). The values are used raw and the target
  is the last answer as it is: the official dataset applies no text processor, so ``text_processor`` is not
  applied either.
* ``qa``: the earlier turns as ``Q: ..\\nA: ..\\n`` followed by the last question
  (:func:`templates.format_llava_instruction`), ``<image>`` (prefix ``"<image>\\n"`` or suffix ``"\\n<image>"``)
  removed, every text through the configured text processor (``vli_text``: whitespace only; no lower-casing and no
  50-word cap as ``blip_caption``). The demo trains on this format.

Every record is validated either way (alternating human/gpt pairs, non-empty texts). LLaVA ids are COCO image ids
and repeat across conversations, so ``instance_id`` is ``"<id>_<record index>"``.
"""

import logging
from typing import Any, Dict, List, Tuple

from lavis_vislinginstruct.datasets.datasets.base import VliDataset, read_json
from lavis_vislinginstruct.processors.templates import format_llava_instruction, format_llava_official

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
ROLES = ("human", "gpt")
TEXT_FORMATS = ("official", "qa")  # see the module docstring


class MalformedRecordError(ValueError):
    """A training record does not follow the LLaVA-Instruct-150K format."""


def strip_image_token(text: str) -> str:
    """Remove the ``<image>`` marker (prefix or suffix with its newline, or anywhere else) from a question."""
    text = text.strip()
    if text.startswith(IMAGE_TOKEN):
        text = text[len(IMAGE_TOKEN) :]
    elif text.endswith(IMAGE_TOKEN):
        text = text[: -len(IMAGE_TOKEN)]
    return text.replace(IMAGE_TOKEN, "").strip()


def conversation_turns(record: Dict[str, Any], where: str) -> List[Tuple[str, str]]:
    """Validate one LLaVA record and return its ``(question, answer)`` turns, ``<image>`` removed.

    Args:
        record: One element of ``llava_instruct_150k.json``.
        where: Where the record comes from, for error messages (file and index).

    Raises:
        MalformedRecordError: Naming the record's ``id`` and what is wrong.
    """
    rec_id = record.get("id") if isinstance(record, dict) else None

    def fail(reason: str) -> MalformedRecordError:
        return MalformedRecordError(f"Malformed LLaVA record id={rec_id!r} ({where}): {reason}")

    if not isinstance(record, dict):
        raise fail(f"expected an object, got {type(record).__name__}")
    if rec_id is None:
        raise fail("no 'id'")
    if not isinstance(record.get("image"), str) or not record["image"]:
        raise fail("no 'image' file name")
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not conversations or len(conversations) % 2:
        raise fail("'conversations' must be a non-empty list of human/gpt pairs")
    turns = []
    for pos in range(0, len(conversations), 2):
        pair = conversations[pos : pos + 2]
        for offset, (message, role) in enumerate(zip(pair, ROLES)):
            if not isinstance(message, dict) or message.get("from") != role:
                raise fail(f"conversations[{pos + offset}] should be from {role!r}")
            if not isinstance(message.get("value"), str):
                raise fail(f"conversations[{pos + offset}] has no string 'value'")
        question, answer = strip_image_token(pair[0]["value"]), pair[1]["value"].strip()
        if not question or not answer:
            raise fail(f"empty question or answer in turn {pos // 2 + 1}")
        turns.append((question, answer))
    return turns


class LLaVAInstructDataset(VliDataset):
    """LLaVA-Instruct-150K training samples: ``image``, ``text_input``, ``text_output``, ``instance_id``.

    Args:
        skip_missing_images: Skip (and count, logged as a warning) records whose image file is missing instead of
            raising an error that names the path.
        expand_turns: One sample per turn instead of one per conversation.
        text_format: ``official`` (the official code's text, the default) or ``qa`` (module docstring).
        **kwargs: See :class:`VliDataset`.
    """

    def __init__(
        self, *, skip_missing_images: bool = False, expand_turns: bool = False, text_format: str = "official",
        **kwargs,
    ):
        if text_format not in TEXT_FORMATS:
            raise ValueError(
                f"LLaVA-Instruct-150K option text_format must be one of {', '.join(TEXT_FORMATS)}, got {text_format!r}"
            )
        self.skip_missing_images = skip_missing_images
        self.expand_turns = expand_turns
        self.text_format = text_format
        super().__init__(**kwargs)

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Convert every conversation (see module docstring)."""
        process = self.text_processor
        records = []
        for path in ann_paths:
            data = read_json(path)
            if not isinstance(data, list):
                raise ValueError(f"{path}: expected a JSON list of LLaVA records, got {type(data).__name__}")
            for index, record in enumerate(data):
                turns = conversation_turns(record, f"{path} #{index}")
                last_turns = range(1, len(turns) + 1) if self.expand_turns else [len(turns)]
                for last in last_turns:
                    suffix = f"_{last}" if self.expand_turns else ""
                    if self.text_format == "official":
                        messages = [(m["from"], m["value"]) for m in record["conversations"][: 2 * last]]
                        text_input, text_output = format_llava_official(messages[:-1]), messages[-1][1]
                    else:
                        done = [(process(q), process(a)) for q, a in turns[:last]]
                        text_input = format_llava_instruction(done[:-1], done[-1][0])
                        text_output = done[-1][1]
                    records.append(
                        {
                            "image": record["image"],
                            "instance_id": f"{record['id']}_{index}{suffix}",
                            "text_input": text_input,
                            "text_output": text_output,
                        }
                    )
        return records

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Instruction, target and id of one record."""
        return {key: ann[key] for key in ("text_input", "text_output", "instance_id")}
