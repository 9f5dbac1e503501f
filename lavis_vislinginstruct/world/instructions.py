"""Instruction wording of the demo world and the mix of its LLaVA-format training conversations.

The benchmark instructions come from :mod:`lavis_vislinginstruct.processors.templates` (paper Table 4), filled with
the same :func:`~lavis_vislinginstruct.processors.templates.format_instruction` the evaluation datasets use, and the
rewrite prompt is the model's ``AIOCfg.rewrite_template`` (paper Appendix B), so training text and inference text
cannot drift apart. Training conversations are of these kinds (their shares are the mix's, :data:`MIXES`):

* ``benchmark``: the human turn is a filled benchmark instruction with the question in one of the common phrasings
  (:data:`.tasks.PHRASINGS`), the answer the short answer;
* ``user_benchmark``: the same with the question in user style (:mod:`.user_style`): rare, as in real
  instruction data, where users' own wordings are the long tail;
* ``rewrite`` (Appendix B): the human turn is the rewrite prompt around a filled instruction in a common phrasing,
  the answer the same instruction with the question in its *next* phrasing (cyclic);
* ``user_rewrite`` (Appendix B): the rewrite prompt around an instruction in user style, the answer the instruction
  in the first (most common) phrasing. Both rewrite kinds keep the content (object, attribute, options, OCR tokens,
  context; :mod:`.content` reads it back) and change only the wording, as the paper's prompt asks;
* ``chat``: 1-3 free-form turns (several phrasings per question type) answered with short sentences.

Besides the benchmark families, the family ``chat`` is a bare question as a person types it in a chat (no
benchmark wrapper), answered with a short sentence; its kinds are the benchmarks' (common phrasing, user style,
rewrites), so AIO learns to rewrite a user's bare question into a common phrasing too.

The comparison prompts of AIO's second stage (section 3.2, Figure 3) carry the model's own IAS, so they are written
after a first training phase (:mod:`.comparison`). Training never shows an evaluation instruction: user-style
wordings are redrawn when they equal one (``forbidden``).
"""

import random
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from lavis_vislinginstruct.aio.config import AIOCfg
from lavis_vislinginstruct.processors.templates import TEMPLATES, format_instruction

from .scenes import Scene
from .tasks import (
    PHRASINGS,
    RELATION_PHRASES,
    MultipleChoice,
    Question,
    Statement,
    captions,
    make_choice,
    make_question,
    make_statement,
)
from .user_style import user_question, user_statement, user_variants

IMAGE_TOKEN = "<image>"
BENCHMARKS = ("flickr30k", "gqa", "scienceqa", "textvqa", "vsr")
# Caption instructions; the first is the benchmark one, the others are what the rewrite pairs map it to.
CAPTION_PROMPTS = (TEMPLATES["flickr30k"], "A brief description of the image:", "A short caption for the image:")
REWRITE_TEMPLATE = AIOCfg.rewrite_template
VSR_ANSWERS = ("false", "true")  # indexed by the VSR label; the answers VSR is scored on
GQA_TYPES = ("color", "shape", "size", "count", "exist")  # the evaluation set's question types
# Training also asks where an object is ("top left"): the binding of a name to a place that a spatial statement
# (VSR) turns on; see docs/demo-measurements.md for what it was measured to do.
GQA_TRAIN_TYPES = GQA_TYPES + ("where",)
SCIENCEQA_TYPES = ("color", "shape", "size", "count", "text")
SCIENCEQA_HINTS = {"count": "Shapes can be circles, squares or triangles."}  # ScienceQA `hint` (the context)
DEMO_WRAPPERS = "lavis"  # style of the context wrapper in the demo's training and evaluation (processors.templates)
KINDS = ("benchmark", "user_benchmark", "rewrite", "user_rewrite", "chat")
KIND_WEIGHTS = {"benchmark": 0.45, "rewrite": 0.2, "chat": 0.35}
FAMILY_WEIGHTS = {"flickr30k": 1.0, "vsr": 2.0, "gqa": 2.0, "scienceqa": 1.5, "textvqa": 1.5}
# Named training mixes: (kind weights, benchmark-family weights).
# "default": the general mix above (common phrasings only).
# "demo": the demo's first training phase (stage A): short questions that need the image;
# "demo_text": its second phase (stage A2, beside the comparison prompts): the rewrites, and questions as replay.
# "demo_focus": a last round (with comparison pairs of the same families) on what the earlier phases teach least:
# spatial statements and multiple choice, and questions in user style answered as well as rewritten.
# The shares and what they were measured on are in docs/demo-measurements.md.
DEMO_FAMILIES = {"flickr30k": 0.2, "vsr": 2.0, "gqa": 4.0, "scienceqa": 1.0, "textvqa": 2.0, "chat": 1.5}
MIXES: Dict[str, Tuple[Dict[str, float], Dict[str, float]]] = {
    "default": (KIND_WEIGHTS, FAMILY_WEIGHTS),
    "demo": ({"benchmark": 1.0}, DEMO_FAMILIES),
    "demo_text": ({"benchmark": 0.45, "user_benchmark": 0.05, "rewrite": 0.10, "user_rewrite": 0.40}, DEMO_FAMILIES),
    "demo_focus": ({"benchmark": 0.15, "user_benchmark": 0.35, "user_rewrite": 0.50},
                   {"vsr": 3.0, "gqa": 1.0, "scienceqa": 4.0, "textvqa": 1.0, "chat": 1.0}),
}
CHAT_TYPES = ("color", "shape", "size", "count", "exist", "spatial", "text", "describe")
CHAT_QUESTION_TYPES = ("color", "shape", "size", "count", "exist", "where")  # the bare questions of the ``chat`` family
DESCRIBE_PROMPTS = ("Describe the image briefly.", "What do you see in this image?", "Give a short caption.")


