"""Initial instructions of the zero-shot benchmarks (VisLingInstruct, NAACL 2024, Table 4 / Appendix F).

Table 4 writes each instruction after an ``<image/>`` marker; the marker only says where the image goes (the
model puts its visual tokens first), so it is not part of the text here. Choices are lettered as Appendix F says:
``(a) apple (b) banana (c) pineapple``. Table 4's ``\\n`` is a newline character; the spaces around it are kept
verbatim. Placeholders are named (``{question}``) instead of the table's positional ``{}``.

Choices made where Table 4 is silent or wrong:

* TextVQA: Table 4 reads ``OCR tokens: {} Question: \\n Short answer:`` with no question placeholder (a typo),
  so we use ``OCR tokens: {ocr} Question: {question} \\n Short answer:``. ``{ocr}`` is the image's **first 30**
  OCR tokens joined by ``", "`` (LAVIS main's ``', '.join(samples['ocr_tokens'][i][:30])``).
* Visual Dialog shares GQA's row; its caption and dialog history reach the prompt through the wrappers below.
* LLaVA-Instruct-150K training, two formats (dataset option ``text_format``):

  - ``official`` (the default), as the official ``llava_dataset.py`` writes it (Zhudongsheng75/VisLingInstruct
    ``vislinginstruct/datasets/datasets/llava_dataset.py:28-39``): every message before the target answer as
    ``Qusetion: {} \\n `` (its spelling; ``<image>`` and newlines removed from the question) or ``Answer: {} \\n ``,
    then the cue ``Answer: ``; while the text is over 400 words (split on single spaces) it starts at its second
    ``Qusetion:`` (the oldest turn dropped). :func:`format_llava_official`.
  - ``qa`` (section 4.1 as we first read it): earlier turns written ``Q: {q}\\nA: {a}\\n`` and the last question
    after them unchanged; a single-turn conversation is just its question. :func:`format_llava_instruction`.

Wrappers of the ranked benchmarks, applied by :func:`format_instruction` in the order of ``_predict_class`` (the
caption ends up outermost). Two styles, chosen with ``wrappers`` (dataset config
``text_processor.eval.wrappers``):

* ``official`` (the default): the strings of the official VisLingInstruct ``_predict_class``
  (Zhudongsheng75/VisLingInstruct ``vislinginstruct/models/my_mmlm_vicuna.py:517,523`` and
  ``my_mmlm_flant5.py:493,499``): ``Context: {context}. {prompt}`` and ``Dialog history: {history}\\n {prompt}``
  (capitalized, a space after the newline).
* ``lavis``: LAVIS main's (``blip2_vicuna_instruct.py:500,504``, ``blip2_t5_instruct.py:540,544``), which the paper's
  section 4.3 cites through InstructBLIP: ``context: {context}. {prompt}`` and ``dialog history: {history}\\n{prompt}``.

Both share the caption wrapper ``This image has the caption "{caption}". {prompt}``. What each wraps:

1. the context (:data:`CONTEXT_WRAPPER`): ScienceQA, with the problem's ``hint``. Verbatim, so a hint that ends with
   a period reads ``..``.
2. the dialog history (:data:`HISTORY_WRAPPER`): Visual Dialog, with the earlier rounds as
   ``q: {q1} a: {a1} q: {q2} a: {a2}`` (LAVIS main's ``VisDialDataset`` turn format, one space between turns; the
   official code has no Visual Dialog reader).
3. the caption (:data:`CAPTION_WRAPPER`): Visual Dialog, with the dialog's caption.

A wrapper is applied only when its field is non-empty: both codes test ``samples['context'] != ''`` on the batch's
list, which is always true, so they would write ``context: . `` before every hint-less problem; we take that for a
slip. With one sample per call (per-sample candidates, ScienceQA's path), the official code's ``if bs == 1``
wraps the already listed field in a list again, so it would write the list's repr (``Context: ['a hint']. ``);
another slip, not followed. First rounds of a dialog have no history and get only the caption wrapper, as there.
A custom template that names ``{context}``, ``{history}`` or ``{caption}`` itself gets the field in place and no
wrapper. The wrapped instruction is the sample's ``text_input``, so the Q-Former reads it too (truncated to
``max_txt_len``) and AIO starts from it, as ``_predict_class``'s Q-Former reads the wrapped prompt.
"""

