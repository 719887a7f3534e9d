"""Helpers for the language-guidance tests: tiny real base tokenizers and captioned batches."""

from __future__ import annotations

import pytest

BASES = ("vqvae", "vqgan", "cvq", "vqct")


def tiny_tokenizer_config(base: str):
    """A tiny TokenizerConfig (16 px images, 8×8 grid, 32 codes of dim 16; no perceptual net; GAN from step
    0)."""
    from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig, TokenizerConfig

    encoder = EncoderConfig(
        resolution=16,
        ch=16,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        z_channels=16,
        norm_groups=8,
    )
    kind = {"vqvae": "vq", "vqgan": "vq", "cvq": "cvq", "vqct": "vqct"}[base]
    quantizer = QuantizerConfig(kind=kind, codebook_size=32, embed_dim=16)
    if base == "vqvae":
        loss = LossConfig(
            reconstruction="l1+l2",
            perceptual_weight=0.0,
            perceptual_net="none",
            disc_weight=0.0,
            adaptive_weight=False,
        )
    else:
        loss = LossConfig(
            perceptual_weight=0.0, perceptual_net="none", disc_start=0, disc_layers=1, disc_channels=8
        )
    return TokenizerConfig(base=base, encoder=encoder, quantizer=quantizer, loss=loss)


def _word_spec(embed_words=None):
    """A small VQCT word codebook; word vectors from ``embed_words`` (a text encoder's) or hash-seeded
    vectors."""
    import zlib

    import torch

    from lgvq_core.quantizers.vqct_vocabulary import build_word_codebook

    def hashed(words: list[str]) -> torch.Tensor:
        rows = []
        for word in words:
            g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
            rows.append(torch.randn(8, generator=g))
        return torch.stack(rows)

    captions = [
        "a large red circle",
        "a small blue square",
        "a large green triangle",
        "a striped red star",
    ] * 3
    return build_word_codebook(captions, embed_words=embed_words or hashed, min_count=1)


def make_base(base: str, embed_words=None):
    """Build a tiny base tokenizer, skipping the test when that base is not available yet."""
    import torch

    try:
        from lgvq_core.models import builders
    except ImportError as err:  # pragma: no cover - only while the bases are being written
        pytest.skip(f"base builders not available: {err}")
    config = tiny_tokenizer_config(base)
    torch.manual_seed(0)
    try:
        if base == "vqct":
            return builders.vqct(spec=_word_spec(embed_words), config=config)
        return builders.build(config)
    except (ImportError, AttributeError) as err:
        pytest.skip(f"base {base!r} not available yet: {err}")


def captioned_batch(count: int = 4, size: int = 16, textured: bool = False):
    """``count`` images with one coloured object each and a matching caption (batch dict of the contract).

    ``textured`` adds a smooth random background so that the images use many different codes.
    """
    import torch

    colours = {
        "red": (1.0, -1.0, -1.0),
        "blue": (-1.0, -1.0, 1.0),
        "green": (-1.0, 1.0, -1.0),
        "yellow": (1.0, 1.0, -1.0),
    }
    shapes = ["circle", "square", "triangle", "star"]
    images, captions = [], []
    for i in range(count):
        name = list(colours)[i % 4]
        image = torch.full((3, size, size), -0.5)
        half = size // 2
        y, x = (i // 2 % 2) * half, (i % 2) * half
        image[:, y : y + half, x : x + half] = torch.tensor(colours[name]).view(3, 1, 1)
        images.append(image)
        captions.append(f"a {'small' if i % 2 else 'large'} {name} {shapes[i % 4]}")
    stacked = torch.stack(images)
    if textured:
        g = torch.Generator().manual_seed(0)
        noise = torch.rand(count, 3, 4, 4, generator=g) * 2 - 1
        stacked = (
            0.5 * stacked + 0.5 * torch.nn.functional.interpolate(noise, size=size, mode="bilinear")
        ).clamp(-1, 1)
    return {"images": stacked, "captions": captions, "ids": [str(i) for i in range(count)]}