def vsr_instruction(statement: str) -> str:
    """The VSR benchmark instruction for a caption/statement."""
    return format_instruction(TEMPLATES["vsr"], statement=statement)


def gqa_instruction(question: str) -> str:
    """The GQA benchmark instruction for a question."""
    return format_instruction(TEMPLATES["gqa"], question=question)


def scienceqa_instruction(question: str, choices: Sequence[str], hint: str = "") -> str:
    """The ScienceQA benchmark instruction (with the hint as context when non-empty).

    The demo keeps LAVIS main's ``context: ..`` wrapper it was built and measured with (the evaluation's default is
    now the official code's ``Context: ..``); ``projects/vislinginstruct/demo/eval_scienceqa.yaml`` asks for the same.
    """
    return format_instruction(TEMPLATES["scienceqa"], question=question, choices=choices, context=hint,
                              wrappers=DEMO_WRAPPERS)


def textvqa_instruction(question: str, ocr_tokens: Sequence[str]) -> str:
    """The TextVQA benchmark instruction for a question and the image's OCR tokens."""
    return format_instruction(TEMPLATES["textvqa"], question=question, ocr_tokens=ocr_tokens)


def scienceqa_hint(problem: MultipleChoice) -> str:
    """The ``hint`` a problem carries (empty for most question types)."""
    return SCIENCEQA_HINTS.get(problem.question.qtype, "")


@dataclass(frozen=True)
class Item:
    """One benchmark-style example, able to word its question in any phrasing.

    Attributes:
        family: One of :data:`BENCHMARKS` (a key of ``processors.templates.TEMPLATES``), or ``chat``.
        answer: The target answer (caption, ``true``/``false``, short answer, option text or word).
        phrasings: The question (statement, caption prompt) in each common phrasing.
        phrasing: Index of the phrasing this example was drawn in.
        wrap: Puts a question text into the benchmark instruction (Table 4 template, options, OCR, hint).
        user: Draws the question in user style (:mod:`.user_style`), or ``None`` where the world has none (captions).
    """

    family: str
    answer: str
    phrasings: Tuple[str, ...]
    phrasing: int
    wrap: Callable[[str], str]
    user: Optional[Callable[[random.Random], str]] = None

    @property
    def instruction(self) -> str:
        """The filled benchmark instruction in the drawn phrasing."""
        return self.wrap(self.phrasings[self.phrasing])

    @property
    def rewritten(self) -> str:
        """The instruction in the next phrasing (cyclic), keywords, options, OCR tokens and context untouched."""
        return self.wrap(self.phrasings[(self.phrasing + 1) % len(self.phrasings)])

    @property
    def canonical(self) -> str:
        """The instruction in the first (most common) phrasing."""
        return self.wrap(self.phrasings[0])

    def user_instruction(self, rng: random.Random, forbidden: Sequence[str] = ()) -> str:
        """The instruction with the question in user style, never one of ``forbidden`` (the evaluation strings)."""
        if self.user is None:
            return self.instruction
        user = self.user
        return user_variants(lambda r: self.wrap(user(r)), rng, forbidden)


def available_families(scene: Scene) -> List[str]:
    """Families that can be asked about ``scene`` (VSR needs two objects, TextVQA a word): the benchmarks and
    ``chat``, bare questions as people type them."""
    families = ["chat", "flickr30k", "gqa", "scienceqa"]
    if len(scene.objects) >= 2:
        families.append("vsr")
    if scene.word is not None:
        families.append("textvqa")
    return sorted(families)


def _question_phrasings(question: Question) -> Tuple[str, ...]:
    n = len(PHRASINGS[question.qtype])
    return tuple(replace(question, phrasing=k).text for k in range(n))


