"""Per-pixel reconstruction losses."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["reconstruction_loss"]


def reconstruction_loss(images: Tensor, reconstruction: Tensor, kind: str = "l1") -> Tensor:
    """Mean per-pixel loss between B×C×H×W tensors.

    Args:
        kind: ``"l1"`` (taming), ``"l2"`` (VQ-VAE paper) or ``"l1+l2"`` (VQCT's VQ-VAE baseline: sum of both
        means).
    """
    if images.shape != reconstruction.shape:
        raise ValueError(
            f"shape mismatch: images {tuple(images.shape)} vs reconstruction {tuple(reconstruction.shape)}"
        )
    images = images.to(reconstruction.dtype)
    if kind == "l1":
        return F.l1_loss(reconstruction, images)
    if kind == "l2":
        return F.mse_loss(reconstruction, images)
    if kind == "l1+l2":
        return F.l1_loss(reconstruction, images) + F.mse_loss(reconstruction, images)
    raise ValueError(f"unknown reconstruction loss {kind!r}; expected 'l1', 'l2' or 'l1+l2'")
