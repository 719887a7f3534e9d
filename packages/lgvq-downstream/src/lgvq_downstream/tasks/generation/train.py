"""Build and train a :class:`GenerationModel` on the training split of a code-shard set.

``build`` reads the training rows once (mask classes and the code frequencies of the unigram baseline come
from them); ``train`` runs the shared loop with :func:`train_step`, which a Ray Train worker calls per batch
as well.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.generation import CodeGenerator, GeneratorConfig
from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.common.codebook import load_codebook, standardize_codebook
from lgvq_downstream.tasks.common.loop import run_training
from lgvq_downstream.tasks.common.rows import SkipReport
from lgvq_downstream.tasks.generation.config import GenerationConfig
from lgvq_downstream.tasks.generation.data import GenerationExamples, collate_generation, collect_examples
from lgvq_downstream.tasks.generation.model import GenerationModel

__all__ = ["build", "examples_for", "train", "train_step"]

logger = logging.getLogger(__name__)


def examples_for(
    config: GenerationConfig, dataset: CodeShardSet, skips: SkipReport, mask_classes: int | None = None
) -> GenerationExamples:
    """The rows of ``dataset`` with what ``config``'s conditions need."""
    return collect_examples(
        dataset,
        skips,
        need_text="text" in config.conditions,
        need_mask="mask" in config.conditions,
        mask_classes=mask_classes,
    )


def build(
    config: GenerationConfig,
    codes: CodeShardSet,
    *,
    codebook: Tensor | None = None,
    examples: GenerationExamples | None = None,
) -> GenerationModel:
    """A fresh model for the codes of ``codes`` (the training split), seeded by ``config.train.seed``."""
    if examples is None:
        examples = examples_for(config, codes, SkipReport(config.train.on_error))
    if len(examples) == 0:
        raise ValueError(f"{codes.root}: no usable training rows (split {codes.split!r})")
    k = codes.codebook_size
    frequencies = torch.bincount(examples.codes.flatten(), minlength=k).float()
    frequencies /= frequencies.sum()
    text_dim = 0
    if "text" in config.conditions:
        from lgvq_core.guidance.text_encoder import load_text_encoder

        text_dim = load_text_encoder(config.text_encoder, context_length=config.max_text_tokens).hidden_size
    generator_config = GeneratorConfig(
        sampler=config.sampler,
        codebook_size=k,
        grid=tuple(codes.grid),
        conditions=tuple(config.conditions),
        condition_dropout=config.condition_dropout,
        mask_classes=examples.mask_classes if "mask" in config.conditions else 0,
        text_feature_dim=text_dim,
        max_text_tokens=config.max_text_tokens,
        width=config.width,
        layers=config.layers,
        heads=config.heads,
        mlp_ratio=config.mlp_ratio,
        dropout=config.dropout,
        maskgit_steps=config.maskgit_steps,
        init_from_codebook=config.init_from_codebook,
    )
    torch.manual_seed(config.train.seed)
    generator = CodeGenerator(generator_config)
    if config.init_from_codebook:
        generator.init_image_embeddings(
            standardize_codebook(codebook if codebook is not None else load_codebook(codes.manifest))
        )
    model = GenerationModel(config, generator, codes.tokenizer, generator_config.mask_classes, frequencies)
    logger.info(
        "generator (%s, conditions %s): %d parameters, grid %d×%d, K %d, mask classes %d",
        config.sampler,
        list(config.conditions) or "none",
        sum(p.numel() for p in generator.parameters()),
        *codes.grid,
        k,
        generator_config.mask_classes,
    )
    return model


def train_step(model: nn.Module, batch: dict[str, Any]) -> Tensor:
    """The generator's loss on one batch (``codes`` B×h×w, ``captions``, ``masks`` B×H×W); ``model`` may be
    a ``GenerationModel`` or a DDP wrapper of one."""
    return model(batch["codes"], batch.get("captions"), batch.get("masks"))


def train(
    model: GenerationModel,
    dataset: CodeShardSet,
    config: GenerationConfig | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on every usable row of ``dataset`` with ``(config or model.config).train``.

    Returns:
        The loop history (``loss`` per step, ``lr``, ``steps``, ``epochs``, ``seconds``, ``examples``) plus
        ``skipped`` (the bad-input report).
    """
    cfg = config or model.config
    check_codes(model.tokenizer_info, dataset, model.source)
    skips = SkipReport(cfg.train.on_error)
    examples = examples_for(cfg, dataset, skips, model.mask_classes or None)
    logger.info("generation: %d training rows, %d skipped", len(examples), skips.total)
    history = run_training(
        model, examples, collate_generation, train_step, cfg.train, desc="generate", progress=progress
    )
    history["skipped"] = skips.to_dict()
    return history
