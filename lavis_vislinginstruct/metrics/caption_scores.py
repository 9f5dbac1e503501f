"""CIDEr for the captioning benchmarks (Flickr30K Karpathy test, NoCaps val) on in-memory predictions.

VisLingInstruct (NAACL 2024, Sec. 4.3) reports CIDEr (Vedantam et al., CVPR 2015) for NoCaps and Flickr30K, following
InstructBLIP. The official pipeline, as run by LAVIS ``coco_caption_eval`` through ``pycocoevalcap.eval.COCOEvalCap``,
is: Stanford PTB tokenization of references and predictions (``pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer``,
``-preserveLines -lowerCase``, then removal of the punctuation tokens ``'' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : -
-- ... ;``), then ``pycocoevalcap.cider.Cider`` (CIDEr-D: n = 4, sigma = 6, clipped tf-idf, Gaussian length penalty,
x10). ``COCOEvalCap.evaluate`` also runs METEOR and SPICE, which need Java and SPICE downloads CoreNLP, so we call the
tokenizer and ``Cider`` directly instead (no downloads, no files outside pycocoevalcap's own temp file).

Quirk of the official pipeline, kept on purpose: the filter lists ``-LRB-`` etc. in upper case, but ``-lowerCase``
makes the tokenizer emit ``-lrb-``, so bracket tokens survive (``"hat (red)"`` -> ``"hat -lrb- red -rrb-"``).

The PTB tokenizer is a Java program. Without ``java`` on ``PATH`` we fall back to :func:`fallback_ptb_tokenize`, a
pure-Python approximation (lower-case, split clitics and punctuation the way PTB does for ordinary captions, drop the
same punctuation tokens and double quotes, keep brackets as ``-lrb-`` etc.). Scores computed that way are flagged
``official: False`` and a warning is logged: they are close to, but not guaranteed equal to, official numbers.

Scale: pycocoevalcap returns CIDEr around 0.8-1.3 for good captioners; the paper's Table 1 reports it x100 (e.g.
87.9 on Flickr30K). ``CIDEr`` in the returned dict is on the paper's scale, ``CIDEr_raw`` on pycocoevalcap's.
IDF comes from the references being scored, so a subset's score is not comparable to the full split's, and with a
single image every n-gram has zero IDF (score 0).
"""

import logging
import re
import shutil
import unicodedata
from typing import Dict, Hashable, List, Mapping, Sequence

logger = logging.getLogger(__name__)

__all__ = ["cider", "fallback_ptb_tokenize", "PTB_PUNCTUATION"]

