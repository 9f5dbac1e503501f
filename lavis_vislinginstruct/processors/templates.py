"""Initial instructions of the zero-shot benchmarks (VisLingInstruct, NAACL 2024, Table 4 / Appendix F).

Table 4 writes each instruction after an ``<image/>`` marker; the marker only says where the image goes (the
model puts its visual tokens first), so it is not part of the text here. Choices are lettered as Appendix F says:
``(a) apple (b) banana (c) pineapple``. Table 4's ``\\n`` is a newline character; the spaces around it are kept
verbatim. Placeholders are named (``{question}``) instead of the table's positional ``{}``.

Choices made where Table 4 is silent or wrong:

* TextVQA: Table 4 reads ``OCR tokens: {} Question: \\n Short answer:`` with no question placeholder (a typo),
  so we use ``OCR tokens: {ocr} Question: {question} \\n Short answer:``. OCR tokens are joined by ``", "``.
* ScienceQA: the problem's ``hint`` is the context; when it is non-empty, ``Context: {hint}\\n`` is put before
  the instruction (as LLaVA does), otherwise nothing is added.
* Visual Dialog shares GQA's row; the dialog history (caption + previous rounds) goes in front of it:
  ``Dialog history: Caption: {caption} Q: {q1} A: {a1} ...\\n`` + GQA's instruction.
* LLaVA-Instruct-150K training (paper section 4.1): earlier turns are written ``Q: {q}\\nA: {a}\\n`` and the last
  question follows them unchanged; a single-turn conversation is just its question.
"""

import re
import string
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

CAPTION = "A short image description:"
VSR = "Based on the image, is this statement true or false? {statement}"
GQA = "Question: {question} \n Short answer:"
VISDIAL = "Dialog history: {history}\n" + GQA
ICONQA = "Question: {question} Options: {options} \n Answer:"
VIZWIZ = (
    "Answer the question based on the image. Reply in one phrase/word or say 'unanswerable'. "
    "Question: {question} \n Short answer:"
)
TEXTVQA = "OCR tokens: {ocr} Question: {question} \n Short answer:"
SCIENCEQA = (
    "Given the image, choose the correct option for the following question. "
    "Question: {question} \n Options: {options}"
)
HATEFUL_MEMES = "This is an image with: {text} written on it. Is it hateful?"

#: Table 4, by the name a dataset config uses in ``text_processor.eval.template``.
TEMPLATES: Dict[str, str] = {
    "flickr30k": CAPTION,
    "nocaps": CAPTION,
    "vsr": VSR,
    "gqa": GQA,
    "visdial": VISDIAL,
    "iconqa": ICONQA,
    "vizwiz": VIZWIZ,
    "textvqa": TEXTVQA,
    "scienceqa": SCIENCEQA,
    "hateful_memes": HATEFUL_MEMES,
}

CONTEXT_PREFIX = "Context: {context}\n"
OCR_SEPARATOR = ", "
DIALOG_CAPTION = "Caption: {caption}"
DIALOG_TURN = " Q: {question} A: {answer}"
LLAVA_HISTORY_TURN = "Q: {question}\nA: {answer}\n"

