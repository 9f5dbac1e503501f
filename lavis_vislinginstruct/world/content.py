"""What an instruction of the world asks, whatever its wording: the content AIO must keep.

The paper's rewrite prompt (Appendix B) asks to keep "the sentence structure and keywords"; the project's content
guard (``aio.guard: content``) checks that the *verbatim* question, options and OCR tokens survive, which a
user-style question never does once it is reworded. This module reads an instruction of the demo world, in the
common phrasings (:data:`.tasks.PHRASINGS`) or in user words (:mod:`.user_style`), back into its content:

* the benchmark wrapper (Table 4) it is in, by its fixed words (``Question:``, ``Options:``, ``OCR tokens:``,
  ``true or false?``), or none: a bare question as typed in a chat (a text with a question mark);
* questions: the attribute asked (colour, shape, size, count, existence, text), the colours, shapes (synonyms
  mapped back) and positions mentioned, the options (ScienceQA) and the OCR tokens (TextVQA), each as written;
* statements (VSR): subject, relation and object.

Two instructions *keep the content* when their :func:`read_content` keys are equal: same object, attribute,
options and OCR words. A key is ``None`` when the text is not an instruction of the world (an answer, an empty or
garbled text), which never counts as kept. Nothing here depends on LAVIS.
"""

import re
from typing import Optional, Tuple

from .scenes import COLORS
from .user_style import SHAPE_WORDS

Content = Tuple

# attribute cues in priority order: "How many shapes..." is a count question, not a shape question
_ATTRIBUTE_CUES = (
    ("count", ("how many", "number", "count")),
    ("where", ("where", "where's", "which part", "corner", "spot is")),
    ("text", ("word", "text", "written", "writing", "say")),
    ("exist", ("is there", "can you see", "spot", "any ", "visible")),
    ("color", ("color", "colour", "hue", "shade")),
    ("shape", ("shape", "form", "figure", "outline")),
    ("size", ("size", "big", "large", "small", "tiny", "little", "room")),
)
# shape words, longest first so "round one" is read before "one" could be
_SHAPES = sorted(((w, s) for s, words in SHAPE_WORDS.items() for w in words), key=lambda p: -len(p[0]))
_POSITIONS = (
    ("left", ("leftmost", "left")),
    ("right", ("rightmost", "right")),
    ("top", ("top", "upper")),
    ("bottom", ("bottom", "lower", "down below")),
)
# relation cues; left/right first ("over to the left of" is a left relation)
_RELATIONS = (
    ("left of", ("left",)),
    ("right of", ("right",)),
    ("above", ("above", "over", "higher", "up")),
    ("below", ("below", "under", "lower", "beneath", "down")),
)
_VSR_CUE = "true or false?"


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9']+", text.lower())) + " "


def _has(words: str, cue: str) -> bool:
    return f" {cue.strip()} " in words


def _objects(words: str) -> Tuple[Tuple[Optional[str], str], ...]:
    """(colour or None, shape) of every shape word in reading order; bare colours ("the red one") give shape ''."""
    found = []
    tokens = words.split()
    i = 0
    while i < len(tokens):
        shape = None
        for phrase, canonical in _SHAPES:
            parts = phrase.split()
            if tokens[i:i + len(parts)] == parts:
                shape, width = canonical, len(parts)
                break
        if shape is not None:
            color = tokens[i - 1] if i > 0 and tokens[i - 1] in COLORS else None
            found.append((color, shape))
            i += width
            continue
        if tokens[i] in COLORS and (i + 1 >= len(tokens) or not any(
                tokens[i + 1:i + 1 + len(p.split())] == p.split() for p, _ in _SHAPES)):
            found.append((tokens[i], ""))
        i += 1
    return tuple(found)


def _question_content(family: str, question: str, options: Tuple[str, ...], ocr: Tuple[str, ...]) -> Optional[Content]:
    words = _words(question)
    attribute = next((name for name, cues in _ATTRIBUTE_CUES if any(_has(words, c) for c in cues)), None)
    if attribute is None:
        return None
    mentioned = _objects(words)
    if attribute == "size":  # "small or large" names the answers, not the referent
        words = words.replace(" small ", " ").replace(" large ", " ")
    positions = tuple(sorted(name for name, cues in _POSITIONS if any(_has(words, c) for c in cues)))
    return (family, attribute, tuple(sorted(set(mentioned), key=str)), positions, options, ocr)


def _statement_content(statement: str) -> Optional[Content]:
    words = _words(statement)
    objects = [o for o in _objects(words) if o[1]]
    relation = next((name for name, cues in _RELATIONS if any(_has(words, c) for c in cues)), None)
    if len(objects) != 2 or relation is None:
        return None
    return ("vsr", objects[0], relation, objects[1])


def _between(text: str, start: str, end: Optional[str]) -> Optional[str]:
    if start not in text:
        return None
    rest = text.split(start, 1)[1]
    return rest.split(end, 1)[0] if end and end in rest else rest


def read_content(instruction: Optional[str]) -> Optional[Content]:
    """The content key of an instruction of the world (module docstring), or ``None`` if it is not one."""
    if not instruction or not instruction.strip():
        return None
    text = instruction.strip()
    if _VSR_CUE in text:
        return _statement_content(text.split(_VSR_CUE, 1)[1])
    if "Options:" in text:
        question = _between(text, "Question:", "Options:")
        options = tuple(o.strip() for o in re.split(r"\([a-z]\)", text.split("Options:", 1)[1]) if o.strip())
        return None if question is None else _question_content("choice", question, options, ())
    if "OCR tokens:" in text:
        ocr_part = _between(text, "OCR tokens:", "Question:")
        question = _between(text, "Question:", "Short answer:")
        if ocr_part is None or question is None:
            return None
        ocr = tuple(t.strip() for t in ocr_part.split(",") if t.strip())
        return _question_content("ocr", question, (), ocr)
    question = _between(text, "Question:", "Short answer:")
    if question is not None:
        return _question_content("short", question, (), ())
    # a bare question, as a person types it in a chat (the world's ``chat`` family)
    return _question_content("bare", text, (), ()) if "?" in text else None


def content_kept(initial: Optional[str], other: Optional[str]) -> bool:
    """Whether ``other`` asks what ``initial`` asks (equal, readable content keys)."""
    key = read_content(initial)
    return key is not None and key == read_content(other)
