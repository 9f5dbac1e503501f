"""User-style wording of the world's questions and statements: how people actually ask.

The training data asks mostly in the few common phrasings of :data:`.tasks.PHRASINGS`; real users are verbose,
casual, put things in another order and add filler. The held-out evaluation sets ask every question this way,
which is the situation VisLingInstruct's AIO (NAACL 2024, section 3.2) is made for: a model answers best in the
wording it knows, and AIO rewrites the user's instruction into one the model scores as better aligned (IAS).

A user-style question is built from the question's *content* (type, referring expression, the asked-about thing)
by documented transforms, each drawn at random:

1. **Vocabulary** (always): the attribute and the nouns in the user's words (:data:`ATTRIBUTE_FORMS`,
   :data:`OBJECT_WORDS`, :data:`SHAPE_WORDS`, :data:`POSITION_FORMS`), e.g. "colour"/"hue" for "color",
   "thing"/"item" for "object", "disc" for "circle", "the thing on the left" for "the left object".
2. **One structure** of :data:`STRUCTURES`: ``casual`` (an opener such as "hey, "), ``verbose`` (the question in a
   longer request), ``reordered`` (the referent first: "the thing on the left: what colour is it?") or ``filler``
   ("um", "like" around the referent).
3. **A sign-off** ("thanks!", "please") with probability :data:`SIGN_OFF_PROB`.

Content never changes: colours, shapes, positions, the OCR word and the options are the same words (shape words
may be a synonym, which :mod:`.content` reads back). VSR statements get the same treatment, with the relation in
user words (:data:`RELATION_FORMS`, e.g. "further left than").

Nothing here depends on LAVIS.
"""

import random
from typing import Dict, List, Sequence, Tuple

from .tasks import Question, Statement

STRUCTURES = ("casual", "verbose", "reordered", "filler")
SIGN_OFF_PROB = 0.3
OBJECT_WORDS = ("thing", "item", "one")
SHAPE_WORDS: Dict[str, Tuple[str, ...]] = {
    "circle": ("circle", "disc", "round one"),
    "square": ("square", "block", "tile"),
    "triangle": ("triangle", "wedge"),
}
# "the left object" -> "the <noun> on the left" / "the leftmost <noun>"
POSITION_FORMS: Dict[str, Tuple[str, ...]] = {
    "left": ("{noun} on the left", "{noun} at the left", "leftmost {noun}"),
    "right": ("{noun} on the right", "{noun} at the right", "rightmost {noun}"),
    "top": ("{noun} at the top", "{noun} up top", "upper {noun}"),
    "bottom": ("{noun} at the bottom", "{noun} down below", "lower {noun}"),
}
# The question in user words: {ref} is the user-style referent, {thing} an existence question's object.
ATTRIBUTE_FORMS: Dict[str, Tuple[str, ...]] = {
    "color": (
        "what colour is {ref}", "which hue does {ref} have", "what shade is {ref}", "tell me the colour of {ref}"
    ),
    "shape": ("what form does {ref} have", "what kind of figure is {ref}", "which outline does {ref} have"),
    "size": ("how large is {ref}", "is {ref} tiny or big", "is {ref} little or large", "how much room does {ref} take"),
    "count": (
        "how many things can you count", "what's the number of items in this picture", "count the things for me"
    ),
    "exist": ("do you spot a {thing}", "any {thing} in this picture", "is a {thing} visible anywhere"),
    "text": ("what's written here", "which word can you read", "what does the writing say"),
    "where": ("where's {ref}", "which corner is {ref} in", "in what spot is {ref}"),
}
# The same questions about "it", after the referent is named first (structure "reordered").
PRONOUN_FORMS: Dict[str, Tuple[str, ...]] = {
    "color": ("what colour is it", "which hue does it have"),
    "shape": ("what form does it have", "what kind of figure is it"),
    "size": ("how large is it", "is it tiny or big"),
    "count": ("how many of them are there", "what's their number"),
    "exist": ("is there one", "do you spot one"),
    "text": ("what does it say", "which word is it"),
    "where": ("where is it", "which corner is it in"),
}
REORDER_TOPICS = {"count": "the things in this picture", "text": "the writing in the image"}
CASUAL_OPENERS = ("hey, ", "ok so ", "quick one: ", "hmm, ", "so, ")
VERBOSE_FRAMES = (
    "I have a question about this picture. {q}? I would really like to know.",
    "Could you please look carefully at the image and tell me this: {q}?",
    "Please help me with this picture, {q}?",
)
FILLERS = ("um, ", "like, ", "basically, ", "you know, ")
SIGN_OFFS = (" thanks!", " please.", " thank you.")
RELATION_FORMS: Dict[str, Tuple[str, ...]] = {
    "left of": ("further left than", "more to the left than", "over to the left of"),
    "right of": ("further right than", "more to the right than", "over to the right of"),
    "above": ("higher up than", "further up than", "up above"),
    "below": ("beneath", "lower down than", "further down than"),
}
STATEMENT_FRAMES = {
    "casual": ("ok so the {s} is {rel} the {o}", "hey, the {s} is {rel} the {o}"),
    "verbose": ("I believe that in this picture the {s} is {rel} the {o}, is that so", "My claim about this image is "
                "that the {s} is {rel} the {o}"),
    "reordered": ("the {s}: it is {rel} the {o}", "the {s}, it sits {rel} the {o}"),
    "filler": ("the {s} is, like, {rel} the {o} I guess", "um, the {s} is {rel} the {o}, basically"),
}