_SPACE_RUNS = re.compile(r"[ \t\f\v]{2,}|[\t\f\v]")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """Normalize whitespace only: no lower-casing, no punctuation removal, no word cap.

    Line breaks are unified to ``\\n``, runs of spaces/tabs after a word become one space (leading indentation is
    kept), three or more newlines become two, and the ends are stripped. A single space before a line break is
    kept, so Table 4's ``"Question: {} \\n Short answer:"`` reads the same in training data and in evaluation.

    Args:
        text: Raw text.

    Returns:
        The normalized text.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = []
    for line in text.split("\n"):
        body = line.lstrip(" \t")
        lines.append(line[: len(line) - len(body)] + _SPACE_RUNS.sub(" ", body))
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def format_options(choices: Sequence[str]) -> str:
    """Letter the choices as in Appendix F: ``["apple", "banana"]`` → ``"(a) apple (b) banana"``.

    Args:
        choices: Answer choices, in order.

    Returns:
        The lettered choices on one line.

    Raises:
        ValueError: If there are no choices or more than 26.
    """
    if not 0 < len(choices) <= len(string.ascii_lowercase):
        raise ValueError(f"Expected 1 to 26 choices, got {len(choices)}: {list(choices)!r}")
    return " ".join(f"({letter}) {choice}" for letter, choice in zip(string.ascii_lowercase, choices))


def format_ocr_tokens(tokens: Iterable[str]) -> str:
    """Join OCR tokens for the TextVQA instruction (``", "``, as LLaVA's "Reference OCR token" list)."""
    return OCR_SEPARATOR.join(tokens)


def format_dialog_history(caption: str, turns: Sequence[Tuple[str, str]]) -> str:
    """Visual Dialog history: the caption followed by the previous rounds.

    Args:
        caption: The image caption (round 0 of the dialog).
        turns: ``(question, answer)`` of the rounds before the current one.

    Returns:
        ``"Caption: {caption} Q: {q1} A: {a1} ..."``.
    """
    history = DIALOG_CAPTION.format(caption=caption)
    return history + "".join(DIALOG_TURN.format(question=q, answer=a) for q, a in turns)


def format_llava_instruction(history: Sequence[Tuple[str, str]], question: str) -> str:
    """Initial instruction of one LLaVA-Instruct-150K training sample (paper section 4.1).

    Args:
        history: ``(question, answer)`` turns before the last one (empty for a single-turn conversation).
        question: The last question.

    Returns:
        The earlier turns as ``Q: ..\\nA: ..\\n`` followed by the last question.
    """
    return "".join(LLAVA_HISTORY_TURN.format(question=q, answer=a) for q, a in history) + question


def resolve_template(name_or_text: str) -> str:
    """A Table 4 template by dataset name, or ``name_or_text`` itself when it is not a known name.

    Custom templates use the named placeholders of :func:`format_instruction`.
    """
    return TEMPLATES.get(name_or_text, name_or_text)


def format_instruction(
    template: str,
    *,
    choices: Optional[Sequence[str]] = None,
    ocr_tokens: Optional[Sequence[str]] = None,
    caption: Optional[str] = None,
    turns: Optional[Sequence[Tuple[str, str]]] = None,
    context: Optional[str] = None,
    **fields: str,
) -> str:
    """Fill a template with one sample's fields.

    Args:
        template: Format string with named placeholders (``question``, ``statement``, ``text``, ``options``,
            ``ocr``, ``history``).
        choices: Answer choices; fill ``{options}`` via :func:`format_options`.
        ocr_tokens: OCR tokens; fill ``{ocr}`` via :func:`format_ocr_tokens`.
        caption: Dialog caption; with ``turns`` fills ``{history}`` via :func:`format_dialog_history`.
        turns: Previous dialog rounds as ``(question, answer)``.
        context: Optional context (ScienceQA hint), prefixed as ``Context: ...\\n`` when non-empty.
        **fields: Plain string fields (``question``, ``statement``, ``text``).

    Returns:
        The initial instruction.

    Raises:
        ValueError: If the template needs a field that was not given.
    """
    values: Dict[str, str] = dict(fields)
    if choices is not None:
        values["options"] = format_options(choices)
    if ocr_tokens is not None:
        values["ocr"] = format_ocr_tokens(ocr_tokens)
    if caption is not None:
        values["history"] = format_dialog_history(caption, turns or [])
    try:
        instruction = template.format(**values)
    except (KeyError, IndexError) as err:
        raise ValueError(f"Template {template!r} needs field {err}; given {sorted(values)}") from err
    if context:
        instruction = CONTEXT_PREFIX.format(context=context) + instruction
    return instruction


def placeholders(template: str) -> List[str]:
    """Names of the placeholders in ``template`` (for config validation and tests)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
