"""Tiny real inputs for the captioning and VQA task tests: synthetic scenes in lgvq-data shards, a tiny
frozen VQ tokenizer whose codebook is fitted to the scenes, and their code shards.

The tokenizer's encoder is untrained (random convolutions); its codebook is k-means (farthest-point start,
10 Lloyd steps) of the encoder's latents on these very images. A random codebook would map almost every
latent to one or two codes, so the codes would say little about the image; fitted codes carry colour and
layout, which is what a task test needs at this scale. Grid 4×4 at 32 px keeps the sequences short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig
from lgvq_core.models import builders
from lgvq_data.build import build_shards
from lgvq_data.dataset import ShardDataset, collate
from lgvq_data.sources import synthetic
from lgvq_downstream.codes import encode_shards

SIDE = 32
GRID = (4, 4)
LOSS = LossConfig(perceptual_weight=0.0, perceptual_net="none", disc_start=0, disc_layers=1, disc_channels=8)


def scene_rows(n: int, seed: int = 3) -> list[dict[str, Any]]:
    """``n`` synthetic scenes (captions, qa, boxes, …), 32×32 px: a quarter in val, the rest in train."""
    return list(synthetic.records(n, image_size=SIDE, seed=seed, val_fraction=0.25, test_fraction=0.0))


def write_shards(rows: list[dict[str, Any]], folder: Path) -> Path:
    return build_shards(rows, folder, source="synthetic", rows_per_shard=16)


def _kmeans(z: torch.Tensor, k: int, iterations: int = 10) -> torch.Tensor:
    chosen = [0]
    nearest = (z - z[0]).pow(2).sum(1)
    for _ in range(k - 1):
        j = int(nearest.argmax())
        chosen.append(j)
        nearest = torch.minimum(nearest, (z - z[j]).pow(2).sum(1))
    centres = z[chosen].clone()
    for _ in range(iterations):
        assign = torch.cdist(z, centres).argmin(1)
        for c in range(k):
            members = z[assign == c]
            if len(members):
                centres[c] = members.mean(0)
    return centres


def fitted_tokenizer(
    shards: Path, folder: Path, *, codebook_size: int = 64, dim: int = 32, seed: int = 0
) -> Path:
    """Save a tiny VQGAN (4×4 grid at 32 px) whose codebook is fitted to the images of ``shards``."""
    torch.manual_seed(seed)
    encoder = EncoderConfig(
        resolution=SIDE,
        ch=8,
        ch_mult=(1, 2, 2, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        z_channels=8,
        norm_groups=4,
    )
    quantizer = QuantizerConfig(kind="vq", codebook_size=codebook_size, embed_dim=dim)
    model = builders.vqgan(encoder=encoder, quantizer=quantizer, loss=LOSS).eval()
    data = ShardDataset(shards, None, image_size=SIDE, annotations=False)
    images = collate([data[i] for i in range(min(len(data), 64))])["images"]
    with torch.no_grad():
        latents = model.encode_latent(images).permute(0, 2, 3, 1).reshape(-1, dim)
        model.quantizer.codebook.copy_(_kmeans(latents, codebook_size))
    model.save_pretrained(folder)
    return folder


def encode(tokenizer: Path, shards: Path, out: Path) -> Path:
    encode_shards(tokenizer, shards, out, batch_size=16, progress=False)
    return out
