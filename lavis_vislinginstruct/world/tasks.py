"""Questions, statements, multiple-choice problems and captions about a :class:`~.scenes.Scene`.

Every question type has several phrasings (``PHRASINGS``). A phrasing is a format string over named slots, so a
question can be re-phrased without touching its keywords (the referring expression, the options): that is what the
paraphrase pairs of the training data teach (paper Appendix B), see :meth:`Question.rephrased`.

Answers are short canonical strings (``"red"``, ``"circle"``, ``"2"``, ``"yes"``, ``"cat"``) drawn from a small
per-type answer space, which also gives each evaluation set its chance level.
"""

import random
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

from .scenes import COLORS, HORIZONTAL, SHAPES, SIZES, VERTICAL, WORDS, Scene, SceneObject

PHRASINGS: Dict[str, Tuple[str, ...]] = {
    "color": ("What color is {ref}?", "Which color does {ref} have?", "What is the color of {ref}?"),
    "shape": ("What shape is {ref}?", "Which shape is {ref}?", "What kind of shape is {ref}?"),
    "size": ("What size is {ref}?", "Is {ref} small or large?", "How big is {ref}?"),
    "count": ("How many shapes are there?", "How many shapes are in the image?", "How many objects can you see?"),
    "exist": ("Is there a {thing}?", "Is there a {thing} in the image?", "Can you see a {thing}?"),
    "text": ("What word is written in the image?", "What does the text say?", "Which word appears in the image?"),
    "where": ("Where is {ref}?", "In which part of the image is {ref}?", "Where can you find {ref}?"),
}
COUNT_ANSWERS = ("1", "2", "3")
YES_NO = ("no", "yes")
ANSWER_SPACES: Dict[str, Tuple[str, ...]] = {
    "color": COLORS,
    "shape": SHAPES,
    "size": SIZES,
    "count": COUNT_ANSWERS,
    "exist": YES_NO,
    "text": WORDS,
    "where": tuple(f"{v} {h}" for v in VERTICAL for h in HORIZONTAL),
}
# Phrases of each spatial relation (VSR-style "The X is <phrase> the Y.").
RELATION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "left of": ("left of", "to the left of", "on the left side of"),
    "right of": ("right of", "to the right of", "on the right side of"),
    "above": ("above", "over", "higher than"),
    "below": ("below", "under", "lower than"),
}
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER_WORDS = ("zero", "one", "two", "three")
CAPTION_PHRASINGS = (
    "{objects}.",
    "There is {objects}.",
    "An image of {objects}.",
    "{number} {shapes} on a dark background: {objects}.",
    "{placed}.",
)


@dataclass(frozen=True)
class Question:
    """A short-answer question about one scene.

    Attributes:
        qtype: Key of :data:`PHRASINGS`.
        phrasing: Index into ``PHRASINGS[qtype]``.
        slots: Slot values of the phrasing, as sorted ``(name, value)`` pairs.
        answer: The short canonical answer (a member of ``ANSWER_SPACES[qtype]``).
        full_answer: The answer as a sentence (GQA ``fullAnswer``, chat replies).
    """

    qtype: str
    phrasing: int
    slots: Tuple[Tuple[str, str], ...]
    answer: str
    full_answer: str

    @property
    def text(self) -> str:
        """The question string."""
        return PHRASINGS[self.qtype][self.phrasing].format(**dict(self.slots))

    @property
    def answer_space(self) -> Tuple[str, ...]:
        """All answers a question of this type can have."""
        return ANSWER_SPACES[self.qtype]

    def rephrased(self) -> "Question":
        """The same question in the next phrasing (cyclic), keeping every slot value (the keywords)."""
        return replace(self, phrasing=(self.phrasing + 1) % len(PHRASINGS[self.qtype]))


