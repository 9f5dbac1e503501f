"""CMAA (paper eq. 1): values against a hand-written softmax, masking, scaling and gradient flow."""
import math

import pytest
import torch

from lavis_vislinginstruct.models.cross_modal_attention import CrossModalAlignmentAttention


def reference(q, t, mask, scale):
    """Loop form of eq. 1: for each query, a softmax over the real instruction tokens only."""
    out = torch.zeros_like(q)
    for b in range(q.size(0)):
        keep = t[b][mask[b].bool()]  # (n_b, D)
        for i in range(q.size(1)):
            w = torch.softmax(keep @ q[b, i] * scale, dim=0)
            out[b, i] = (w[:, None] * keep).sum(0)
    return out


@pytest.mark.parametrize("scale", ["inv_sqrt_d", "none"])
def test_matches_loop_reference(scale):
    g = torch.Generator().manual_seed(0)
    q, t = torch.randn(2, 4, 16, generator=g), torch.randn(2, 5, 16, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    got = CrossModalAlignmentAttention(scale)(q, t, mask)
    factor = 1 / math.sqrt(16) if scale == "inv_sqrt_d" else 1.0
    assert got.shape == (2, 4, 16)
    torch.testing.assert_close(got, reference(q, t, mask, factor))


def test_padding_does_not_change_the_result():
    g = torch.Generator().manual_seed(1)
    q, t = torch.randn(1, 3, 8, generator=g), torch.randn(1, 2, 8, generator=g)
    cmaa = CrossModalAlignmentAttention()
    short = cmaa(q, t, torch.ones(1, 2))
    padded = cmaa(q, torch.cat([t, 100 * torch.randn(1, 3, 8, generator=g)], 1), torch.tensor([[1, 1, 0, 0, 0]]))
    torch.testing.assert_close(short, padded)


def test_single_token_returns_that_token():
    q, t = torch.randn(2, 3, 8), torch.randn(2, 1, 8)
    torch.testing.assert_close(CrossModalAlignmentAttention()(q, t, torch.ones(2, 1)), t.expand(2, 3, 8))


def test_gradients_reach_queries_and_text():
    q = torch.randn(1, 2, 8, requires_grad=True)
    t = torch.randn(1, 3, 8, requires_grad=True)
    CrossModalAlignmentAttention()(q, t, torch.ones(1, 3)).sum().backward()
    assert q.grad.abs().sum() > 0 and t.grad.abs().sum() > 0


def test_unknown_scale_rejected():
    with pytest.raises(ValueError, match="cmaa.scale"):
        CrossModalAlignmentAttention("sqrt")
