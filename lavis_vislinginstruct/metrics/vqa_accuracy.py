"""VQA-style answer normalization and soft accuracy (VQA v2, TextVQA, VizWiz, GQA).

Three scoring rules; which benchmark of VisLingInstruct's zero-shot suite (NAACL 2024, Table 1, following
InstructBLIP's protocol) uses which, and why:

* **Official VQA accuracy** (:func:`vqa_accuracy`): the GT-Vision-Lab evaluator (``GT-Vision-Lab/VQA``,
  ``PythonEvaluationTools/vqaEvaluation/vqaEval.py``, BSD-2 licence; LAVIS 1.0.2 ships the same logic as
  ``lavis.common.vqa_tools.vqa_eval.VQAEval``, and ``tests/test_metrics.py`` compares with it). The prediction is
  **always** normalized: whitespace (``\\n``, ``\\t``, outer spaces), then :func:`process_punctuation`, then
  :func:`process_digit_article`. The ground-truth answers are compared as they are, except that **when they are not
  all identical** each one is passed through :func:`process_punctuation` (and only that: no lower-casing, digits or
  articles, and no whitespace cleaning). The score is the leave-one-out average
  ``mean_i min(1, #{j != i : gt_j == pred} / 3)``. This is the VQA v2 rule; none of the paper's ten benchmarks is
  VQA v2, so it serves users who score VQA v2-style files (``mean_vqa_accuracy``).
* **EvalAI / m4c accuracy** (:func:`textvqa_accuracy`): **TextVQA and VizWiz**. Their evaluation servers (EvalAI),
  mmf's ``TextVQAAccuracyEvaluator`` (``EvalAIAnswerProcessor``, BSD licence) and lmms-eval score this way, so the
  numbers are comparable to the leaderboards and to InstructBLIP's: the prediction and every answer are always
  normalized with :func:`evalai_normalize`, then the same leave-one-out average is taken over the *enumerated*
  answer list. VizWiz's ``"unanswerable"`` is an ordinary answer string.
* **GQA exact match** (:func:`gqa_exact_match`): **GQA**, with LAVIS's ``GQATask._report_metrics`` rule, the one
  behind InstructBLIP's (and so the paper's) GQA numbers: the prediction is normalized by ``processPunctuation`` and
  ``processDigitArticle`` and compared with the raw answer string. GQA's official ``eval.py`` compares raw strings
  and expects predictions in its answer vocabulary (lower-case words), so the normalization only forgives a model's
  casing and trailing period; an answer that the normalizer would change itself (``"t-shirt"`` becomes
  ``"t shirt"``) can then never be matched, in LAVIS as here. :func:`gqa_exact_match` with ``normalize_answer=True``
  normalizes both sides; the GQA scorer reports that as ``accuracy_normalized_answer`` beside the LAVIS number.

Facts taken from the official evaluators (reimplemented here, not copied):

* punctuation set ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` (apostrophes and colons are kept); a mark is deleted
  when it touches a space in the *input* text, or when the input contains a digit-comma-digit sequence, otherwise it
  is replaced by a space; afterwards every period not followed by a digit is removed. The official call passes
  ``re.UNICODE`` (== 32) as the ``count`` argument of ``re.sub``, so at most 32 periods are removed; we keep that.
  The official period pattern ``(?!<=\\d)(\\.)(?!\\d)`` starts with a look-*ahead* that can never match at a period,
  so it is equivalent to ``\\.(?!\\d)``.
* number words ``none/zero..ten`` become digits, the articles ``a an the`` are dropped, and about 110 contraction
  spellings without an apostrophe are expanded (``dont`` -> ``don't``). Keys of the official table that contain
  capitals (``Im``, ``Ive``, ``Id've``, ``I'dve``) can never match after lower-casing and identity entries
  (``let's``, ``she's``) change nothing, so they are omitted; the official typo ``somebody'd -> somebodyd`` is kept.
* the official evaluator builds the leave-one-out subsets with ``item != gtAnsDatum`` on answer *dicts*; VQA v2's
  answer records carry an ``answer_id``, so that removes exactly one entry, which is what enumerating positions does
  (as m4c does too). For answer dicts without an id (VizWiz) the official comparison would remove every identical
  answer at once; enumerating keeps the intended rule.
"""

import logging
import re
from typing import Pattern, Sequence

logger = logging.getLogger(__name__)

__all__ = [
    "process_punctuation",
    "process_digit_article",
    "normalize_vqa_answer",
    "evalai_normalize",
    "vqa_accuracy",
    "textvqa_accuracy",
    "gqa_exact_match",
    "mean_vqa_accuracy",
    "mean_textvqa_accuracy",
    "mean_gqa_accuracy",
]

