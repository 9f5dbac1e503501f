"""One decoding configuration for every entry point, with HF transformers' names.

:class:`Decoding` is what the LLM adapters, :class:`~lavis_vislinginstruct.inference.pipeline.VisLingInstructPipeline`,
the evaluation tasks, the chat, the web demo and the lmms-eval adapter pass around, unchanged. LAVIS's names
(``max_length``/``min_length``, which count new tokens in InstructBLIP, ``use_nucleus_sampling``, ``num_captions``)
exist only at the LAVIS API boundary (``VisLingInstruct.generate``/``predict_answers`` and the run keys
``max_len``/``min_len``), where :meth:`Decoding.from_lavis` translates them.
"""
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional


@dataclass(frozen=True)
class Decoding:
    """How text is generated (HF ``generate``'s names and meanings).

    Attributes:
        max_new_tokens: Cap on generated tokens.
        min_new_tokens: Floor on generated tokens.
        num_beams: Beam width (1: greedy or sampling).
        do_sample: Nucleus sampling instead of greedy/beam search.
        temperature: Sampling temperature (used only with ``do_sample``).
        top_p: Nucleus mass (used only with ``do_sample``).
        repetition_penalty: HF's repetition penalty (1: none).
        length_penalty: HF's length penalty (beam search only).
        num_return_sequences: Texts per sample.
    """

    max_new_tokens: int = 30
    min_new_tokens: int = 1
    num_beams: int = 5
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 0.9
    repetition_penalty: float = 1.0
    length_penalty: float = 1.0
    num_return_sequences: int = 1

    def __post_init__(self):
        checks = [
            ("max_new_tokens", self.max_new_tokens >= 1, "must be >= 1"),
            ("min_new_tokens", 0 <= self.min_new_tokens <= self.max_new_tokens, "must be in [0, max_new_tokens]"),
            ("num_beams", self.num_beams >= 1, "must be >= 1"),
            ("temperature", self.temperature > 0, "must be > 0"),
            ("top_p", 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("repetition_penalty", self.repetition_penalty > 0, "must be > 0"),
            ("num_return_sequences", self.num_return_sequences >= 1, "must be >= 1"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"decoding {name} {rule}, got {getattr(self, name)!r}")

    @classmethod
    def from_lavis(
        cls,
        max_length: int = 256,
        min_length: int = 1,
        num_beams: int = 5,
        use_nucleus_sampling: bool = False,
        top_p: float = 0.9,
        temperature: float = 1.0,
        repetition_penalty: float = 1.5,
        length_penalty: float = 1.0,
        num_captions: int = 1,
    ) -> "Decoding":
        """LAVIS InstructBLIP ``generate`` arguments (and defaults); ``max_length``/``min_length`` count new tokens."""
        return cls(
            max_new_tokens=int(max_length), min_new_tokens=int(min_length), num_beams=int(num_beams),
            do_sample=bool(use_nucleus_sampling), temperature=float(temperature), top_p=float(top_p),
            repetition_penalty=float(repetition_penalty), length_penalty=float(length_penalty),
            num_return_sequences=int(num_captions),
        )

    @classmethod
    def from_aio(cls, settings: Dict[str, Any]) -> "Decoding":
        """What an AIO backend decodes a rewrite or comparison with: the optimizer's settings (``max_new_tokens``,
        ``num_beams``; :class:`~lavis_vislinginstruct.aio.protocol.AIOBackend`), greedy, no penalties."""
        return cls(max_new_tokens=settings["max_new_tokens"], min_new_tokens=1, num_beams=settings.get("num_beams", 1),
                   repetition_penalty=1.0)

    @property
    def streams(self) -> bool:
        """Whether tokens can stream (transformers streams greedy search and sampling, not beam search)."""
        return self.num_beams == 1

    def replace(self, **changes: Any) -> "Decoding":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def hf_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of HF ``generate``."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]]) -> "Decoding":
        """A decoding from a dict of its fields; an unknown key is an error naming it."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown decoding setting(s) {unknown}; settings: {sorted(known)}")
        return cls(**data)
