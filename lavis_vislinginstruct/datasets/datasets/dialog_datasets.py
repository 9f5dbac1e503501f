"""Visual Dialog v1.0 val, ranked over a round's 100 answer options (MRR): the last round of each of the 2064
dialogs by default (``rounds: last``), all 20640 rounds with ``rounds: all``.

Official ``visdial_1.0_val.json``: ``{"data": {"dialogs": [{"image_id", "caption", "dialog": [{"question": q_idx,
"answer": a_idx, "answer_options": [100 a_idx], "gt_index"}] x10}], "questions": [str], "answers": [str]}}``.

Why one round per dialog (the evidence is in ``configs/datasets/visdial/defaults.yaml``): the paper's Appendix D
counts 2064 val samples, the number of val dialogs, not of rounds; LAVIS main's ``VisDialDataset`` yields each
dialog's last round (its ten entries are one dict mutated up to round 10), and that round carries the whole
dialog history.

One sample per selected (dialog, round): ``image``, ``text_input`` (GQA's Table 4 instruction inside the ranked
benchmarks' wrappers: ``This image has the caption "{caption}". Dialog history: q: .. a: ..\\n {instruction}``, the
history only from the second round on; ``processors.templates``), ``instance_id`` = ``"<image_id>_<round>"``
(round 1-based, as the dense annotations' ``round_id``), ``keep_spans`` (question, history, caption), ``candidates``
(the 100 option strings), ground truth ``gt_index``, plus ``image_id`` and ``round_id`` for NDCG (computed where the
densely annotated round is among the selected ones). Each round gets its own record (LAVIS's ``VisDialDataset``
appends one mutated dict per dialog, so all its rounds equal the last one). Option strings are resolved in
``__getitem__`` so 20k records do not each hold 100 strings.
"""

from typing import Any, Dict, List

from lavis_vislinginstruct.datasets.datasets.base import VliDataset, read_json
from lavis_vislinginstruct.processors.templates import format_dialog_history, normalize_text

ROUNDS = ("last", "all")  # which rounds of a dialog are samples (module docstring)


class VisDialEvalDataset(VliDataset):
    """Visual Dialog ranking samples.

    Args:
        image_pattern: Image path under ``vis_root``, formatted with ``image_id``.
        rounds: ``last``: each dialog's last round, with all earlier rounds as history (2064 val samples, the
            paper's Appendix D count); ``all``: every round (20640).
        **kwargs: See :class:`VliDataset`.
    """

    def __init__(
        self, *, image_pattern: str = "VisualDialog_val2018/VisualDialog_val2018_{image_id:012d}.jpg",
        rounds: str = "last", **kwargs
    ):
        if rounds not in ROUNDS:
            raise ValueError(f"Visual Dialog option rounds must be one of {', '.join(ROUNDS)}, got {rounds!r}")
        self.image_pattern = image_pattern
        self.rounds = rounds
        self.answers: List[str] = []
        super().__init__(**kwargs)

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """One record per selected round of every dialog (``rounds``)."""
        records = []
        for path in ann_paths:
            data = read_json(path)["data"]
            questions = [normalize_text(q) for q in data["questions"]]
            offset = len(self.answers)
            self.answers.extend(normalize_text(a) for a in data["answers"])
            for dialog in data["dialogs"]:
                caption = normalize_text(dialog["caption"])
                image = self.image_pattern.format(image_id=dialog["image_id"])
                turns: List[tuple] = []
                last = len(dialog["dialog"])
                for round_id, rnd in enumerate(dialog["dialog"], start=1):
                    if self.rounds == "last" and round_id < last:
                        turns.append((questions[rnd["question"]], self.answers[offset + rnd["answer"]]))
                        continue
                    options = rnd.get("answer_options")
                    if not options or "gt_index" not in rnd:
                        raise ValueError(
                            f"{path}: dialog {dialog['image_id']} round {round_id} has no answer_options/gt_index "
                            "(the test file ranks the last round only; use the val file)"
                        )
                    question = questions[rnd["question"]]
                    records.append(
                        {
                            "image": image,
                            "instance_id": f"{dialog['image_id']}_{round_id}",
                            "image_id": dialog["image_id"],
                            "round_id": round_id,
                            "caption": caption,
                            "turns": tuple(turns),
                            "question": question,
                            "options": [offset + a for a in options],
                            "gt_index": rnd["gt_index"],
                        }
                    )
                    turns.append((question, self.answers[offset + rnd["answer"]]))
        return records

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Round sample with its 100 candidate answers."""
        turns = list(ann["turns"])
        history = format_dialog_history(turns)
        spans = [ann["question"]] + [text for text in (history, ann["caption"]) if text]
        return {
            "text_input": self.text_processor(question=ann["question"], caption=ann["caption"], turns=turns),
            "instance_id": ann["instance_id"],
            "keep_spans": spans,
            "candidates": [self.answers[a] for a in ann["options"]],
            "gt_index": ann["gt_index"],
            "image_id": ann["image_id"],
            "round_id": ann["round_id"],
        }
