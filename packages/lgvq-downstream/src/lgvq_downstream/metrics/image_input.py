"""Checked conversion of image batches to float [0, 1] for the sample-quality metrics.

Accepted input: B×3×H×W, either uint8 (0..255) or float in ``value_range``. The default range (-1, 1) is what
the tokenizers' ``decode`` returns and what ``lgvq_data.dataset.collate`` yields; pass ``(0.0, 1.0)`` for
images already in [0, 1]. Float values are mapped linearly and clamped (decoders overshoot a little).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DEFAULT_RANGE", "resize_images", "to_unit_images"]

logger = logging.getLogger(__name__)

DEFAULT_RANGE: tuple[float, float] = (-1.0, 1.0)


def to_unit_images(
    images: Tensor, value_range: tuple[float, float] = DEFAULT_RANGE, *, what: str = "images"
) -> Tensor:
    """B×3×H×W uint8 or float in ``value_range`` → float32 B×3×H×W in [0, 1] (clamped).

    Raises ``TypeError`` for a non-tensor, ``ValueError`` naming the shape, dtype or value when the batch is
    not B×3×H×W, empty, or holds NaN/inf.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor (B×3×H×W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"{what} must be B×3×H×W, got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{what}: empty batch (shape {tuple(images.shape)})")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.is_floating_point():
        raise ValueError(f"{what} must be uint8 or floating point, got dtype {images.dtype}")
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    images = images.detach().float()
    if not torch.isfinite(images).all():
        raise ValueError(f"{what} contain NaN or inf")
    if low < 0.0 and images.numel() >= 3 * 32 * 32 * 8 and float(images.min()) >= 0.0:
        logger.warning(
            "%s: float values all >= 0 although value_range is %s; if they are in [0, 1], pass "
            "value_range=(0.0, 1.0)",
            what,
            value_range,
        )
    return ((images - low) / (high - low)).clamp(0.0, 1.0)


def resize_images(images01: Tensor, size: int) -> Tensor:
    """Float B×3×H×W → B×3×size×size (bilinear, antialiased when shrinking); unchanged when already there."""
    if images01.shape[-2:] == (size, size):
        return images01
    return F.interpolate(images01, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
