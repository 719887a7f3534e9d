"""Build and train a :class:`Captioner` on the training split of a code-shard set.

``build`` reads the training captions once (the vocabulary and the most-frequent-caption baseline come from
them) and the tokenizer codebook (from the folder the code manifest records, or passed in); ``train`` runs
the shared loop with :func:`train_step`, which a Ray Train worker can call per batch as well.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import torch
from torch import Tensor, nn

from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.tasks.captioning.config import CaptionConfig
from lgvq_downstream.tasks.captioning.data import CaptionBatchCollator, CaptionPairs, collect_images
from lgvq_downstream.tasks.captioning.model import Captioner
from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.common.codebook import load_codebook, standardize_codebook
from lgvq_downstream.tasks.common.loop import run_training
from lgvq_downstream.tasks.common.rows import SkipReport
from lgvq_downstream.tasks.common.text import TextVocab, load_text_tokenizer

__all__ = ["build", "train", "train_step"]

logger = logging.getLogger(__name__)


def build(
    config: CaptionConfig,
    codes: CodeShardSet,
    text_tokenizer: Any = None,
    *,
    codebook: Tensor | None = None,
) -> Captioner:
    """A fresh :class:`Captioner` for the codes of ``codes`` (the training split).

    Args:
        config: task config.
        codes: training code shards (grid, K and tokenizer fingerprint from their manifest; captions for the
            vocabulary and the baseline).
        text_tokenizer: a Hugging Face tokenizer or ``TextEncoder``; default: ``config.text_encoder``.
        codebook: K×D code vectors for ``init_from_codebook``; default: from the tokenizer folder the code
            manifest records. Its rows are centred and scaled by one factor (``standardize_codebook``): the
            geometry between codes is kept, and the learned D→width projection starts at the scale of the
            other embeddings.
    """
    tokenizer = load_text_tokenizer(text_tokenizer if text_tokenizer is not None else config.text_encoder)
    images = collect_images(codes, SkipReport(config.train.on_error))
    if len(images) == 0:
        raise ValueError(f"{codes.root}: no usable training captions (split {codes.split!r})")
    texts = [text for caps in images.references() for text in caps]
    vocab = TextVocab.build(tokenizer, texts, mode=config.text_vocab)
    baseline = Counter(texts).most_common(1)[0][0]
    codebook_dim = None
    if config.init_from_codebook:
        if codebook is None:
            codebook = load_codebook(codes.manifest)
        codebook_dim = int(codebook.shape[1])
    torch.manual_seed(config.train.seed)
    model = Captioner(config, vocab, codes.tokenizer, baseline, codebook_dim)
    if codebook is not None and config.init_from_codebook:
        model.transformer.init_image_embeddings(standardize_codebook(codebook))
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "captioner: %d parameters, text vocabulary %d, grid %d×%d, K %d, baseline caption %r",
        n_params,
        vocab.size,
        *codes.grid,
        codes.codebook_size,
        baseline,
    )
    return model


def train_step(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Teacher-forcing loss of one batch (``codes`` B×h×w, ``tokens`` B×T, ``mask`` B×T), moved to the
    model's device. ``model`` may be a ``Captioner`` or a DDP wrapper of one."""
    device = next(model.parameters()).device
    return model(batch["codes"].to(device), batch["tokens"].to(device), batch["mask"].to(device))


def train(
    model: Captioner, dataset: CodeShardSet, config: CaptionConfig | None = None, *, progress: bool = True
) -> dict[str, Any]:
    """Train on every (image, caption) pair of ``dataset`` with ``(config or model.config).train``.

    Returns:
        The loop history (``loss`` per step, ``lr``, ``steps``, ``epochs``, ``seconds``, ``examples``) plus
        ``images`` and ``skipped`` (the bad-input report).
    """
    loop = (config or model.config).train
    check_codes(model.tokenizer_info, dataset, model.source)
    skips = SkipReport(loop.on_error)
    images = collect_images(dataset, skips)
    pairs = CaptionPairs(images, model.vocab, model.config.max_caption_tokens, skips)
    logger.info("captioning: %d images, %d caption pairs, %d skipped", len(images), len(pairs), skips.total)
    history = run_training(
        model,
        pairs,
        CaptionBatchCollator(model.vocab.pad_id),
        train_step,
        loop,
        desc="caption",
        progress=progress,
    )
    history["images"] = len(images)
    history["skipped"] = skips.to_dict()
    return history
