"""VisLingInstruct seen through AIO's protocol (:class:`lavis_vislinginstruct.aio.protocol.AIOBackend`).

The model owns an :class:`~lavis_vislinginstruct.aio.optimizer.InstructionOptimizer` and gives it this adapter:
image features are the ViT output after ``ln_vision`` (computed once per call), the visual prefix is the model's
own (Q-Former reading the given text, CMAA if enabled, projection), and generation / continuation NLL are the LLM
adapter's (``llm_adapters.py``), so AIO sees exactly what the answer will see.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch


class VisLingInstructBackend:
    """The AIO protocol on a VisLingInstruct model (held by the model; no state of its own)."""

    def __init__(self, model: torch.nn.Module):
        self._model = [model]  # a list keeps the owner out of nn.Module attribute registration

    @property
    def model(self):
        return self._model[0]

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``encode_image``: (B, 3, H, W) -> (B, N_img, W)."""
        return self.model.encode_image(images)

    def visual_prefix(self, features: torch.Tensor, rows: Sequence[int], texts: Sequence[str]) -> Tuple:
        """(embeds, mask) of image ``features[rows[i]]`` with ``texts[i]`` as the Q-Former's text."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=features.device)
        return self.model.visual_prefix(features.index_select(0, index), list(texts))

    def prefix_rows(self, prefix: Tuple, rows: Sequence[int]) -> Tuple:
        """Rows ``rows`` of an (embeds, mask) prefix."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=prefix[0].device)
        return prefix[0].index_select(0, index), prefix[1].index_select(0, index)

    def generate(self, prefix: Optional[Tuple], prompts: Sequence[str], decoding: Dict[str, Any]) -> List[str]:
        """Greedy/beam decoding with the LLM adapter (``prefix`` None: the LLM alone, no visual tokens)."""
        embeds, mask = prefix if prefix is not None else (None, None)
        kwargs = dict(
            num_beams=decoding.get("num_beams", 1), max_length=decoding["max_new_tokens"], min_length=1,
            do_sample=False, top_p=0.9, temperature=1.0, repetition_penalty=1.0, length_penalty=1.0,
            num_return_sequences=1,
        )
        if decoding.get("prompt_lookup_num_tokens"):
            kwargs["prompt_lookup_num_tokens"] = decoding["prompt_lookup_num_tokens"]
        return self.model.adapter.generate(embeds, mask, list(prompts), **kwargs)

    def continuation_nll(self, prefix: Tuple, prompts: Sequence[str], continuations: Sequence[str]) -> List[float]:
        """Mean NLL of ``continuation </s>`` after ``[visual][prompt]`` (the official IAS target)."""
        embeds, mask = prefix
        nll = self.model.adapter.continuation_nll(embeds, mask, list(prompts), list(continuations), add_eos=True)
        return nll.float().tolist()

    def llm_token_counts(self, texts: Sequence[str]) -> List[int]:
        """LLM tokens of each text (special tokens included, as the adapter tokenizes prompts)."""
        return [len(ids) for ids in self.model.adapter.tokenizer(list(texts)).input_ids]

    def qformer_token_budget(self, texts: Sequence[str]) -> List[Tuple[int, int]]:
        """(Q-Former tokens, ``qformer.max_txt_len``) of each text."""
        limit = self.model.cfg.qformer.max_txt_len
        return [(len(ids), limit) for ids in self.model.tokenizer(list(texts)).input_ids]

    def cache_token(self) -> Any:
        """Changes when the LLM object is replaced or the model's weights were (re)loaded or trained."""
        return (id(self.model.llm), self.model.weights_version)
