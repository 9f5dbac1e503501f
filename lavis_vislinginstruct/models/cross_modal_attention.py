"""Cross-Modal Alignment Attention (CMAA), VisLingInstruct eq. 1 (Zhu et al., NAACL 2024, section 3.1).

    U_mm = softmax(emb_que · emb_text^T) · emb_text

The Q-Former's query outputs are the attention queries; the instruction's token states from the same Q-Former
pass are both keys and values; padding tokens are masked. The module has no parameters: the paper trains only
the projection into the LLM, and eq. 1 has no projection matrices. We scale the logits by 1/sqrt(d) by default
(``scale="inv_sqrt_d"``): without it, dot products of LayerNorm-ed 768-d states are in the hundreds and the
softmax collapses to a one-hot choice of a single token. ``scale="none"`` computes eq. 1 exactly as printed.
"""
import math

import torch
import torch.nn as nn

from .config import choice


class CrossModalAlignmentAttention(nn.Module):
    """Parameter-free attention of query outputs over instruction token states."""

    def __init__(self, scale: str = "inv_sqrt_d"):
        super().__init__()
        self.scale = choice(scale, {"inv_sqrt_d", "none"}, "cmaa.scale")

    def forward(self, query_states: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Return U_mm.

        Args:
            query_states: Q-Former query outputs, (B, Q, D).
            text_states: Q-Former outputs at the instruction's token positions, (B, N, D).
            text_mask: 1 for real instruction tokens, 0 for padding, (B, N); every row needs one real token.

        Returns:
            U_mm, (B, Q, D): per query, the attention-weighted mix of instruction token states.
        """
        logits = torch.matmul(query_states, text_states.transpose(1, 2))  # (B, Q, N)
        if self.scale == "inv_sqrt_d":
            logits = logits / math.sqrt(query_states.size(-1))
        logits = logits.masked_fill(text_mask[:, None, :] == 0, torch.finfo(logits.dtype).min)
        weights = logits.softmax(dim=-1)  # (B, Q, N)
        return torch.matmul(weights, text_states)  # (B, Q, D)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
