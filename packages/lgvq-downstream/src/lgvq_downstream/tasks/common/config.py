"""``TrainLoopConfig``: the optimiser and loop settings every task shares (its ``train`` section)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lgvq_core.config import ConfigError, _StrictConfig

__all__ = ["TrainLoopConfig"]


@dataclass(frozen=True)
class TrainLoopConfig(_StrictConfig):
    """AdamW with linear warm-up, then a constant or cosine learning rate.

    Attributes:
        steps: optimiser steps.
        batch_size: examples per step.
        lr, betas, weight_decay: AdamW.
        warmup_steps: linear warm-up from 0.
        schedule: ``"constant"`` or ``"cosine"`` (to 0 at ``steps``) after the warm-up.
        max_grad_norm: gradient clipping (0 = off).
        log_every: steps between log lines.
        seed: data order and initialisation.
        num_workers: DataLoader worker processes.
        device: torch device.
        on_error: ``"raise"`` at the first unusable row, or ``"skip"`` it and count it.
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    schedule: Literal["constant", "cosine"] = "cosine"
    max_grad_norm: float = 1.0
    log_every: int = 50
    seed: int = 0
    num_workers: int = 0
    device: str = "cpu"
    on_error: Literal["raise", "skip"] = "raise"

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 0, "steps", "must be ≥ 0"),
            (self.batch_size >= 1, "batch_size", "must be ≥ 1"),
            (self.lr > 0, "lr", "must be positive"),
            (self.weight_decay >= 0, "weight_decay", "must be ≥ 0"),
            (self.warmup_steps >= 0, "warmup_steps", "must be ≥ 0"),
            (self.max_grad_norm >= 0, "max_grad_norm", "must be ≥ 0"),
            (self.log_every >= 1, "log_every", "must be ≥ 1"),
            (self.num_workers >= 0, "num_workers", "must be ≥ 0"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"train.{key}: {message}")
