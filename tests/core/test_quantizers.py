"""Invariants shared by every quantizer kind (vq with gradient or EMA codebook, cvq, vqct)."""

from __future__ import annotations

import pytest
import torch
from core_helpers import QUANTIZER_KINDS, make_tokenizer


@pytest.fixture(params=QUANTIZER_KINDS)
def tokenizer(request, word_spec):
    return make_tokenizer(request.param, word_spec)


def test_decode_of_encode_equals_decoding_the_quantized_latent_in_eval(tokenizer, images):
    tokenizer.eval()
    with torch.no_grad():
        out = tokenizer(images)
        indices = tokenizer.encode(images)
        assert indices.dtype == torch.int64
        assert indices.shape == (2, 8, 8) == (2, *tokenizer.grid_size)
        assert torch.equal(indices, out.quant.indices)
        assert int(indices.max()) < tokenizer.codebook_size
        assert torch.equal(tokenizer.embed(indices), out.quant.quantized)
        assert torch.equal(tokenizer.decode(indices), tokenizer.decode_quantized(out.quant.quantized))
        assert torch.equal(out.reconstruction, tokenizer.decode(indices))


def test_encode_does_not_change_quantizer_state(tokenizer, images):
    tokenizer.train()
    before = {k: v.clone() for k, v in tokenizer.quantizer.state_dict().items()}
    tokenizer.encode(images)
    after = tokenizer.quantizer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def _codebook_params(tokenizer):
    return [p for n, p in tokenizer.quantizer.named_parameters()]


def _grad_norm(params):
    return sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)


def test_gradient_routing(tokenizer, images):
    """Codebook term reaches only the codebook; commitment and reconstruction reach the encoder, not the
    codebook."""
    tokenizer.train()
    encoder_params = list(tokenizer.encoder.parameters())
    code_params = [p for p in _codebook_params(tokenizer) if p.requires_grad]
    out = tokenizer(images)
    if "codebook" in out.quant.losses:
        tokenizer.zero_grad()
        out.quant.losses["codebook"].backward(retain_graph=True)
        assert _grad_norm(code_params) > 0
        assert _grad_norm(encoder_params) == 0
    tokenizer.zero_grad()
    out.quant.losses["commitment"].backward(retain_graph=True)
    assert _grad_norm(encoder_params) > 0
    assert _grad_norm(code_params) == 0
    tokenizer.zero_grad()
    (out.reconstruction - images).abs().mean().backward()
    assert _grad_norm(encoder_params) > 0
    assert _grad_norm(code_params) == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_indices_in_range_and_gradients_finite(tokenizer, images, dtype):
    tokenizer.train()
    with torch.autocast("cpu", dtype=dtype):
        losses = tokenizer.training_losses({"images": images}, step=0)
    indices = losses.output.quant.indices
    assert indices.dtype == torch.int64
    assert 0 <= int(indices.min()) and int(indices.max()) < tokenizer.codebook_size
    assert torch.isfinite(losses.total)
    losses.total.backward()
    grads = [p.grad for p in tokenizer.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(v.dtype == torch.float32 for v in losses.output.quant.losses.values())


def test_usage_counts_every_position(tokenizer, images):
    tokenizer.eval()
    with torch.no_grad():
        out = tokenizer(images)
    positions = images.shape[0] * 8 * 8
    expected = positions * (2 if tokenizer.config.base == "vqct" else 1)  # vqct: adjective + noun counts
    assert float(out.quant.usage.sum()) == expected
    assert 1.0 <= float(out.quant.perplexity) <= out.quant.usage.numel()


@pytest.mark.parametrize("kind", ["vq", "cvq", "vqct"])
def test_legacy_moves_beta_to_the_codebook_term(kind, word_spec, images):
    torch.manual_seed(0)
    standard = make_tokenizer(kind, word_spec, codebook_weight=1.0, commitment_weight=0.25)
    torch.manual_seed(0)
    legacy = make_tokenizer(kind, word_spec, codebook_weight=1.0, commitment_weight=0.25, legacy=True)
    standard.eval()
    legacy.eval()
    with torch.no_grad():
        a = standard(images).quant.losses
        b = legacy(images).quant.losses
    # same raw terms, swapped weights: standard (cb 1, commit .25) vs legacy (cb .25, commit 1)
    torch.testing.assert_close(a["codebook"] * 0.25, b["codebook"])
    torch.testing.assert_close(a["commitment"] * 4.0, b["commitment"])
