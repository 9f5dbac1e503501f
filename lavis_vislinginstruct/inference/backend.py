"""VisLingInstruct seen through AIO's protocol (:class:`lavis_vislinginstruct.aio.protocol.AIOBackend`), for one row.

A :class:`~.pipeline.VisLingInstructPipeline` gives its
:class:`~lavis_vislinginstruct.aio.optimizer.InstructionOptimizer` this backend: image features are the ViT output
after ``ln_vision`` (computed once per call), the visual prefix is the model's own for the row's CMAA switch and
projection (the Q-Former reads the given text), and generation / continuation NLL are the model's LLM adapter's, so
AIO sees exactly what the answer will see.

Within one call (one features tensor) every (image row, text) prefix is computed once: IAS computes the prefixes
of the initial and rewritten instructions, the comparison stage and the answer reuse them, and only a text not
seen before (the optimized instruction) costs a Q-Former pass. A new features tensor starts a new memo.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..models.generation import Decoding


class VisLingInstructBackend:
    """The AIO protocol on a VisLingInstruct model with a row's CMAA switch and projection.

    Args:
        model: The model (not owned: the backend only calls it).
        cmaa: CMAA on or off in every visual prefix.
        projection: ``base`` or ``finetuned`` (:meth:`VisLingInstruct.visual_prefix`).
    """

    def __init__(self, model: torch.nn.Module, cmaa: bool, projection: str):
        self.model = model
        self.cmaa = cmaa
        self.projection = projection
        self._features: Optional[torch.Tensor] = None
        self._prefixes: Dict[Tuple[int, str], Tuple[torch.Tensor, torch.Tensor]] = {}

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``encode_image``: (B, 3, H, W) -> (B, N_img, W)."""
        return self.model.encode_image(images)

    def visual_prefix(self, features: torch.Tensor, rows: Sequence[int], texts: Sequence[str]) -> Tuple:
        """(embeds, mask) of image ``features[rows[i]]`` with ``texts[i]`` as the Q-Former's text (memoized)."""
        if features is not self._features:
            self.forget()
            self._features = features
        keys = [(int(r), t) for r, t in zip(rows, texts)]
        todo = list(dict.fromkeys(k for k in keys if k not in self._prefixes))
        if todo:
            index = torch.as_tensor([r for r, _ in todo], dtype=torch.long, device=features.device)
            embeds, mask = self.model.visual_prefix(
                features.index_select(0, index), [t for _, t in todo], cmaa=self.cmaa, projection=self.projection
            )
            for i, key in enumerate(todo):
                self._prefixes[key] = (embeds[i], mask[i])
        return (torch.stack([self._prefixes[k][0] for k in keys]), torch.stack([self._prefixes[k][1] for k in keys]))

    def forget(self) -> None:
        """Drop the memoized prefixes (the pipeline calls this when a call ends)."""
        self._features, self._prefixes = None, {}

    def prefix_rows(self, prefix: Tuple, rows: Sequence[int]) -> Tuple:
        """Rows ``rows`` of an (embeds, mask) prefix."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=prefix[0].device)
        return prefix[0].index_select(0, index), prefix[1].index_select(0, index)

    def generate(self, prefix: Optional[Tuple], prompts: Sequence[str], decoding: Dict[str, Any]) -> List[str]:
        """Greedy/beam decoding with the LLM adapter (``prefix`` None: the LLM alone, no visual tokens)."""
        embeds, mask = prefix if prefix is not None else (None, None)
        settings = Decoding.from_aio(decoding)
        return self.model.adapter.generate(
            embeds, mask, list(prompts), settings, prompt_lookup=decoding.get("prompt_lookup_num_tokens") or 0
        )

    def continuation_nll(self, prefix: Tuple, prompts: Sequence[str], continuations: Sequence[str]) -> List[float]:
        """Mean NLL of ``continuation </s>`` after ``[visual][prompt]`` (the official IAS target)."""
        embeds, mask = prefix
        nll = self.model.adapter.continuation_nll(embeds, mask, list(prompts), list(continuations), add_eos=True)
        return nll.float().tolist()

    def llm_token_counts(self, texts: Sequence[str]) -> List[int]:
        """LLM tokens of each text (special tokens included, as the adapter tokenizes prompts)."""
        return self.model.adapter.token_counts(texts)

    def generation_room(self, prompts: Sequence[str], visual: bool) -> Optional[int]:
        """New tokens the LLM's context leaves after the longest prompt and, with ``visual``, the row's visual
        tokens (32 query outputs, 64 with CMAA)."""
        queries = self.model.cfg.qformer.num_query_token * (2 if self.cmaa else 1)
        return self.model.adapter.generation_room(prompts, queries if visual else 0)

    def qformer_token_budget(self, texts: Sequence[str]) -> List[Tuple[int, int]]:
        """(Q-Former tokens, ``qformer.max_txt_len``) of each text."""
        limit = self.model.cfg.qformer.max_txt_len
        return [(len(ids), limit) for ids in self.model.tokenizer(list(texts)).input_ids]

    def cache_token(self) -> int:
        """Changes when the LLM's weights change (rewrites read the LLM alone)."""
        return self.model.adapter.weights_token()