# The 21 marks of both evaluators, one character each (apostrophe, colon and period are handled elsewhere or kept).
_PUNCTUATION = tuple(';/[]"{}()=+\\_-><@`,?!')
# Official vqaEval.py: ``(\d)(\,)(\d)``; EvalAI/m4c: ``(?<=\d)(\,)+(?=\d)`` (also matches runs of commas).
_VQA_DIGIT_COMMA = re.compile(r"\d,\d")
_EVALAI_DIGIT_COMMA = re.compile(r"(?<=\d),+(?=\d)")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_OFFICIAL_PERIOD_STRIP_COUNT = 32  # the official code passes re.UNICODE (== 32) as re.sub's ``count``

_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
# Apostrophe-less spellings -> canonical form (official vqaEval.py table, unreachable/identity keys omitted).
# fmt: off
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",  # sic: the official table maps this one the wrong way round
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's",
    "somethingd": "something'd", "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've",
    "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}
# fmt: on


def _clean_whitespace(text: str) -> str:
    """Replace newlines/tabs by spaces and strip, as both official evaluators do first."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def _strip_punctuation(text: str, digit_comma: Pattern[str]) -> str:
    """Shared punctuation rule of vqaEval.py and EvalAI; only the digit-comma pattern differs."""
    # The decision for each mark looks at the *input* text, not the partially cleaned output (official behaviour).
    delete_all = digit_comma.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        if delete_all or f"{mark} " in text or f" {mark}" in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_OFFICIAL_PERIOD_STRIP_COUNT)


def process_punctuation(text: str) -> str:
    """Apply the official VQA punctuation rule (``VQAEval.processPunctuation``).

    Args:
        text: A raw answer.

    Returns:
        The answer with punctuation marks deleted or replaced by spaces and non-decimal periods removed,
        e.g. ``"yes."`` -> ``"yes"``, ``"1,000"`` -> ``"1000"``, ``"black/white"`` -> ``"black white"``.
    """
    return _strip_punctuation(text, _VQA_DIGIT_COMMA)


def process_digit_article(text: str) -> str:
    """Apply the official VQA word rule (``VQAEval.processDigitArticle``).

    Lower-cases, maps number words to digits, drops articles and expands apostrophe-less contractions.

    Args:
        text: An answer, usually after :func:`process_punctuation`.

    Returns:
        Space-joined normalized words, e.g. ``"Two dogs"`` -> ``"2 dogs"``, ``"a dog"`` -> ``"dog"``,
        ``"dont"`` -> ``"don't"``.
    """
    words = []
    for word in text.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize_vqa_answer(text: str) -> str:
    """Full official VQA normalization: whitespace, punctuation, then digits/articles/contractions.

    Args:
        text: A raw answer.

    Returns:
        The normalized answer.
    """
    return process_digit_article(process_punctuation(_clean_whitespace(text)))


def evalai_normalize(text: str) -> str:
    """Normalize an answer like EvalAI's ``EvalAIAnswerProcessor`` (TextVQA / VizWiz servers, mmf/m4c).

    Steps: lower-case, delete every ``,`` and ``?``, split off the possessive (``'s`` -> `` 's``), clean whitespace,
    then the VQA punctuation rule (with EvalAI's digit-comma pattern) and the digit/article/contraction rule.

    Args:
        text: A raw answer.

    Returns:
        The normalized answer, e.g. ``"The dog's bone."`` -> ``"dog 's bone"``, ``"1,000"`` -> ``"1000"``.
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = _strip_punctuation(_clean_whitespace(text), _EVALAI_DIGIT_COMMA)
    return process_digit_article(text)


def _leave_one_out(prediction: str, answers: Sequence[str]) -> float:
    """Mean over positions i of min(1, matches among the other answers / 3); answers are enumerated, not deduped."""
    accs = []
    for i in range(len(answers)):
        matches = sum(1 for j, answer in enumerate(answers) if j != i and answer == prediction)
        accs.append(min(1.0, matches / 3.0))
    return sum(accs) / len(accs)


def _check_answers(gt_answers: Sequence[str]) -> None:
    if isinstance(gt_answers, str):
        raise TypeError("gt_answers must be a sequence of answer strings, not a single string")
    if len(gt_answers) == 0:
        raise ValueError("gt_answers is empty: VQA accuracy needs at least one ground-truth answer")


def vqa_accuracy(prediction: str, gt_answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction (GT-Vision-Lab ``vqaEval.py``; module docstring).

    The prediction is always normalized (:func:`normalize_vqa_answer`); the answers only get
    :func:`process_punctuation`, and only when they are not all identical. So ``"two"`` against ten ``"2"`` scores 1
    and ``"2"`` against ten ``"two"`` scores 0, as in the official evaluator. Any number of answers is accepted (VQA
    v2 and VizWiz have 10); with a single answer the leave-one-out subsets are empty and the score is always 0.

    Args:
        prediction: The model's answer.
        gt_answers: The annotators' answers (strings, duplicates kept).

    Returns:
        The accuracy in ``[0, 1]``; with 10 answers, k matches score ``min(1, k/3)`` averaged over the 10 subsets
        (1 -> 0.3, 2 -> 0.6, 3 -> 0.9, 4+ -> 1.0).

    Raises:
        ValueError: If ``gt_answers`` is empty.
    """
    _check_answers(gt_answers)
    prediction = normalize_vqa_answer(prediction)
    answers = list(gt_answers)
    if len(set(answers)) > 1:
        answers = [process_punctuation(a) for a in answers]
    return _leave_one_out(prediction, answers)


def textvqa_accuracy(prediction: str, gt_answers: Sequence[str]) -> float:
    """EvalAI / m4c soft accuracy of one prediction (TextVQA, VizWiz).

    The prediction and every answer are normalized with :func:`evalai_normalize`, then scored with the leave-one-out
    rule over the enumerated answers. m4c asserts exactly 10 answers; here any non-empty list is accepted.

    Args:
        prediction: The model's answer.
        gt_answers: The annotators' answers (duplicates kept; ``"unanswerable"`` is an ordinary answer).

    Returns:
        The accuracy in ``[0, 1]``.

    Raises:
        ValueError: If ``gt_answers`` is empty.
    """
    _check_answers(gt_answers)
    return _leave_one_out(evalai_normalize(prediction), [evalai_normalize(a) for a in gt_answers])


def gqa_exact_match(prediction: str, answer: str, normalize_answer: bool = False) -> bool:
    """GQA accuracy of one prediction, LAVIS's ``GQATask`` rule (module docstring).

    Args:
        prediction: The model's answer; normalized by ``processPunctuation`` then ``processDigitArticle``.
        answer: The single ground-truth answer, compared as it is.
        normalize_answer: Also normalize the answer the same way (not LAVIS's rule; forgives answers such as
            ``"t-shirt"`` that the normalizer changes).

    Returns:
        Whether the strings are equal.
    """
    predicted = process_digit_article(process_punctuation(prediction))
    return predicted == (process_digit_article(process_punctuation(answer)) if normalize_answer else answer)


def _check_lengths(predictions: Sequence, targets: Sequence) -> None:
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} ground-truth entries")
    if len(predictions) == 0:
        raise ValueError("no predictions to score")


def mean_vqa_accuracy(predictions: Sequence[str], gt_answers: Sequence[Sequence[str]]) -> float:
    """Corpus-level official VQA accuracy in percent (the evaluator's ``overall``, unrounded).

    Args:
        predictions: One answer per question.
        gt_answers: The answer list of each question, aligned with ``predictions``.

    Returns:
        ``100 * mean(vqa_accuracy)``.

    Raises:
        ValueError: On empty input, length mismatch, or a question without answers.
    """
    _check_lengths(predictions, gt_answers)
    return 100.0 * sum(vqa_accuracy(p, g) for p, g in zip(predictions, gt_answers)) / len(predictions)


def mean_textvqa_accuracy(predictions: Sequence[str], gt_answers: Sequence[Sequence[str]]) -> float:
    """Corpus-level EvalAI/m4c accuracy in percent (TextVQA, VizWiz).

    Args:
        predictions: One answer per question.
        gt_answers: The answer list of each question, aligned with ``predictions``.

    Returns:
        ``100 * mean(textvqa_accuracy)``.

    Raises:
        ValueError: On empty input, length mismatch, or a question without answers.
    """
    _check_lengths(predictions, gt_answers)
    return 100.0 * sum(textvqa_accuracy(p, g) for p, g in zip(predictions, gt_answers)) / len(predictions)


def mean_gqa_accuracy(predictions: Sequence[str], answers: Sequence[str], normalize_answer: bool = False) -> float:
    """Corpus-level GQA exact-match accuracy in percent.

    Args:
        predictions: One answer per question.
        answers: The ground-truth answer of each question, aligned with ``predictions``.
        normalize_answer: See :func:`gqa_exact_match`.

    Returns:
        ``100 * mean(gqa_exact_match)``.

    Raises:
        ValueError: On empty input or length mismatch.
    """
    _check_lengths(predictions, answers)
    hits = sum(gqa_exact_match(p, a, normalize_answer) for p, a in zip(predictions, answers))
    return 100.0 * hits / len(predictions)
