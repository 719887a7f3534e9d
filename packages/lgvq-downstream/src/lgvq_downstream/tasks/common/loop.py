"""One plain PyTorch training loop for every task: AdamW, warm-up + schedule, gradient clipping, a tqdm bar
and log lines. The task supplies ``step_fn(model, batch) -> loss`` (the same function a Ray Train worker
calls per batch)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm import tqdm

from lgvq_downstream.tasks.common.config import TrainLoopConfig

__all__ = ["StepFn", "lr_factor", "run_training"]

logger = logging.getLogger(__name__)

StepFn = Callable[[nn.Module, dict[str, Any]], Tensor]


def lr_factor(step: int, config: TrainLoopConfig) -> float:
    """Multiplier of ``config.lr`` at optimiser step ``step`` (0-based)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    span = max(1, config.steps - config.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - config.warmup_steps) / span)))


def run_training(
    model: nn.Module,
    dataset: Dataset,
    collate_fn: Callable[[list[Any]], dict[str, Any]],
    step_fn: StepFn,
    config: TrainLoopConfig,
    *,
    desc: str = "train",
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` for ``config.steps`` optimiser steps over reshuffled passes of ``dataset``.

    Returns:
        ``{"loss": [per step], "lr": [per step], "steps", "epochs", "seconds", "examples"}``.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError(f"{desc}: no training examples")
    device = torch.device(config.device)
    model.to(device)
    model.train()
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=RandomSampler(dataset, generator=generator),
        collate_fn=collate_fn,
        num_workers=config.num_workers,
        drop_last=len(dataset) >= config.batch_size,  # type: ignore[arg-type]
    )
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=config.betas,
    )
    losses: list[float] = []
    lrs: list[float] = []
    epochs, start = 0, time.perf_counter()
    with tqdm(total=config.steps, desc=desc, disable=not progress, unit="step") as bar:
        while len(losses) < config.steps:
            epochs += 1
            for batch in loader:
                step = len(losses)
                lr = config.lr * lr_factor(step, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = step_fn(model, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{desc}: non-finite loss {float(loss)} at step {step}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                losses.append(float(loss.detach()))
                lrs.append(lr)
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                    recent = losses[-config.log_every :]
                    logger.info(
                        "%s step %d/%d loss %.4f (mean of last %d) lr %.2e",
                        desc,
                        step + 1,
                        config.steps,
                        sum(recent) / len(recent),
                        len(recent),
                        lr,
                    )
                if len(losses) >= config.steps:
                    break
    model.eval()
    return {
        "loss": losses,
        "lr": lrs,
        "steps": len(losses),
        "epochs": epochs,
        "seconds": time.perf_counter() - start,
        "examples": len(dataset),  # type: ignore[arg-type]
    }
