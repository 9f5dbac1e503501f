"""Per-sample negative log-likelihoods computed from logits (no forked LLM code with ``reduction="none"``)."""
import torch

IGNORE_INDEX = -100


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """NLL of each label under the aligned logits; 0 where the label is ``IGNORE_INDEX``.

    Args:
        logits: (B, T, V), ``logits[:, t]`` predicts ``labels[:, t]`` (callers shift causal LMs).
        labels: (B, T) token ids or ``IGNORE_INDEX``.

    Returns:
        (B, T) float32 NLLs.
    """
    valid = labels != IGNORE_INDEX
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return -picked * valid


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-sample NLL of the labelled tokens: ``mean`` over them (default) or their ``sum``; (B,)."""
    nll = token_nll(logits, labels)
    if reduction == "sum":
        return nll.sum(-1)
    if reduction == "mean":
        count = (labels != IGNORE_INDEX).sum(-1)
        if (count == 0).any():
            raise ValueError("sequence_nll: a sample has no labelled token to score")
        return nll.sum(-1) / count
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
