"""Checks of what the model's entry points receive in ``samples``: the texts and the candidate lists.

Pure functions: each returns the per-sample lists the model uses, or raises a ``ValueError`` that names the key, the
sample index and what is wrong (``samples['text_input'] must be a list of strings; item 0 is int``), instead of
the ``TypeError`` or misleading message that the failure deeper in the model would give.
"""
from typing import Any, Dict, List, Optional


def instruction_list(
    samples: Dict[str, Any], key: str, n: Optional[int], default: str = "", allow_empty: bool = False
) -> List[str]:
    """``samples[key]`` as one string per sample.

    Args:
        samples: The model's input dict.
        key: The text field (``text_input``, ``text_output``, ``prompt``).
        n: Number of samples (images), or None if unknown: a single string is repeated ``n`` times (once if None).
            The length of a list is the caller's to check (against the images, or the instructions).
        default: Used when ``key`` is absent (LAVIS's ``prompt``); empty: the key is required.
        allow_empty: Accept empty strings (training targets).

    Returns:
        The texts, one per sample.

    Raises:
        ValueError: If the key is missing or None, the value is not a string or a list of strings, or (unless
            ``allow_empty``) a text is empty.
    """
    name = f"samples[{key!r}]"
    if key not in samples and not default:
        also = " (or samples['text_input'])" if key == "prompt" else ""  # the model reads either (LAVIS's prompt)
        raise ValueError(f"{name}{also} is missing: give one instruction (a string) per sample")
    value = samples.get(key, default)
    if value is None:
        raise ValueError(f"{name} is None: it must be a list of strings, one per sample")
    if isinstance(value, str):
        value = [value] * (1 if n is None else n)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings; got {type(value).__name__}")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise ValueError(f"{name} must be a list of strings; item {i} is {type(text).__name__}")
        if not allow_empty and not text.strip():
            raise ValueError(f"{name}[{i}] is empty: every sample needs a non-empty instruction")
    return list(value)


def candidate_lists(candidates: Any, n: int) -> List[List[str]]:
    """The candidates of ``predict_class`` as one list per sample.

    Args:
        candidates: One list of strings per sample, or one list shared by all ``n`` samples.
        n: Number of samples.

    Returns:
        ``n`` lists of candidate strings.

    Raises:
        ValueError: If there are none, the number of lists is not ``n``, a list is empty, holds a non-string or empty
            string, or holds the same candidate twice (both copies would be ranked, and an index into the list
            would no longer name one answer).
    """
    if candidates is None:
        raise ValueError("predict_class needs candidates (argument or samples['candidates'])")
    if isinstance(candidates, str):
        raise ValueError("candidates must be a list of strings (or one list per sample), got a string")
    candidates = list(candidates)
    if candidates and all(isinstance(c, str) for c in candidates):
        candidates = [candidates] * n
    if len(candidates) != n:
        raise ValueError(f"{n} samples but {len(candidates)} candidate lists")
    out = []
    for i, cands in enumerate(candidates):
        if isinstance(cands, str) or not isinstance(cands, (list, tuple)):
            raise ValueError(f"sample {i}: candidates must be a list of strings, got {type(cands).__name__}")
        if len(cands) == 0:
            raise ValueError(f"sample {i} has an empty candidate list")
        seen: Dict[str, int] = {}
        for j, cand in enumerate(cands):
            if not isinstance(cand, str) or not cand.strip():
                raise ValueError(f"sample {i} has an empty or non-string candidate: item {j} is {cand!r}")
            if cand in seen:
                raise ValueError(f"sample {i} has the candidate {cand!r} twice (items {seen[cand]} and {j})")
            seen[cand] = j
        out.append(list(cands))
    return out
