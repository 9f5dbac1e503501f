"""Instruction wording of the demo world and the mix of its LLaVA-format training conversations.

The benchmark instructions come from :mod:`lavis_vislinginstruct.processors.templates` (paper Table 4), filled with
the same :func:`~lavis_vislinginstruct.processors.templates.format_instruction` the evaluation datasets use, and the
rewrite prompt is the model's ``AIOCfg.rewrite_template`` (paper Appendix B), so training text and inference text
cannot drift apart. Training conversations are one of three kinds:

* ``benchmark``: the human turn is exactly a filled benchmark instruction, so evaluation instructions are
  in-distribution;
* ``rewrite``: the human turn is the Appendix B prompt around a filled instruction and the answer is the same
  instruction with the question in its *next* phrasing (cyclic; keywords, options, OCR tokens and context untouched),
  a mapping a tiny LLM can learn;
* ``chat``: 1-3 free-form turns (several phrasings per question type) answered with short sentences.
"""

import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from lavis_vislinginstruct.aio.config import AIOCfg
from lavis_vislinginstruct.processors.templates import TEMPLATES, format_instruction

from .scenes import Scene
from .tasks import MultipleChoice, Question, Statement, captions, make_choice, make_question, make_statement

IMAGE_TOKEN = "<image>"
BENCHMARKS = ("flickr30k", "gqa", "scienceqa", "textvqa", "vsr")
# Caption instructions; the first is the benchmark one, the others are what the rewrite pairs map it to.
CAPTION_PROMPTS = (TEMPLATES["flickr30k"], "A brief description of the image:", "A short caption for the image:")
REWRITE_TEMPLATE = AIOCfg.rewrite_template
VSR_ANSWERS = ("false", "true")  # indexed by the VSR label; the candidates of the VSR evaluation dataset
GQA_TYPES = ("color", "shape", "size", "count", "exist")
SCIENCEQA_TYPES = ("color", "shape", "size", "count", "text")
SCIENCEQA_HINTS = {"count": "Shapes can be circles, squares or triangles."}  # ScienceQA `hint` (the context)
KIND_WEIGHTS = {"benchmark": 0.45, "rewrite": 0.2, "chat": 0.35}
FAMILY_WEIGHTS = {"flickr30k": 1.0, "vsr": 2.0, "gqa": 2.0, "scienceqa": 1.5, "textvqa": 1.5}
# Named training mixes: (kind weights, benchmark-family weights).
# "default": the general mix above.
# "visual": short benchmark questions that need the image (the demo's stage A). A tiny model trained from scratch
#   learns the answer priors of the text first and the image later; with the token-mean loss the long targets
#   (chats, captions, rewrites of about 40 tokens) hold most of the gradient and delay the image further, and a
#   rewrite in a batch sets its padded length. Measured on the demo model (400 updates of 64, held-out GQA-like
#   exact match, answer prior 0.455): 0.49 with 10 % rewrites, 0.62 with 3 % (both with ScienceQA weighted 2.0
#   and TextVQA 0.5); the 3 % still teach the rewrite format AIO's first stage needs. More TextVQA (2.0) lets the
#   short --fast demo learn to read the OCR token; the full demo's stage A then reaches 0.57.
MIXES: Dict[str, Tuple[Dict[str, float], Dict[str, float]]] = {
    "default": (KIND_WEIGHTS, FAMILY_WEIGHTS),
    "visual": (
        {"benchmark": 0.97, "rewrite": 0.03, "chat": 0.0},
        {"flickr30k": 0.2, "vsr": 1.0, "gqa": 4.0, "scienceqa": 1.0, "textvqa": 2.0},
    ),
}
CHAT_TYPES = ("color", "shape", "size", "count", "exist", "spatial", "text", "describe")
DESCRIBE_PROMPTS = ("Describe the image briefly.", "What do you see in this image?", "Give a short caption.")


def vsr_instruction(statement: str) -> str:
    """The VSR benchmark instruction for a caption/statement."""
    return format_instruction(TEMPLATES["vsr"], statement=statement)


def gqa_instruction(question: str) -> str:
    """The GQA benchmark instruction for a question."""
    return format_instruction(TEMPLATES["gqa"], question=question)


def scienceqa_instruction(question: str, choices: Sequence[str], hint: str = "") -> str:
    """The ScienceQA benchmark instruction (with the hint as context when non-empty)."""
    return format_instruction(TEMPLATES["scienceqa"], question=question, choices=choices, context=hint)


def textvqa_instruction(question: str, ocr_tokens: Sequence[str]) -> str:
    """The TextVQA benchmark instruction for a question and the image's OCR tokens."""
    return format_instruction(TEMPLATES["textvqa"], question=question, ocr_tokens=ocr_tokens)


def scienceqa_hint(problem: MultipleChoice) -> str:
    """The ``hint`` a problem carries (empty for most question types)."""
    return SCIENCEQA_HINTS.get(problem.question.qtype, "")


@dataclass(frozen=True)
class Item:
    """One benchmark-style example.

    Attributes:
        family: One of :data:`BENCHMARKS` (a key of ``processors.templates.TEMPLATES``).
        instruction: The filled benchmark instruction.
        answer: The target answer (caption, ``true``/``false``, short answer, option text or word).
        rewritten: The instruction's paraphrase (next phrasing), target of the Appendix B rewrite pairs.
    """

    family: str
    instruction: str
    answer: str
    rewritten: str


