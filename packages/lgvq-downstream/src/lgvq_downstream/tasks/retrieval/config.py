"""``RetrievalConfig``: the image→text retrieval protocol and the probe budget for a tokenizer without LG
heads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lgvq_core.config import ConfigError, _StrictConfig

__all__ = ["RetrievalConfig"]


@dataclass(frozen=True)
class RetrievalConfig(_StrictConfig):
    """Image→text retrieval on code shards.

    Attributes:
        ks: the R@k reported.
        seed: picks each image's caption (``captions[mix64(seed, 0, row) % n]``, as ``lgvq_data.ShardDataset``
            at epoch 0 and the pipeline's evaluate stage do) and the report's examples.
        batch_size: images per forward pass at evaluation.
        text_encoder: text encoder of a probe (``"minilm"``, a folder or hub id); an LG model uses its own.
        context_length: token positions of the probe's text encoder.
        probe_mode: ``GuidanceConfig`` mode of the probe heads (``"fixed"`` = leak-free, as ``fit_probe``).
        probe_steps, probe_batch_size, probe_lr: the probe budget (``lgvq_core``'s ``fit_probe`` on the first
            ``probe_steps × probe_batch_size`` training images); the pipeline's evaluate stage uses 60 × 32 at
            1e-3.
        num_examples: images whose top-5 captions the report lists.
        on_error: ``"raise"`` at the first unusable row, or ``"skip"`` it and count it.
    """

    ks: tuple[int, ...] = (1, 5, 10)
    seed: int = 0
    batch_size: int = 64
    text_encoder: str = "minilm"
    context_length: int = 30
    probe_mode: Literal["paper", "fixed"] = "fixed"
    probe_steps: int = 60
    probe_batch_size: int = 32
    probe_lr: float = 1e-3
    num_examples: int = 8
    on_error: Literal["raise", "skip"] = "raise"

    def __post_init__(self) -> None:
        checks = [
            (bool(self.ks) and all(k >= 1 for k in self.ks), "ks", "must be a non-empty list of k ≥ 1"),
            (self.batch_size >= 1, "batch_size", "must be ≥ 1"),
            (self.context_length >= 2, "context_length", "must be ≥ 2"),
            (self.probe_steps >= 0, "probe_steps", "must be ≥ 0"),
            (self.probe_batch_size >= 1, "probe_batch_size", "must be ≥ 1"),
            (self.probe_lr > 0, "probe_lr", "must be positive"),
            (self.num_examples >= 0, "num_examples", "must be ≥ 0"),
            (self.on_error in ("raise", "skip"), "on_error", "must be 'raise' or 'skip'"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"retrieval.{key}: {message}")
