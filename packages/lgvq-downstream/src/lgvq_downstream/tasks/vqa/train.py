"""Build and train a :class:`VQAModel` on the training split of a code-shard set.

``build`` reads the training questions once: the question vocabulary, the answer classes and the
majority-answer-per-type baseline come from them; the codebook from the tokenizer folder the code manifest
records (or passed in). ``train`` runs the shared loop with :func:`train_step` (cross-entropy over the answer
classes), which a Ray Train worker can call per batch as well.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.common.codebook import load_codebook, standardize_codebook
from lgvq_downstream.tasks.common.loop import run_training
from lgvq_downstream.tasks.common.rows import SkipReport
from lgvq_downstream.tasks.common.text import TextVocab, load_text_tokenizer
from lgvq_downstream.tasks.vqa.answers import AnswerVocab, MajorityBaseline
from lgvq_downstream.tasks.vqa.config import VQAConfig
from lgvq_downstream.tasks.vqa.data import VQABatchCollator, VQAExamples, collect_questions
from lgvq_downstream.tasks.vqa.model import VQAModel

__all__ = ["build", "train", "train_step"]

logger = logging.getLogger(__name__)


def build(
    config: VQAConfig,
    codes: CodeShardSet,
    text_tokenizer: Any = None,
    *,
    codebook: Tensor | None = None,
) -> VQAModel:
    """A fresh :class:`VQAModel` for the codes of ``codes`` (the training split).

    Args:
        config: task config.
        codes: training code shards (grid, K and tokenizer fingerprint from their manifest; questions and
            answers for the vocabularies and the baseline).
        text_tokenizer: a Hugging Face tokenizer or ``TextEncoder``; default: ``config.text_encoder``.
        codebook: K×D code vectors for ``init_from_codebook`` (standardised as in captioning); default:
            from the tokenizer folder the code manifest records.
    """
    tokenizer = load_text_tokenizer(text_tokenizer if text_tokenizer is not None else config.text_encoder)
    data = collect_questions(codes, SkipReport(config.train.on_error), tokenizer, config.max_question_tokens)
    if len(data) == 0:
        raise ValueError(f"{codes.root}: no usable training questions (split {codes.split!r})")
    vocab = TextVocab.build(tokenizer, data.questions, mode=config.text_vocab)
    answers = AnswerVocab.build(data.answers, config.max_answers)
    baseline = MajorityBaseline.fit(data.types, data.answers)
    codebook_dim = None
    if config.init_from_codebook:
        if codebook is None:
            codebook = load_codebook(codes.manifest)
        codebook_dim = int(codebook.shape[1])
    torch.manual_seed(config.train.seed)
    model = VQAModel(config, vocab, answers, baseline, codes.tokenizer, codebook_dim)
    if codebook is not None and config.init_from_codebook:
        model.transformer.init_image_embeddings(standardize_codebook(codebook))
    logger.info(
        "VQA model: %d parameters, %d answers, question vocabulary %d, grid %d×%d, K %d, baseline %s",
        sum(p.numel() for p in model.parameters()),
        len(answers),
        vocab.size,
        *codes.grid,
        codes.codebook_size,
        baseline.per_type,
    )
    return model


def train_step(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Cross-entropy of the answer class of one batch (``codes`` B×h×w, ``question``/``mask`` B×T,
    ``answer`` B), moved to the model's device. ``model`` may be a ``VQAModel`` or a DDP wrapper of one."""
    device = next(model.parameters()).device
    logits = model(batch["codes"].to(device), batch["question"].to(device), batch["mask"].to(device))
    return F.cross_entropy(logits, batch["answer"].to(device))


def train(
    model: VQAModel, dataset: CodeShardSet, config: VQAConfig | None = None, *, progress: bool = True
) -> dict[str, Any]:
    """Train on every question of ``dataset`` whose answer is a class, with
    ``(config or model.config).train``.

    Returns:
        The loop history (``loss`` per step, ``lr``, ``steps``, ``epochs``, ``seconds``, ``examples``) plus
        ``questions``, ``out_of_vocab`` (questions left out) and ``skipped`` (the bad-input report).
    """
    loop = (config or model.config).train
    check_codes(model.tokenizer_info, dataset, model.source)
    skips = SkipReport(loop.on_error)
    data = collect_questions(dataset, skips, model.vocab.tokenizer, model.config.max_question_tokens)
    examples = VQAExamples(data, model.vocab, model.answers)
    logger.info(
        "VQA: %d questions on %d images, %d with an answer outside the classes, %d skipped",
        len(data),
        len(data.ids),
        examples.out_of_vocab,
        skips.total,
    )
    history = run_training(
        model, examples, VQABatchCollator(model.vocab.pad_id), train_step, loop, desc="vqa", progress=progress
    )
    history["questions"] = len(data)
    history["out_of_vocab"] = examples.out_of_vocab
    history["skipped"] = skips.to_dict()
    return history
