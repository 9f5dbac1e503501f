"""The content check of AIO: which of a sample's task spans (question, options, OCR tokens, history) an instruction
kept. The paper uses the generated instruction as it is; checking it is our addition (``aio.guard``)."""
from typing import List, Sequence


def normalize_span(text: str) -> str:
    """Lower-cased with runs of whitespace as one space (spans match case- and spacing-insensitively)."""
    return " ".join(text.lower().split())


def missing_spans(text: str, spans: Sequence[str]) -> List[str]:
    """The non-empty spans that ``text`` does not contain (case- and whitespace-insensitive)."""
    low = normalize_span(text)
    return [s for s in spans if s and normalize_span(s) not in low]
