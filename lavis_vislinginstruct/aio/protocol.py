"""What :class:`~lavis_vislinginstruct.aio.optimizer.InstructionOptimizer` needs from a vision-language model.

AIO (VisLingInstruct, section 3.2) uses the model in four ways: it builds the visual prefix of an (image,
instruction) pair (the Q-Former reads the instruction), generates text after such a prefix or from the LLM alone
(the rewrite of Appendix B needs no image), scores a continuation by its negative log-likelihood (the IAS of
eq. 3), and counts tokens (to cap what it generates and to note truncation). Any model that provides these
methods can be optimized: VisLingInstruct itself (``inference/backend.py``) and HF's image-text-to-text models
(``models/hf_vlm.py``: LLaVA-1.5, LLaVA-NeXT, Qwen2-VL, ..., whose image tokens do not read the instruction, and
InstructBLIP, whose family is ``models/hf_backend.py``, also usable alone on pixel values).

Image features are whatever the backend's :meth:`AIOBackend.encode_images` returns (computed once per call and
reused by every stage); the optimizer only passes them back with row indices.
"""
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

#: A visual prefix: whatever the backend needs to put the image before a prompt (e.g. embeddings and a mask).
Prefix = Any


@runtime_checkable
class AIOBackend(Protocol):
    """The model side of AIO; every method works on a batch."""

    def encode_images(self, images: Any) -> Any:
        """Image features of a batch of processed images, computed once and indexed by row afterwards."""

    def visual_prefix(self, features: Any, rows: Sequence[int], texts: Sequence[str]) -> Prefix:
        """The prefix of image ``features[rows[i]]`` read together with ``texts[i]`` (the Q-Former's text)."""

    def prefix_rows(self, prefix: Prefix, rows: Sequence[int]) -> Prefix:
        """The rows ``rows`` of a prefix (the comparison stage reuses the IAS stage's prefixes)."""

    def generate(self, prefix: Optional[Prefix], prompts: Sequence[str], decoding: Dict[str, Any]) -> List[str]:
        """Greedy or beam generation of one text per prompt, after ``prefix`` (``None``: the LLM alone).

        ``decoding`` holds ``num_beams``, ``max_new_tokens`` and ``prompt_lookup_num_tokens``.
        """

    def continuation_nll(self, prefix: Prefix, prompts: Sequence[str], continuations: Sequence[str]) -> List[float]:
        """Mean token NLL of each ``continuation`` followed by the end-of-sequence token, after prefix + prompt."""

    def llm_token_counts(self, texts: Sequence[str]) -> List[int]:
        """Number of LLM tokens of each text."""

    def generation_room(self, prompts: Sequence[str], visual: bool) -> Optional[int]:
        """New tokens the LLM's context leaves after the longest of ``prompts`` (and the visual tokens, with
        ``visual``), or None when the LLM has no fixed context."""

    def qformer_token_budget(self, texts: Sequence[str]) -> List[Tuple[int, int]]:
        """(tokens, budget) of each text as the Q-Former reads it; tokens beyond the budget are cut."""

    def cache_token(self) -> Any:
        """A value that changes whenever the weights that generate rewrites change (part of the cache key)."""