# Tokens removed after PTB tokenization (pycocoevalcap ptbtokenizer.PUNCTUATIONS).
PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
# PTB turns " into `` / '' (both removed). It turns brackets into -LRB- etc., but with -lowerCase they come out as
# -lrb- and so survive the upper-case filter above: official tokens keep them, and so does the fallback.
_FALLBACK_DROP = PTB_PUNCTUATION | {'"'}
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "{": "-lcb-", "}": "-rcb-", "[": "-lsb-", "]": "-rsb-"}
# PTB splits clitics off the word they follow ("don't" -> "do n't", "man's" -> "man 's") and a few fused forms.
_NOT_CLITIC = re.compile(r"(\w)(n't)\b")
_OTHER_CLITIC = re.compile(r"(\w)('(?:s|re|ve|ll|d|m))\b")
_FUSED = re.compile(r"\b(can)(not)\b|\b(gon|got|wan)(na)\b")
# Order matters: clitics, ellipsis, dashes, runs of ! or ?, dotted abbreviations (u.s., e.g.) first; words may
# contain inner - . , / & ' (t-shirt, 3.5, 1,000, o'clock).
_FALLBACK_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|\.\.\.|--|[!?]+|(?:[a-z]\.){2,}(?!\w)|\w+(?:[-.,/&']\w+)*|\S")


def fallback_ptb_tokenize(text: str) -> str:
    """Approximate pycocoevalcap's PTB tokenization + punctuation removal without Java.

    Agrees with the Java tokenizer on ordinary captions (see the tests); rare constructs (SGML-like ``<tags>``,
    quotes inside words) may differ.

    Args:
        text: A raw caption.

    Returns:
        Space-joined lower-cased tokens, e.g. ``"A man's hat (red)."`` -> ``"a man 's hat -lrb- red -rrb-"``.
    """
    text = unicodedata.normalize("NFC", text.lower())
    text = _NOT_CLITIC.sub(r"\1 \2", text)
    text = _OTHER_CLITIC.sub(r"\1 \2", text)
    text = _FUSED.sub(lambda m: " ".join(g for g in m.groups() if g), text)
    tokens = (_BRACKETS.get(tok, tok) for tok in _FALLBACK_TOKEN.findall(text))
    return " ".join(tok for tok in tokens if tok not in _FALLBACK_DROP)


def _ptb_tokenize(captions: Mapping[Hashable, Sequence[str]]) -> Dict[Hashable, List[str]]:
    """Run pycocoevalcap's Java PTB tokenizer on ``{id: [caption, ...]}``; blank captions stay blank.

    The Java tool is line-based and pycocoevalcap pairs output lines with ids by position, so every caption is put
    on one line (all whitespace runs collapsed) and blank captions are not sent at all (a trailing blank line could
    be dropped and shift the pairing); their tokenization is ``""`` either way.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    single_line = {key: [" ".join(c.split()) for c in caps] for key, caps in captions.items()}
    to_send = {key: [{"caption": c} for c in caps if c] for key, caps in single_line.items()}
    to_send = {key: caps for key, caps in to_send.items() if caps}
    tokenized = PTBTokenizer().tokenize(to_send) if to_send else {}

    out: Dict[Hashable, List[str]] = {}
    for key, caps in single_line.items():
        sent = iter(tokenized.get(key, []))
        out[key] = [next(sent) if c else "" for c in caps]
        if next(sent, None) is not None:
            raise RuntimeError(f"PTB tokenizer returned more captions than sent for id {key!r}")
    return out


def _validate(predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]) -> None:
    pred_keys, ref_keys = set(predictions), set(references)
    if pred_keys != ref_keys:
        missing = sorted(map(repr, ref_keys - pred_keys))[:5]
        extra = sorted(map(repr, pred_keys - ref_keys))[:5]
        raise ValueError(
            f"predictions and references must have identical ids: {len(ref_keys - pred_keys)} ids without a "
            f"prediction (e.g. {missing}), {len(pred_keys - ref_keys)} predictions without references (e.g. {extra})"
        )
    if not predictions:
        raise ValueError("no predictions to score")
    for key, refs in references.items():
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(f"references for id {key!r} must be a non-empty list of strings, got {refs!r}")
        if not all(isinstance(r, str) for r in refs):
            raise ValueError(f"references for id {key!r} contain a non-string: {refs!r}")
        if not isinstance(predictions[key], str):
            raise ValueError(f"prediction for id {key!r} must be a string, got {predictions[key]!r}")


def cider(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    return_per_image: bool = False,
) -> dict:
    """Corpus CIDEr-D of one caption per image against its reference captions.

    Args:
        predictions: ``{image_id: generated caption}``.
        references: ``{image_id: [reference caption, ...]}`` with exactly the same ids.
        return_per_image: Also return each image's score (paper scale) under ``per_image``.

    Returns:
        ``{"CIDEr": x100 score, "CIDEr_raw": pycocoevalcap score, "num_images": n, "tokenizer": "ptb" | "fallback",
        "official": bool}`` (+ ``per_image``). ``official`` is True only with the Java PTB tokenizer.

    Raises:
        ValueError: If the id sets differ, there are no images, or an image has no references.
    """
    _validate(predictions, references)
    from pycocoevalcap.cider.cider import Cider

    if len(predictions) == 1:
        logger.warning("CIDEr on a single image is always 0: its IDF is computed from one reference set")

    tokenizer = "fallback"
    if shutil.which("java") is None:
        logger.warning(
            "java not found on PATH: CIDEr uses the pure-Python fallback tokenizer; scores are NOT official "
            "(install a JRE, e.g. Debian openjdk-17-jre-headless, for the official PTB tokenizer)"
        )
    else:
        try:
            refs_tok = _ptb_tokenize(references)
            preds_tok = _ptb_tokenize({key: [caption] for key, caption in predictions.items()})
            tokenizer = "ptb"
        except OSError as err:  # e.g. pycocoevalcap's package directory is read-only (it writes a temp file there)
            logger.warning("PTB tokenizer failed (%s): CIDEr uses the fallback tokenizer; scores are NOT official", err)
    if tokenizer == "fallback":
        refs_tok = {key: [fallback_ptb_tokenize(r) for r in refs] for key, refs in references.items()}
        preds_tok = {key: [fallback_ptb_tokenize(caption)] for key, caption in predictions.items()}

    score, per_image = Cider().compute_score(refs_tok, preds_tok)
    result = {
        "CIDEr": 100.0 * float(score),
        "CIDEr_raw": float(score),
        "num_images": len(predictions),
        "tokenizer": tokenizer,
        "official": tokenizer == "ptb",
    }
    if return_per_image:
        # Cider iterates gts.keys(), i.e. the insertion order of refs_tok, which follows ``references``.
        result["per_image"] = {key: 100.0 * float(s) for key, s in zip(refs_tok.keys(), per_image)}
    return result
