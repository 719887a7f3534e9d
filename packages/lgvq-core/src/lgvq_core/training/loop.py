"""A single-process training loop with callbacks; rank-aware under ``torch.distributed``, launcher-agnostic.

    from lgvq_core.config import TrainConfig
    from lgvq_core.training.loop import fit
    result = fit(tokenizer, batches, TrainConfig(steps=1000, lr=1e-4), discriminator=build_discriminator(cfg))

``batches`` is any iterable of batch dicts (``"images"`` B×3×H×W in [-1, 1], ...); it is re-iterated when
exhausted (one pass = one epoch; ``set_epoch(epoch)`` is called on the iterable, its ``dataset`` and its
``sampler`` where present). With ``checkpoint_dir`` set, the loop resumes from ``<checkpoint_dir>/last`` when
it exists and writes it every ``checkpoint_every`` steps and at the end (rank 0 only).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lgvq_core.config import TrainConfig
from lgvq_core.quantizers.distributed import rank
from lgvq_core.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from lgvq_core.training.step import base_tokenizer, train_step

__all__ = ["Callback", "FitResult", "fit", "build_optimizers", "LAST_CHECKPOINT"]

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last"


class Callback:
    """Hooks called by ``fit``; override what you need."""

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        """After every successful optimizer step, with that step's metrics."""

    def on_report(self, state: TrainState, metrics: dict[str, float]) -> None:
        """Every ``log_every`` steps and at the end, with metrics averaged since the last report."""

    def on_checkpoint(self, state: TrainState, path: Path) -> None:
        """After a checkpoint was written (rank 0)."""


@dataclass
class FitResult:
    state: TrainState
    history: list[dict[str, float]] = field(default_factory=list)
    optimizer: torch.optim.Optimizer | None = None
    disc_optimizer: torch.optim.Optimizer | None = None


def _set_epoch(batches: Iterable[Any], epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on the iterable, its ``dataset`` and its ``sampler`` where they have one
    (deterministic per-epoch shuffling/captions, e.g. ``DistributedSampler`` and lgvq-data's datasets)."""
    for obj in (batches, getattr(batches, "dataset", None), getattr(batches, "sampler", None)):
        set_epoch = getattr(obj, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)


def build_optimizers(
    model: nn.Module, discriminator: nn.Module | None, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """Adam(betas) over the trainable parameters of the model, and one for the discriminator (taming).

    A wrapper's LG heads (parameters outside ``model.base``) form a second parameter group with
    ``config.guidance_lr`` / ``guidance_betas`` when either is set.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    split = hasattr(model, "base") and (config.guidance_lr is not None or config.guidance_betas is not None)
    heads = [p for name, p in named if split and not name.startswith("base.")]
    groups: list[dict[str, Any]] = [
        {"params": [p for name, p in named if not split or name.startswith("base.")]}
    ]
    if heads:
        groups.append(
            {
                "params": heads,
                "lr": config.guidance_lr if config.guidance_lr is not None else config.lr,
                "betas": tuple(config.guidance_betas) if config.guidance_betas is not None else config.betas,
            }
        )
    optimizer = torch.optim.Adam(groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    disc_optimizer = None
    if discriminator is not None:
        disc_optimizer = torch.optim.Adam(discriminator.parameters(), lr=config.disc_lr, betas=config.betas)
    return optimizer, disc_optimizer


def fit(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    config: TrainConfig,
    *,
    discriminator: nn.Module | None = None,
    callbacks: Sequence[Callback] = (),
    on_report: Callable[[int, dict[str, float]], None] | None = None,
    resume: bool = True,
    progress: bool = False,
) -> FitResult:
    """Train ``model`` for ``config.steps`` optimizer steps (see module docstring).

    Raises:
        FloatingPointError: more than ``max_nonfinite_steps`` consecutive steps had a non-finite loss.
        ValueError: ``batches`` yields nothing.
    """
    torch.manual_seed(config.seed)
    model.train()
    if discriminator is not None:
        discriminator.train()
    device = next(model.parameters()).device
    optimizer, disc_optimizer = build_optimizers(model, discriminator, config)
    optimizers = {"model": optimizer} | (
        {"discriminator": disc_optimizer} if disc_optimizer is not None else {}
    )
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    tok = base_tokenizer(model)
    model_config = tok.config.to_dict()
    state = TrainState()
    last = Path(config.checkpoint_dir) / LAST_CHECKPOINT if config.checkpoint_dir else None
    if last is not None and resume and (last / "trainer.json").is_file():
        state = load_checkpoint(
            last, model=model, optimizers=optimizers, discriminator=discriminator, scaler=scaler
        )
        logger.info("resumed from %s at step %d", last, state.step)

    def save() -> None:
        if last is None or rank() != 0:
            return
        path = save_checkpoint(
            last,
            model=model,
            state=state,
            optimizers=optimizers,
            discriminator=discriminator,
            scaler=scaler,
            train_config=config.to_dict(),
            model_config=model_config,
        )
        for cb in callbacks:
            cb.on_checkpoint(state, path)

    _set_epoch(batches, state.epoch)
    iterator = iter(batches)

    def next_batch() -> dict[str, Any]:
        nonlocal iterator
        try:
            batch = next(iterator)
        except StopIteration:
            state.epoch += 1
            _set_epoch(batches, state.epoch)
            iterator = iter(batches)
            try:
                batch = next(iterator)
            except StopIteration:
                raise ValueError("the batch iterable is empty (or cannot be re-iterated)") from None
        state.batches_seen += 1
        return batch

    history: list[dict[str, float]] = []
    window: dict[str, float] = {}
    window_steps = 0
    bar = tqdm(total=config.steps, initial=state.step, disable=not progress or rank() != 0, desc="train")
    while state.step < config.steps:
        micro = [next_batch() for _ in range(config.grad_accum_steps)]
        result = train_step(
            model,
            micro,
            step=state.step,
            optimizer=optimizer,
            discriminator=discriminator,
            disc_optimizer=disc_optimizer,
            scaler=scaler,
            amp=config.amp,
            max_grad_norm=config.max_grad_norm,
        )
        if not result.ok:
            state.skipped_nonfinite += 1
            state.consecutive_nonfinite += 1
            logger.warning(
                "non-finite loss at step %d; step skipped (%d so far)", state.step, state.skipped_nonfinite
            )
            if state.consecutive_nonfinite >= config.max_nonfinite_steps:
                raise FloatingPointError(
                    f"{state.consecutive_nonfinite} consecutive non-finite steps at step {state.step}; "
                    "aborting"
                )
            continue
        state.consecutive_nonfinite = 0
        state.step += 1
        bar.update(1)
        for cb in callbacks:
            cb.on_step_end(state, result.metrics)
        for k, v in result.metrics.items():
            window[k] = window.get(k, 0.0) + v
        window_steps += 1
        if state.step % config.log_every == 0 or state.step == config.steps:
            report = {k: v / window_steps for k, v in window.items() if math.isfinite(v)}
            report.update(step=float(state.step), skipped_nonfinite=float(state.skipped_nonfinite))
            history.append(report)
            if on_report is not None:
                on_report(state.step, report)
            for cb in callbacks:
                cb.on_report(state, report)
            window, window_steps = {}, 0
        if (
            config.checkpoint_every
            and state.step % config.checkpoint_every == 0
            and state.step < config.steps
        ):
            save()
    bar.close()
    save()
    return FitResult(state=state, history=history, optimizer=optimizer, disc_optimizer=disc_optimizer)