import re
import string
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

CAPTION = "A short image description:"
VSR = "Based on the image, is this statement true or false? {statement}"
GQA = "Question: {question} \n Short answer:"
VISDIAL = GQA  # the caption and history are wrappers (module docstring)
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

#: The official ``_predict_class`` (my_mmlm_vicuna.py:517,523; my_mmlm_flant5.py:493,499): the default.
CONTEXT_WRAPPER = "Context: {context}. {prompt}"
HISTORY_WRAPPER = "Dialog history: {history}\n {prompt}"
#: LAVIS main's ``_predict_class`` (blip2_vicuna_instruct.py:500,504; blip2_t5_instruct.py:540,544).
LAVIS_CONTEXT_WRAPPER = "context: {context}. {prompt}"
LAVIS_HISTORY_WRAPPER = "dialog history: {history}\n{prompt}"
CAPTION_WRAPPER = 'This image has the caption "{caption}". {prompt}'  # the same in both
#: Style name -> (field, wrapper) in the order ``_predict_class`` applies them.
WRAPPER_STYLES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "official": (("context", CONTEXT_WRAPPER), ("history", HISTORY_WRAPPER), ("caption", CAPTION_WRAPPER)),
    "lavis": (("context", LAVIS_CONTEXT_WRAPPER), ("history", LAVIS_HISTORY_WRAPPER), ("caption", CAPTION_WRAPPER)),
}
DEFAULT_WRAPPERS = "official"
WRAPPERS = WRAPPER_STYLES[DEFAULT_WRAPPERS]
OCR_SEPARATOR = ", "
OCR_MAX_TOKENS = 30
DIALOG_TURN = "q: {question} a: {answer}"
LLAVA_HISTORY_TURN = "Q: {question}\nA: {answer}\n"
# The official llava_dataset.py (Zhudongsheng75/VisLingInstruct vislinginstruct/datasets/datasets/llava_dataset.py),
# "Qusetion" spelled as there (:31); answers (:33) and the closing cue (:34) verbatim; the word budget of :37-39.
LLAVA_OFFICIAL_QUESTION = "Qusetion: {} \n "
LLAVA_OFFICIAL_ANSWER = "Answer: {} \n "
LLAVA_OFFICIAL_CUE = "Answer: "
LLAVA_OFFICIAL_MAX_WORDS = 400
LLAVA_IMAGE_TOKEN = "<image>"

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
    """The TextVQA instruction's OCR list: the first :data:`OCR_MAX_TOKENS` (30) tokens joined by ``", "``."""
    return OCR_SEPARATOR.join(list(tokens)[:OCR_MAX_TOKENS])


def format_dialog_history(turns: Sequence[Tuple[str, str]]) -> str:
    """Visual Dialog history: the rounds before the current one (the caption has its own wrapper).

    Args:
        turns: ``(question, answer)`` of the earlier rounds, in order.

    Returns:
        ``"q: {q1} a: {a1} q: {q2} a: {a2}"``; empty for the first round.
    """
    return " ".join(DIALOG_TURN.format(question=q, answer=a) for q, a in turns)


def format_llava_instruction(history: Sequence[Tuple[str, str]], question: str) -> str:
    """Initial instruction of one LLaVA-Instruct-150K training sample (paper section 4.1).

    Args:
        history: ``(question, answer)`` turns before the last one (empty for a single-turn conversation).
        question: The last question.

    Returns:
        The earlier turns as ``Q: ..\\nA: ..\\n`` followed by the last question.
    """
    return "".join(LLAVA_HISTORY_TURN.format(question=q, answer=a) for q, a in history) + question