def _user_noun(words: List[str], rng: random.Random) -> str:
    """The user's noun for a referring expression's noun (a shape name or "object")."""
    noun = words[-1]
    return rng.choice(SHAPE_WORDS[noun]) if noun in SHAPE_WORDS else rng.choice(OBJECT_WORDS)


def user_reference(ref: str, rng: random.Random) -> str:
    """A referring expression of :func:`.tasks.referring_expressions` in user words.

    ``"the left object"`` -> ``"the thing on the left"``, ``"the red circle"`` -> ``"the red disc"``; the colour,
    position and shape (as a synonym) stay.
    """
    words = ref.split()
    if words[0] != "the":
        raise ValueError(f"not a referring expression of the world: {ref!r}")
    middle = words[1:-1]
    noun = _user_noun(words, rng)
    if noun == "one" and not middle:  # "the one" alone says nothing
        noun = rng.choice(OBJECT_WORDS[:2])
    position = next((w for w in middle if w in POSITION_FORMS), None)
    colors = [w for w in middle if w not in POSITION_FORMS]
    if position is not None:
        noun = rng.choice(POSITION_FORMS[position]).format(noun=noun)
    return "the " + " ".join(colors + [noun])


def user_thing(thing: str, rng: random.Random) -> str:
    """``"red circle"`` in user words (``"red disc"``)."""
    color, shape = thing.split()
    return f"{color} {rng.choice(SHAPE_WORDS[shape])}"


def _finish(text: str, rng: random.Random) -> str:
    text = text[:1].upper() + text[1:] if rng.random() < 0.5 else text
    return text + (rng.choice(SIGN_OFFS) if rng.random() < SIGN_OFF_PROB else "")


def user_question(question: Question, rng: random.Random) -> str:
    """The question in user style (module docstring); its content is the question's."""
    slots = dict(question.slots)
    ref = user_reference(slots["ref"], rng) if "ref" in slots else ""
    thing = user_thing(slots["thing"], rng) if "thing" in slots else ""
    structure = rng.choice(STRUCTURES)
    if structure == "reordered":
        topic = ref or (f"a {thing}" if thing else REORDER_TOPICS[question.qtype])
        text = f"{topic}: {rng.choice(PRONOUN_FORMS[question.qtype])}?"
        return _finish(text, rng)
    core = rng.choice(ATTRIBUTE_FORMS[question.qtype]).format(ref=ref, thing=thing)
    if structure == "casual":
        text = rng.choice(CASUAL_OPENERS) + core + "?"
    elif structure == "verbose":
        text = rng.choice(VERBOSE_FRAMES).format(q=core)
    else:  # filler: one in front, one before the referent ("..., like, the thing on the left") or a hedge at the end
        head, the, tail = core.partition(" the ")
        middle = f"{head}, {rng.choice(FILLERS)}the {tail}" if the else f"{core} I guess"
        text = f"{rng.choice(FILLERS)}{middle}?"
    return _finish(text, rng)


def user_statement(statement: Statement, rng: random.Random) -> str:
    """A VSR statement in user style: user words for the objects and the relation, one structure."""
    frame = rng.choice(STATEMENT_FRAMES[rng.choice(STRUCTURES)])
    text = frame.format(
        s=user_thing(statement.subj, rng), o=user_thing(statement.obj, rng),
        rel=rng.choice(RELATION_FORMS[statement.relation]),
    )
    return _finish(text + ".", rng)


def user_variants(make, rng: random.Random, forbidden: Sequence[str] = (), tries: int = 50) -> str:
    """``make(rng)`` redrawn until it is not in ``forbidden`` (training never shows an evaluation string)."""
    blocked = set(forbidden)
    for _ in range(tries):
        text = make(rng)
        if text not in blocked:
            return text
    raise RuntimeError(f"no user-style wording outside the {len(blocked)} forbidden strings in {tries} draws")