@dataclass(frozen=True)
class Statement:
    """A VSR-style spatial statement about two objects.

    Attributes:
        subj: Name of the subject object (``"red circle"``).
        obj: Name of the reference object.
        relation: Canonical relation, a key of :data:`RELATION_PHRASES` (the VSR ``relation`` field).
        phrasing: Index into ``RELATION_PHRASES[relation]``.
        label: 1 if the statement is true for the scene, else 0.
    """

    subj: str
    obj: str
    relation: str
    phrasing: int
    label: int

    @property
    def phrase(self) -> str:
        """The relation as worded in this phrasing."""
        return RELATION_PHRASES[self.relation][self.phrasing]

    @property
    def text(self) -> str:
        """The statement, e.g. ``"The red circle is to the left of the blue square."``."""
        return f"The {self.subj} is {self.phrase} the {self.obj}."

    @property
    def question(self) -> str:
        """The statement as a yes/no question."""
        return f"Is the {self.subj} {self.phrase} the {self.obj}?"

    def rephrased(self) -> "Statement":
        """The same statement with the next wording of its relation (cyclic)."""
        return replace(self, phrasing=(self.phrasing + 1) % len(RELATION_PHRASES[self.relation]))


@dataclass(frozen=True)
class MultipleChoice:
    """A multiple-choice problem (ScienceQA-style).

    Attributes:
        question: The underlying question; its answer is ``choices[answer_index]``.
        choices: The options in display order.
        answer_index: Index of the correct option.
    """

    question: Question
    choices: Tuple[str, ...]
    answer_index: int

    def rephrased(self) -> "MultipleChoice":
        """Same options, question in its next phrasing."""
        return replace(self, question=self.question.rephrased())


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def referring_expressions(scene: Scene, index: int, avoid: Optional[str] = None) -> List[str]:
    """Expressions that pick out ``scene.objects[index]`` uniquely.

    Args:
        scene: The scene.
        index: Which object.
        avoid: ``"color"`` or ``"shape"``: never mention that attribute (it is what the question asks).

    Returns:
        Expressions such as ``"the object"``, ``"the left object"``, ``"the circle"``, ``"the red object"``,
        ``"the red circle"``; never empty when ``avoid`` is ``None``.
    """
    objs = scene.objects
    target = objs[index]
    refs = ["the object"] if len(objs) == 1 else []
    if len(objs) > 1:
        if sum(o.col == target.col for o in objs) == 1:
            refs.append(f"the {target.horizontal} object")
        if sum(o.row == target.row for o in objs) == 1:
            refs.append(f"the {target.vertical} object")
    if avoid != "shape" and sum(o.shape == target.shape for o in objs) == 1:
        refs.append(f"the {target.shape}")
    if avoid != "color" and sum(o.color == target.color for o in objs) == 1:
        refs.append(f"the {target.color} object")
    if avoid is None:
        refs.append(f"the {target.name}")
    return refs


def _pick_target(scene: Scene, rng: random.Random, avoid: Optional[str]) -> Tuple[SceneObject, str]:
    options = [(o, ref) for i, o in enumerate(scene.objects) for ref in referring_expressions(scene, i, avoid)]
    return rng.choice(options)


