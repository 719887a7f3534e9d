"""One optimisation step: generator and discriminator updates from a single forward per micro-batch.

Works for any model with ``training_losses(batch, step, discriminator) -> StepLosses`` (a ``VQTokenizer`` or a
language-guided wrapper exposing ``.base``). Under ``torch.distributed`` gradients are averaged over ranks by
all-reduce after accumulation (no DDP wrapper needed), and a non-finite loss on any rank skips the step on
all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lgvq_core.losses.adversarial import disc_factor
from lgvq_core.outputs import StepLosses
from lgvq_core.quantizers.distributed import is_distributed, world_size

__all__ = [
    "StepResult",
    "train_step",
    "autocast_context",
    "base_tokenizer",
    "move_batch",
    "average_gradients",
]

logger = logging.getLogger(__name__)


@dataclass
class StepResult:
    """``ok`` is False when the step was skipped for a non-finite loss; ``metrics`` are floats averaged over
    micro-batches."""

    ok: bool
    metrics: dict[str, float] = field(default_factory=dict)


def base_tokenizer(model: nn.Module) -> nn.Module:
    """The ``VQTokenizer`` inside ``model`` (the model itself, or ``model.base`` for a wrapper)."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        raise TypeError(
            "pass the bare model, not DistributedDataParallel: "
            "lgvq_core averages gradients over ranks itself "
            "(training.step.average_gradients) and keeps codebooks in sync in the quantizers"
        )
    if hasattr(model, "quantizer") and hasattr(model, "config"):
        return model
    base = getattr(model, "base", None)
    if base is None:
        raise TypeError(f"{type(model).__name__} is neither a VQTokenizer nor a wrapper with .base")
    return base


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` in {"none", "bf16", "fp16"}."""
    if amp == "none":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors (and lists of tensors) of a batch dict moved to ``device``; other values unchanged."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if torch.is_tensor(value):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list) and value and all(torch.is_tensor(v) for v in value):
            out[key] = [v.to(device, non_blocking=True) for v in value]
        else:
            out[key] = value
    return out


def average_gradients(parameters: Sequence[nn.Parameter]) -> None:
    """Average ``.grad`` over ranks (missing grads count as zeros so every rank joins every collective)."""
    if not is_distributed():
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n


def _any_rank_nonfinite(value: Tensor) -> bool:
    flag = torch.tensor(0.0 if bool(torch.isfinite(value.detach()).all()) else 1.0, device=value.device)
    if is_distributed():
        dist.all_reduce(flag)
    return bool(flag > 0)


def train_step(
    model: nn.Module,
    micro_batches: Sequence[dict[str, Any]],
    *,
    step: int,
    optimizer: torch.optim.Optimizer,
    discriminator: nn.Module | None = None,
    disc_optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp: str = "none",
    max_grad_norm: float = 0.0,
) -> StepResult:
    """Accumulate gradients over ``micro_batches`` and take one generator (and discriminator) step.

    The discriminator is frozen during the generator backward, then trained on the same forward's
    (detached) reconstructions; it is updated only from ``loss.disc_start`` on.
    """
    tok = base_tokenizer(model)
    loss_cfg = tok.config.loss
    device = next(model.parameters()).device
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    train_disc = (
        discriminator is not None
        and disc_optimizer is not None
        and loss_cfg.uses_gan
        and disc_factor(step, loss_cfg.disc_start) > 0
    )
    disc_fn: Callable[..., StepLosses] = (
        getattr(model, "discriminator_losses", None) or tok.discriminator_losses
    )
    optimizer.zero_grad(set_to_none=True)
    if disc_optimizer is not None:
        disc_optimizer.zero_grad(set_to_none=True)
    n = len(micro_batches)
    metrics: dict[str, float] = {}
    for batch in micro_batches:
        batch = move_batch(batch, device)
        if discriminator is not None:
            discriminator.requires_grad_(False)
        with autocast_context(device, amp):
            g = model.training_losses(batch, step, discriminator)
        if _any_rank_nonfinite(g.total):
            optimizer.zero_grad(set_to_none=True)
            if disc_optimizer is not None:
                disc_optimizer.zero_grad(set_to_none=True)
            return StepResult(ok=False, metrics={"total": float("nan")})
        scaler.scale(g.total / n).backward()
        for k, v in g.breakdown.items():
            metrics[k] = metrics.get(k, 0.0) + float(v) / n
        if train_disc:
            discriminator.requires_grad_(True)
            with autocast_context(device, amp):
                d = disc_fn(batch, g.output, step, discriminator)
            if _any_rank_nonfinite(d.total):
                optimizer.zero_grad(set_to_none=True)
                disc_optimizer.zero_grad(set_to_none=True)
                return StepResult(ok=False, metrics={"disc_loss": float("nan")})
            scaler.scale(d.total / n).backward()
            for k, v in d.breakdown.items():
                metrics[k] = metrics.get(k, 0.0) + float(v) / n
    if discriminator is not None:
        discriminator.requires_grad_(True)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    average_gradients(params)
    if max_grad_norm > 0:
        scaler.unscale_(optimizer)
        metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    scaler.step(optimizer)
    if train_disc:
        average_gradients([p for group in disc_optimizer.param_groups for p in group["params"]])
        scaler.step(disc_optimizer)
    scaler.update()
    return StepResult(ok=True, metrics=metrics)