def format_llava_official(messages: Sequence[Tuple[str, str]]) -> str:
    """``text_input`` of one LLaVA-Instruct-150K sample as the official ``llava_dataset.py`` writes it.

    Args:
        messages: ``(from, value)`` of every message before the target answer, raw (``from`` is ``"human"`` or
            ``"gpt"``): the official code formats them without stripping or any text processor.

    Returns:
        ``Qusetion: {q} \\n Answer: {a} \\n ... Qusetion: {q_last} \\n Answer: ``, with ``<image>`` and newlines
        removed from each question, and the oldest turns dropped while the text has more than
        :data:`LLAVA_OFFICIAL_MAX_WORDS` space-separated words. A last question alone over the budget is kept
        whole (the official code would fail there with an IndexError); the model cuts it to ``max_txt_len``.
    """
    text = ""
    for role, value in messages:
        if role == "human":
            text += LLAVA_OFFICIAL_QUESTION.format(value.replace(LLAVA_IMAGE_TOKEN, "").replace("\n", ""))
        else:
            text += LLAVA_OFFICIAL_ANSWER.format(value)
    text += LLAVA_OFFICIAL_CUE
    marker = LLAVA_OFFICIAL_QUESTION.split("{}")[0].strip()  # "Qusetion:"
    while len(text.split(" ")) > LLAVA_OFFICIAL_MAX_WORDS:
        second = text.find(marker, text.find(marker) + 1)
        if second < 0:
            break
        text = text[second:]
    return text


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
    context: Optional[str] = None,
    caption: Optional[str] = None,
    turns: Optional[Sequence[Tuple[str, str]]] = None,
    wrappers: str = DEFAULT_WRAPPERS,
    **fields: str,
) -> str:
    """Fill a template with one sample's fields, then apply the ranked benchmarks' wrappers (module docstring).

    Args:
        template: Format string with named placeholders (``question``, ``statement``, ``text``, ``options``,
            ``ocr``; ``context``, ``history``, ``caption`` to place those fields instead of wrapping).
        choices: Answer choices; fill ``{options}`` via :func:`format_options`.
        ocr_tokens: OCR tokens; fill ``{ocr}`` via :func:`format_ocr_tokens` (the first 30).
        context: ScienceQA hint: ``Context: {context}. `` before the instruction when non-empty.
        caption: Dialog caption: ``This image has the caption "{caption}". `` before everything when non-empty.
        turns: Earlier dialog rounds as ``(question, answer)``: ``Dialog history: {history}\\n `` when non-empty.
        wrappers: Style of the context and history wrappers, a key of :data:`WRAPPER_STYLES` (``official``:
            ``Context: ..``/``Dialog history: ..\\n ``; ``lavis``: ``context: ..``/``dialog history: ..\\n``).
        **fields: Plain string fields (``question``, ``statement``, ``text``).

    Returns:
        The initial instruction.

    Raises:
        ValueError: If the template needs a field that was not given, or ``wrappers`` is not a known style.
    """
    style = wrapper_style(wrappers)
    values: Dict[str, str] = dict(fields)
    if choices is not None:
        values["options"] = format_options(choices)
    if ocr_tokens is not None:
        values["ocr"] = format_ocr_tokens(ocr_tokens)
    wrapped = {"context": context or "", "history": format_dialog_history(turns or []), "caption": caption or ""}
    named = set(placeholders(template))
    values.update({key: value for key, value in wrapped.items() if key in named})
    try:
        instruction = template.format(**values)
    except (KeyError, IndexError) as err:
        raise ValueError(f"Template {template!r} needs field {err}; given {sorted(values)}") from err
    for key, wrapper in style:
        if wrapped[key] and key not in named:
            instruction = wrapper.format(prompt=instruction, **{key: wrapped[key]})
    return instruction


def wrapper_style(name: str) -> Tuple[Tuple[str, str], ...]:
    """The ``(field, wrapper)`` pairs of style ``name``; a ValueError naming the known styles otherwise."""
    if name not in WRAPPER_STYLES:
        raise ValueError(f"wrappers must be one of {', '.join(WRAPPER_STYLES)}, got {name!r}")
    return WRAPPER_STYLES[name]


def placeholders(template: str) -> List[str]:
    """Names of the placeholders in ``template`` (for config validation and tests)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
