"""The text side of a run: loading the configured text encoder once, and VQCT's word codebook from the
shards."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


def load_encoder(params: Any, config: Any):  # (GuidanceParams, GuidanceConfig) -> TextEncoder
    """The frozen text encoder named by ``guidance.text_encoder`` at the configured context length."""
    from lgvq_core.guidance.text_encoder import load_text_encoder

    return load_text_encoder(params.text_encoder, context_length=config.context_length)


def training_captions(shards: Path, limit: int = 0) -> list[str]:
    """Every caption of the train split (at most ``limit`` when > 0), in storage order."""
    from lgvq_data.schema import COL_CAPTIONS, COL_SPLIT
    from lgvq_data.shards import ShardSet

    captions: list[str] = []
    for row in ShardSet.open(shards).iter_rows(columns=(COL_CAPTIONS, COL_SPLIT)):
        if row[COL_SPLIT] != "train":
            continue
        captions.extend(row[COL_CAPTIONS])
        if limit and len(captions) >= limit:
            return captions[:limit]
    return captions


def vqct_word_spec(shards: Path, vocabulary: Any, encoder: Any, batch_size: int = 256):
    """VQCT's ``WordCodebookSpec`` from the training captions, embedding the prompts with ``encoder``."""
    from lgvq_core.quantizers.vqct_vocabulary import build_word_codebook

    def embed_words(prompts: list[str]) -> torch.Tensor:
        parts = [
            encoder.encode(prompts[i : i + batch_size]).sentence for i in range(0, len(prompts), batch_size)
        ]
        return torch.cat(parts).float().cpu()

    captions = training_captions(shards, vocabulary.max_captions)
    spec = build_word_codebook(captions, embed_words=embed_words, min_count=vocabulary.min_count)
    logger.info(
        "VQCT vocabulary: %d adjectives, %d nouns from %d captions",
        len(spec.adjectives),
        len(spec.nouns),
        len(captions),
    )
    return spec
