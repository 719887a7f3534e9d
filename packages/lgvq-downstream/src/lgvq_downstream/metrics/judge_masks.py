"""Checked class-id masks for the segmenter judge: shape, dtype and the range of class ids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["check_masks", "resize_masks"]


def check_masks(masks: Tensor, num_classes: int, *, what: str = "masks") -> Tensor:
    """B×H×W integer class ids in ``0..num_classes-1`` → int64 B×H×W.

    Raises ``TypeError`` for a non-tensor, ``ValueError`` naming the shape, dtype or the first out-of-range
    class id.
    """
    if not isinstance(masks, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor (B×H×W class ids), got {type(masks).__name__}")
    if masks.ndim != 3:
        raise ValueError(f"{what} must be B×H×W class ids, got shape {tuple(masks.shape)}")
    if masks.is_floating_point() or masks.is_complex() or masks.dtype == torch.bool:
        raise ValueError(f"{what} must hold integer class ids, got dtype {masks.dtype}")
    masks = masks.long()
    bad = masks[(masks < 0) | (masks >= num_classes)]
    if bad.numel():
        raise ValueError(
            f"{what} hold class id {int(bad[0])}, outside the {num_classes} classes 0..{num_classes - 1}"
        )
    return masks


def resize_masks(masks: Tensor, size: int) -> Tensor:
    """int64 B×H×W → B×size×size (nearest neighbour); unchanged when already there."""
    if masks.shape[-2:] == (size, size):
        return masks
    return F.interpolate(masks[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
