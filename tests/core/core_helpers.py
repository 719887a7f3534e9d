"""Tiny tokenizer builders shared by the lgvq-core tests (16 px images, ch 16, K 32)."""

from __future__ import annotations

import hashlib

import torch

from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig
from lgvq_core.models import builders
from lgvq_core.quantizers.vqct_vocabulary import WordCodebookSpec

# The CI machine has 2 shared cores: one intra-op thread avoids oversubscription (tiny models gain nothing
# from more).
torch.set_num_threads(1)

TINY_ENCODER = EncoderConfig(
    resolution=16,
    ch=16,
    ch_mult=(1, 2),
    num_res_blocks=1,
    attn_resolutions=(8,),
    z_channels=16,
    norm_groups=8,
)
NO_PERCEPTUAL_GAN = LossConfig(
    perceptual_weight=0.0, perceptual_net="none", disc_start=0, disc_layers=1, disc_channels=16
)
CAPTIONS = [
    "a large red circle left of a small blue square",
    "two striped red stars and a green triangle",
    "a small green triangle above a large red circle",
    "a large blue circle near a striped star",
] * 4

QUANTIZER_KINDS = ["vq", "vq-ema", "vq-l2-kmeans-restart", "cvq", "vqct"]


def hashed_word_vectors(prompts: list[str], dim: int = 12) -> torch.Tensor:
    """Deterministic stand-in for a text encoder: a seeded Gaussian vector per prompt."""
    rows = []
    for prompt in prompts:
        seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
        rows.append(torch.randn(dim, generator=torch.Generator().manual_seed(seed)))
    return torch.stack(rows)


def make_tokenizer(kind: str, spec: WordCodebookSpec | None = None, **quantizer_overrides):
    """A tiny tokenizer of each quantizer kind ("vq", "vq-ema", "cvq", "vqct")."""
    if kind == "vq-l2-kmeans-restart":
        q = QuantizerConfig(
            kind="vq",
            codebook_size=32,
            embed_dim=8,
            l2_normalize=True,
            kmeans_init=True,
            dead_code_threshold=0.01,
            **quantizer_overrides,
        )
        return builders.vqgan(encoder=TINY_ENCODER, quantizer=q, loss=NO_PERCEPTUAL_GAN)
    if kind in ("vq", "vq-ema"):
        q = QuantizerConfig(
            kind="vq",
            codebook_size=32,
            embed_dim=8,
            codebook_update="ema" if kind == "vq-ema" else "grad",
            **quantizer_overrides,
        )
        return builders.vqgan(encoder=TINY_ENCODER, quantizer=q, loss=NO_PERCEPTUAL_GAN)
    if kind == "cvq":
        q = QuantizerConfig(kind="cvq", codebook_size=32, embed_dim=8, **quantizer_overrides)
        return builders.cvq(encoder=TINY_ENCODER, quantizer=q, loss=NO_PERCEPTUAL_GAN)
    if kind == "vqct":
        q = QuantizerConfig(kind="vqct", codebook_size=32, embed_dim=8, **quantizer_overrides)
        return builders.vqct(spec=spec, encoder=TINY_ENCODER, quantizer=q, loss=NO_PERCEPTUAL_GAN)
    raise ValueError(kind)