def available_families(scene: Scene) -> List[str]:
    """Benchmark families that can be asked about ``scene`` (VSR needs two objects, TextVQA a word)."""
    families = ["flickr30k", "gqa", "scienceqa"]
    if len(scene.objects) >= 2:
        families.append("vsr")
    if scene.word is not None:
        families.append("textvqa")
    return sorted(families)


def _vsr_item(statement: Statement) -> Item:
    return Item(
        "vsr",
        vsr_instruction(statement.text),
        VSR_ANSWERS[statement.label],
        vsr_instruction(statement.rephrased().text),
    )


def _gqa_item(question: Question) -> Item:
    return Item("gqa", gqa_instruction(question.text), question.answer, gqa_instruction(question.rephrased().text))


def _scienceqa_item(problem: MultipleChoice) -> Item:
    hint = scienceqa_hint(problem)
    return Item(
        "scienceqa",
        scienceqa_instruction(problem.question.text, problem.choices, hint),
        problem.choices[problem.answer_index],
        scienceqa_instruction(problem.question.rephrased().text, problem.choices, hint),
    )


def _textvqa_item(question: Question, word: str) -> Item:
    return Item(
        "textvqa",
        textvqa_instruction(question.text, [word]),
        question.answer,
        textvqa_instruction(question.rephrased().text, [word]),
    )


def benchmark_item(scene: Scene, family: str, rng: random.Random) -> Item:
    """Draw one example of ``family`` (see :func:`available_families`) about ``scene``."""
    if family == "flickr30k":
        k = rng.randrange(len(CAPTION_PROMPTS))
        rewritten = CAPTION_PROMPTS[(k + 1) % len(CAPTION_PROMPTS)]
        return Item("flickr30k", CAPTION_PROMPTS[k], rng.choice(captions(scene)), rewritten)
    if family == "vsr":
        return _vsr_item(make_statement(scene, rng.randrange(2), rng))
    if family == "gqa":
        return _gqa_item(make_question(scene, rng.choice(GQA_TYPES), rng))
    if family == "scienceqa":
        types = [t for t in SCIENCEQA_TYPES if t != "text" or scene.word is not None]
        return _scienceqa_item(make_choice(scene, rng.choice(types), rng))
    if family == "textvqa":
        return _textvqa_item(make_question(scene, "text", rng), scene.word)
    raise ValueError(f"unknown benchmark family {family!r}")


def chat_turn(scene: Scene, rng: random.Random) -> Tuple[str, str]:
    """A free-form question about ``scene`` and its short-sentence answer."""
    types = [t for t in CHAT_TYPES if not (t == "spatial" and len(scene.objects) < 2)]
    types = [t for t in types if not (t == "text" and scene.word is None)]
    qtype = rng.choice(types)
    if qtype == "describe":
        return rng.choice(DESCRIBE_PROMPTS), rng.choice(captions(scene))
    if qtype == "spatial":
        statement = make_statement(scene, rng.randrange(2), rng)
        return statement.question, "Yes." if statement.label else "No."
    question = make_question(scene, qtype, rng)
    return question.text, question.full_answer


def _with_image_token(text: str, rng: random.Random) -> str:
    # LLaVA-Instruct-150K puts the marker before or after the first human turn.
    return f"{IMAGE_TOKEN}\n{text}" if rng.random() < 0.5 else f"{text}\n{IMAGE_TOKEN}"


def _weighted(rng: random.Random, weights: Dict[str, float], allowed: Optional[Sequence[str]] = None) -> str:
    names = sorted(n for n in weights if allowed is None or n in allowed)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


@dataclass(frozen=True)
class TrainingRecord:
    """A LLaVA-format conversation before serialisation.

    Attributes:
        kind: ``"benchmark"``, ``"rewrite"`` or ``"chat"``.
        family: Benchmark family for the first two kinds, ``None`` for chat.
        turns: ``(human, gpt)`` pairs; the first human turn carries the ``<image>`` marker.
    """

    kind: str
    family: Optional[str]
    turns: Tuple[Tuple[str, str], ...]

    def conversations(self) -> List[Dict[str, str]]:
        """The ``conversations`` list of LLaVA-Instruct-150K: alternating ``human`` / ``gpt`` turns."""
        out = []
        for human, gpt in self.turns:
            out.append({"from": "human", "value": human})
            out.append({"from": "gpt", "value": gpt})
        return out


def build_training_record(scene: Scene, rng: random.Random, mix: str = "default") -> TrainingRecord:
    """Draw one training conversation about ``scene`` from the named mix of :data:`MIXES`."""
    if mix not in MIXES:
        raise ValueError(f"unknown training mix {mix!r}; choose one of {sorted(MIXES)}")
    kind_weights, family_weights = MIXES[mix]
    kind = _weighted(rng, kind_weights)
    if kind == "chat":
        turns: List[Tuple[str, str]] = []
        for _ in range(rng.randint(1, 3)):
            human, gpt = chat_turn(scene, rng)
            if all(human != h for h, _ in turns):
                turns.append((human, gpt))
        turns[0] = (_with_image_token(turns[0][0], rng), turns[0][1])
        return TrainingRecord(kind, None, tuple(turns))
    family = _weighted(rng, family_weights, available_families(scene))
    item = benchmark_item(scene, family, rng)
    if kind == "benchmark":
        return TrainingRecord(kind, family, ((_with_image_token(item.instruction, rng), item.answer),))
    prompt = REWRITE_TEMPLATE.format(item.instruction)
    return TrainingRecord(kind, family, ((_with_image_token(prompt, rng), item.rewritten),))
