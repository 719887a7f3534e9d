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
    # vqct: each of the topk adjective selections + the noun selection of a position
    per_position = tokenizer.quantizer.topk + 1 if tokenizer.config.base == "vqct" else 1
    expected = positions * per_position
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


# ------------------------------------------------------------------------------------------- β placement


@pytest.mark.parametrize(
    ("base", "legacy"), [("vqvae", False), ("vqgan", True), ("cvq", False), ("vqct", True)]
)
def test_default_beta_placement_is_each_bases_official_one(base, legacy):
    from lgvq_core.models.builders import default_config, official_legacy

    assert official_legacy(base) is legacy
    assert default_config(base).quantizer.legacy is legacy


def test_official_legacy_refuses_unknown_bases():
    from lgvq_core.models.builders import official_legacy

    with pytest.raises(ValueError, match="unknown base"):
        official_legacy("gumbel")


def _vqct_quantizer(word_spec, **vqct_overrides):
    from lgvq_core.config import VQCTConfig

    tok = make_tokenizer("vqct", word_spec, vqct=VQCTConfig(**vqct_overrides))
    return tok, tok.quantizer


def _hand_vqct_codes(q, z):
    """Top-k adjective mean and nearest noun by brute force: (adjective ids N×k, nouns N, q_adj, q_noun)."""
    codes = q.get_codebook()
    d, a = q.embed_dim, q.num_adjectives
    rows_adj = z[:, :d].permute(0, 2, 3, 1).reshape(-1, d)
    rows_noun = z[:, d:].permute(0, 2, 3, 1).reshape(-1, d)
    adj = torch.cdist(rows_adj, codes[:a]).topk(q.topk, largest=False).indices
    noun = torch.cdist(rows_noun, codes[a:]).argmin(1)
    b, _, h, w = z.shape
    to_grid = lambda r: r.reshape(b, h, w, d).permute(0, 3, 1, 2)  # noqa: E731
    return adj, noun, to_grid(codes[:a][adj].mean(1)), to_grid(codes[a:][noun])


def test_vqct_legacy_loss_is_the_official_formula(word_spec):
    """legacy=True: mean((sg[q]−z)²) + 0.25·mean((q − sg[z])²) per branch, summed (BASELINES §4.5)."""
    torch.manual_seed(0)
    q = make_tokenizer("vqct", word_spec, legacy=True, codebook_weight=1.0, commitment_weight=0.25).quantizer
    q.eval()
    z = torch.randn(2, 16, 3, 3, generator=torch.Generator().manual_seed(3))
    out = q(z)
    _, _, q_adj, q_noun = _hand_vqct_codes(q, z)
    d = q.embed_dim
    official = sum(
        ((zz - qq) ** 2).mean() + 0.25 * ((qq - zz) ** 2).mean()
        for zz, qq in ((z[:, :d], q_adj), (z[:, d:], q_noun))
    )
    torch.testing.assert_close(out.losses["commitment"] + out.losses["codebook"], official)
    torch.testing.assert_close(
        out.losses["codebook"], 0.25 * (((q_adj - z[:, :d]) ** 2).mean() + ((q_noun - z[:, d:]) ** 2).mean())
    )


# ------------------------------------------------------------------------------------------- VQCT top-k


@pytest.mark.parametrize("topk", [2, 3])
def test_vqct_eval_uses_the_topk_mean_and_decoding_tokens_reproduces_it(word_spec, images, topk):
    tok, q = _vqct_quantizer(word_spec, topk=topk)
    tok.eval()
    with torch.no_grad():
        out = tok(images)
        latent = tok.encode_latent(images)
        adj, noun, q_adj, q_noun = _hand_vqct_codes(q, latent)
        d = q.embed_dim
        torch.testing.assert_close(out.quant.quantized[:, :d], q_adj)
        torch.testing.assert_close(out.quant.quantized[:, d:], q_noun)
        tokens = tok.encode(images)
        assert torch.equal(tokens, out.quant.indices)
        assert tok.codebook_size == len(word_spec.adjectives) ** topk * len(word_spec.nouns)
        adjectives, nouns = q.split_tokens(tokens)
        assert adjectives.shape == (*tokens.shape, topk)
        assert torch.equal(adjectives.reshape(-1, topk), adj) and torch.equal(nouns.reshape(-1), noun)
        assert torch.equal(q.pack_tokens(adjectives, nouns), tokens)
        first, noun_ids = q.split_pairs(tokens)
        assert torch.equal(first, adjectives[..., 0]) and torch.equal(noun_ids, nouns)
        assert torch.equal(tok.embed(tokens), out.quant.quantized)
        assert torch.equal(tok.decode(tokens), out.reconstruction)


def test_vqct_training_and_eval_quantize_alike(word_spec, images):
    tok, q = _vqct_quantizer(word_spec, topk=2, gcn_dropout=0.0)
    with torch.no_grad():
        tok.train()
        train_out = tok.quantize(tok.encode_latent(images))
        tok.eval()
        eval_out = tok.quantize(tok.encode_latent(images))
    assert torch.equal(train_out.indices, eval_out.indices)
    assert torch.equal(train_out.quantized, eval_out.quantized)


def test_vqct_token_packing_roundtrip_and_pairs():
    from lgvq_core.quantizers.vqct import num_word_tokens, pack_tokens, unpack_tokens

    adjectives = torch.tensor([[0, 1], [2, 0], [2, 2]])
    nouns = torch.tensor([3, 0, 1])
    tokens = pack_tokens(adjectives, nouns, 3, 4)
    assert tokens.tolist() == [(0 * 3 + 1) * 4 + 3, (2 * 3 + 0) * 4 + 0, (2 * 3 + 2) * 4 + 1]
    back_adj, back_noun = unpack_tokens(tokens, 3, 4, 2)
    assert torch.equal(back_adj, adjectives) and torch.equal(back_noun, nouns)
    assert num_word_tokens(3, 4, 2) == 36 and int(tokens.max()) < 36
    one_adj, one_noun = unpack_tokens(pack_tokens(adjectives[:, :1], nouns, 3, 4), 3, 4, 1)
    assert torch.equal(one_adj[:, 0], adjectives[:, 0]) and torch.equal(one_noun, nouns)


def test_vqct_embed_words_accepts_one_adjective_per_position(word_spec):
    _, q = _vqct_quantizer(word_spec, topk=2)
    q.eval()
    adjectives = torch.tensor([[[[0, 3], [1, 1]]]])  # 1×1×2×k
    nouns = torch.tensor([[[2, 0]]])
    codes = q.get_codebook()
    a = q.num_adjectives
    both = q.embed_words(adjectives, nouns)
    torch.testing.assert_close(both[0, : q.embed_dim, 0, 0], (codes[0] + codes[3]) / 2)
    torch.testing.assert_close(both[0, q.embed_dim :, 0, 1], codes[a + 0])
    single = q.embed_words(adjectives[..., 0], nouns)  # (adjective, noun) pairs
    torch.testing.assert_close(single[0, : q.embed_dim, 0, 0], codes[0])
    assert torch.equal(q.embed(q.pack_tokens(adjectives, nouns)), both)
    with pytest.raises(ValueError, match="out of range"):
        q.embed_words(adjectives + a, nouns)
