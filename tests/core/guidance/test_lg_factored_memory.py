"""The decoder's factored cross-attention is the same function as the plain one on the projected tokens."""

from __future__ import annotations

import pytest
import torch

from lgvq_core.guidance.semantic_alignment import FactoredMemory, MaskedTextDecoder


@pytest.mark.parametrize("norm_first", [False, True])
def test_factored_memory_equals_the_materialized_visual_tokens(norm_first: bool) -> None:
    torch.manual_seed(0)
    decoder = MaskedTextDecoder(24, layers=2, heads=3, dropout=0.0, norm_first=norm_first).eval()
    text = torch.randn(3, 7, 24)
    valid = torch.ones(3, 7, dtype=torch.bool)
    valid[1, 5:] = False
    features = torch.randn(3, 11, 8, requires_grad=True)
    proj = torch.randn(8, 24, requires_grad=True)

    plain = decoder(text, features @ proj, valid)
    grads_plain = torch.autograd.grad(
        plain.square().sum(), [features, proj, decoder.layers[0].multihead_attn.in_proj_weight]
    )
    factored = decoder(text, FactoredMemory(features, proj), valid)
    grads_factored = torch.autograd.grad(
        factored.square().sum(), [features, proj, decoder.layers[0].multihead_attn.in_proj_weight]
    )

    torch.testing.assert_close(factored, plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_factored, grads_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_factored_memory_respects_the_heads_split() -> None:
    """A wrong head split would still give the right shape; with distinct heads the outputs must differ from a
    one-head decoder carrying the same weights."""
    torch.manual_seed(1)
    three = MaskedTextDecoder(24, layers=1, heads=3, dropout=0.0).eval()
    one = MaskedTextDecoder(24, layers=1, heads=1, dropout=0.0).eval()
    one.load_state_dict(three.state_dict())
    text, valid = torch.randn(2, 5, 24), torch.ones(2, 5, dtype=torch.bool)
    memory = FactoredMemory(torch.randn(2, 9, 6), torch.randn(6, 24))
    torch.testing.assert_close(three(text, memory, valid), three(text, memory.materialize(), valid))
    assert not torch.allclose(three(text, memory, valid), one(text, memory, valid), atol=1e-3)