def vsr_item(statement: Statement) -> Item:
    """The VSR example of a statement (answer ``true``/``false``)."""
    n = len(RELATION_PHRASES[statement.relation])
    return Item(
        "vsr",
        VSR_ANSWERS[statement.label],
        tuple(replace(statement, phrasing=k).text for k in range(n)),
        statement.phrasing,
        vsr_instruction,
        lambda rng: user_statement(statement, rng),
    )


def gqa_item(question: Question) -> Item:
    """The GQA example of a question."""
    return Item("gqa", question.answer, _question_phrasings(question), question.phrasing, gqa_instruction,
                lambda rng: user_question(question, rng))


def scienceqa_item(problem: MultipleChoice) -> Item:
    """The ScienceQA example of a problem (options and hint in every phrasing)."""
    hint = scienceqa_hint(problem)
    return Item(
        "scienceqa",
        problem.choices[problem.answer_index],
        _question_phrasings(problem.question),
        problem.question.phrasing,
        lambda text: scienceqa_instruction(text, problem.choices, hint),
        lambda rng: user_question(problem.question, rng),
    )


def textvqa_item(question: Question, word: str) -> Item:
    """The TextVQA example of a text question about an image showing ``word`` (its OCR token)."""
    return Item(
        "textvqa",
        question.answer,
        _question_phrasings(question),
        question.phrasing,
        lambda text: textvqa_instruction(text, [word]),
        lambda rng: user_question(question, rng),
    )


def chat_item(question: Question) -> Item:
    """A question as a person types it in a chat (family ``chat``): no benchmark wrapper, a short sentence as the
    answer (the question's ``full_answer``)."""
    return Item("chat", question.full_answer, _question_phrasings(question), question.phrasing, _unwrapped,
                lambda rng: user_question(question, rng))


def _unwrapped(text: str) -> str:
    """The ``wrap`` of an item whose text is the whole instruction (chat questions, caption prompts)."""
    return text


def benchmark_item(scene: Scene, family: str, rng: random.Random) -> Item:
    """Draw one example of ``family`` (see :func:`available_families`) about ``scene``."""
    if family == "flickr30k":
        k = rng.randrange(len(CAPTION_PROMPTS))
        return Item("flickr30k", rng.choice(captions(scene)), CAPTION_PROMPTS, k, _unwrapped)
    if family == "vsr":
        return vsr_item(make_statement(scene, rng.randrange(2), rng))
    if family == "gqa":
        return gqa_item(make_question(scene, rng.choice(GQA_TRAIN_TYPES), rng))
    if family == "scienceqa":
        types = [t for t in SCIENCEQA_TYPES if t != "text" or scene.word is not None]
        return scienceqa_item(make_choice(scene, rng.choice(types), rng))
    if family == "textvqa":
        return textvqa_item(make_question(scene, "text", rng), scene.word)
    if family == "chat":
        return chat_item(make_question(scene, rng.choice(CHAT_QUESTION_TYPES), rng))
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
        kind: One of :data:`KINDS` (or ``comparison``, see :mod:`.comparison`).
        family: Benchmark family, ``None`` for chat.
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


def single_turn(kind: str, family: Optional[str], human: str, gpt: str, rng: random.Random) -> TrainingRecord:
    """A one-turn record with the ``<image>`` marker before or after the human turn."""
    return TrainingRecord(kind, family, ((_with_image_token(human, rng), gpt),))


def build_training_record(
    scene: Scene, rng: random.Random, mix: str = "default", forbidden: Sequence[str] = ()
) -> TrainingRecord:
    """Draw one training conversation about ``scene`` from the named mix of :data:`MIXES`.

    Args:
        scene: The scene the conversation is about.
        rng: Random stream.
        mix: A key of :data:`MIXES`.
        forbidden: Instructions training must not show (the evaluation sets'); user-style wordings are redrawn.
    """
    if mix not in MIXES:
        raise ValueError(f"unknown training mix {mix!r}; choose one of {sorted(MIXES)}")
    kind_weights, family_weights = MIXES[mix]
    kind = _weighted(rng, {k: w for k, w in kind_weights.items() if w > 0})
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
        return single_turn(kind, family, item.instruction, item.answer, rng)
    if kind == "user_benchmark":
        return single_turn(kind, family, item.user_instruction(rng, forbidden), item.answer, rng)
    if kind == "rewrite":
        return single_turn(kind, family, REWRITE_TEMPLATE.format(item.instruction), item.rewritten, rng)
    if kind == "user_rewrite":
        prompt = REWRITE_TEMPLATE.format(item.user_instruction(rng, forbidden))
        return single_turn(kind, family, prompt, item.canonical, rng)
    raise ValueError(f"unknown kind {kind!r} in mix {mix!r}")