def make_question(scene: Scene, qtype: str, rng: random.Random, phrasing: Optional[int] = None) -> Question:
    """Draw a question of type ``qtype`` whose answer follows from ``scene``.

    Args:
        scene: The scene.
        qtype: Key of :data:`PHRASINGS` (``"text"`` needs a scene with a word).
        rng: Random stream for the target object, negatives and phrasing.
        phrasing: Fixed phrasing index, or ``None`` for a random one.

    Returns:
        The question with its answers.
    """
    if phrasing is None:
        phrasing = rng.randrange(len(PHRASINGS[qtype]))
    if qtype in ("color", "shape", "size"):
        target, ref = _pick_target(scene, rng, qtype if qtype != "size" else None)
        answer = getattr(target, qtype)
        full = f"{_capitalize(ref)} is {'a ' if qtype == 'shape' else ''}{answer}."
        return Question(qtype, phrasing, (("ref", ref),), answer, full)
    if qtype == "where":  # the cell: what a spatial statement about the object turns on
        target, ref = _pick_target(scene, rng, None)
        answer = f"{target.vertical} {target.horizontal}"
        return Question(qtype, phrasing, (("ref", ref),), answer, f"{_capitalize(ref)} is at the {answer}.")
    if qtype == "count":
        n = len(scene.objects)
        full = "There is 1 shape." if n == 1 else f"There are {n} shapes."
        return Question(qtype, phrasing, (), str(n), full)
    if qtype == "exist":
        present = [o.name for o in scene.objects]
        if rng.random() < 0.5:
            thing, answer = rng.choice(present), "yes"
        else:
            thing = rng.choice([f"{c} {s}" for s in SHAPES for c in COLORS if f"{c} {s}" not in present])
            answer = "no"
        full = f"Yes, there is a {thing}." if answer == "yes" else f"No, there is no {thing}."
        return Question(qtype, phrasing, (("thing", thing),), answer, full)
    if qtype == "text":
        if scene.word is None:
            raise ValueError("a text question needs a scene with a word")
        return Question(qtype, phrasing, (), scene.word, f"The text says {scene.word}.")
    raise ValueError(f"unknown question type {qtype!r}")


def true_relations(a: SceneObject, b: SceneObject) -> List[str]:
    """Canonical relations that hold for "a <relation> b" (by grid cell; same-cell objects never occur)."""
    rels = []
    if a.col != b.col:
        rels.append("left of" if a.col < b.col else "right of")
    if a.row != b.row:
        rels.append("above" if a.row < b.row else "below")
    return rels


def make_statement(scene: Scene, label: int, rng: random.Random, phrasing: Optional[int] = None) -> Statement:
    """A spatial statement about two objects of ``scene`` with the requested truth ``label``.

    False statements use the opposite of a true relation, so every statement is unambiguous.

    Args:
        scene: A scene with at least two objects.
        label: 1 for a true statement, 0 for a false one.
        rng: Random stream.
        phrasing: Fixed relation wording, or ``None`` for a random one.

    Returns:
        The statement.
    """
    if len(scene.objects) < 2:
        raise ValueError("a spatial statement needs at least two objects")
    a, b = rng.sample(list(scene.objects), 2)
    relation = rng.choice(true_relations(a, b))
    if not label:
        relation = OPPOSITE[relation]
    if phrasing is None:
        phrasing = rng.randrange(len(RELATION_PHRASES[relation]))
    return Statement(a.name, b.name, relation, phrasing, int(bool(label)))


def make_choice(scene: Scene, qtype: str, rng: random.Random, n_options: int = 4) -> MultipleChoice:
    """A multiple-choice problem: a :func:`make_question` plus up to ``n_options`` shuffled options.

    Args:
        scene: The scene.
        qtype: Question type; the options come from its answer space (so shapes give 3, sizes 2 options).
        rng: Random stream.
        n_options: Most options to show.

    Returns:
        The problem.
    """
    question = make_question(scene, qtype, rng)
    distractors = [a for a in question.answer_space if a != question.answer]
    choices = [question.answer] + rng.sample(distractors, min(n_options - 1, len(distractors)))
    rng.shuffle(choices)
    return MultipleChoice(question, tuple(choices), choices.index(question.answer))


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def captions(scene: Scene) -> List[str]:
    """One caption per phrasing of :data:`CAPTION_PHRASINGS` (five references, objects in reading order)."""
    described = [f"a {o.size} {o.name}" for o in scene.objects]
    placed = [f"a {o.size} {o.name} at the {o.vertical} {o.horizontal}" for o in scene.objects]
    if scene.word is not None:
        described.append(f"the word {scene.word}")
        placed.append(f"the word {scene.word} at the {('top', 'bottom')[scene.word_row]}")
    n = len(scene.objects)
    slots = {
        "objects": _join(described),
        "number": NUMBER_WORDS[n],
        "shapes": "shape" if n == 1 else "shapes",
        "placed": _join(placed),
    }
    return [_capitalize(p.format(**slots)) for p in CAPTION_PHRASINGS]
