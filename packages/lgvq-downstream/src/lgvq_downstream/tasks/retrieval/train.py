"""Fit probe heads for retrieval: ``lgvq_core``'s ``fit_probe`` on the frozen tokenizer, fed with codes.

``train_step`` is the probe's loss on one batch (L_gsa + L_mtp + L_ras, unweighted — ``fit_probe``'s
objective), for a distributed worker; ``train`` runs ``fit_probe`` itself so the budget means what it means in
the pipeline's evaluate stage.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import Tensor

from lgvq_core.guidance.diagnostics import fit_probe
from lgvq_core.guidance.language_guided import LanguageGuided
from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.retrieval.config import RetrievalConfig
from lgvq_downstream.tasks.retrieval.data import RetrievalDataset, collate_retrieval
from lgvq_downstream.tasks.retrieval.model import CodeInput, RetrievalModel

__all__ = ["probe_batches", "train", "train_step"]

logger = logging.getLogger(__name__)


def _loss(lg: Any, indices: Tensor, captions: list[str]) -> Tensor:
    out = lg.alignment_losses(lg.base.embed(indices), list(captions))
    return out.lgsa + out.lmtp + out.lras


def train_step(model: RetrievalModel, batch: dict[str, Any]) -> Tensor:
    """Scalar probe loss of one ``collate_retrieval`` batch (gradients reach the heads only)."""
    return _loss(model.lg, batch["indices"].to(model.device), batch["captions"])


def probe_batches(dataset: RetrievalDataset, config: RetrievalConfig) -> list[dict[str, Any]]:
    """The probe's data: the first ``probe_steps × probe_batch_size`` images (storage order) in batches of
    ``probe_batch_size`` — ``{"images": codes B×h×w, "captions"}``, the keys ``fit_probe`` reads."""
    count = min(len(dataset), config.probe_steps * config.probe_batch_size)
    out = []
    for start in range(0, count, config.probe_batch_size):
        batch = collate_retrieval(
            [dataset[i] for i in range(start, min(start + config.probe_batch_size, count))]
        )
        out.append({"images": batch["indices"], "captions": batch["captions"]})
    return out


def _fixed_draw_loss(lg: Any, batch: dict[str, Any], seed: int) -> float:
    """Loss of one probe batch in eval mode under a fixed masking draw (comparable before/after fitting)."""
    was_training = lg.training
    lg.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        device = next(lg.visual.parameters()).device
        value = float(_loss(lg, batch["images"].to(device), batch["captions"]))
    lg.train(was_training)
    return value


def train(
    model: RetrievalModel, dataset: RetrievalDataset, config: RetrievalConfig | None = None
) -> dict[str, Any]:
    """Fit ``model``'s probe heads on ``dataset`` (a training split) with ``config``'s budget; models with LG
    heads are left as they are (``{"steps": 0}``).

    Returns:
        ``{"heads", "steps", "batch_size", "images", "lr", "mode", "split", "loss_before", "loss_after",
        "seconds"}``: the loss of the first batch under one fixed masking draw, for the heads ``fit_probe``
        starts from and for the fitted ones.
    """
    config = config or RetrievalConfig()
    if model.heads == "lg":
        logger.info("LG heads were trained with the tokenizer; no probe to fit")
        return {"heads": "lg", "steps": 0}
    check_codes(model.tokenizer_info, dataset.codes, None)
    batches = probe_batches(dataset, config)
    if config.probe_steps == 0 or not batches:
        raise ValueError("a tokenizer without LG heads needs a probe: probe_steps must be > 0")
    start = time.perf_counter()
    device = model.device
    model.to("cpu")  # fit_probe makes its heads on the CPU and moves batches to its first parameter's device
    tokenizer = model.lg.base
    base = CodeInput(tokenizer)
    encoder, guidance = model.lg.text_encoder, model.lg.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # fit_probe builds its heads first: the same seed gives the same start
        fresh = LanguageGuided(base, encoder, guidance)
    if guidance.prediction_vocabulary == "captions":
        fresh.set_prediction_vocabulary([c for b in batches for c in b["captions"]])
    before = _fixed_draw_loss(fresh, batches[0], config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        probe = fit_probe(base, encoder, batches, config.probe_steps, guidance, lr=config.probe_lr)
    probe.base = tokenizer  # the CodeInput wrapper only served fit_probe; the heads read tokenizer.embed
    model.lg = probe
    model.to(device)
    model.trained = True
    images = sum(len(b["captions"]) for b in batches)
    model.probe = {
        "steps": config.probe_steps,
        "batch_size": config.probe_batch_size,
        "images": images,
        "lr": config.probe_lr,
        "mode": model.lg.config.mode,
        "split": dataset.split,
    }
    model.eval()
    after = _fixed_draw_loss(model.lg, batches[0], config.seed)
    history = {
        "heads": "probe",
        **model.probe,
        "loss_before": before,
        "loss_after": after,
        "seconds": time.perf_counter() - start,
    }
    logger.info(
        "probe fitted: %d steps × %d images at lr %g on %s, first-batch loss %.4f",
        config.probe_steps,
        config.probe_batch_size,
        config.probe_lr,
        dataset.split,
        after,
    )
    return history
