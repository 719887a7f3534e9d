"""Boxes of the stored image → the frame the codes were made from.

Code shards keep ``boxes`` in pixels of the *stored* image (``width``×``height``); the codes were computed
from that image after the manifest's preprocessing (``lgvq_data.transforms.ImageTransform``: resize, then a
``size``×``size`` crop). :class:`PreprocessedFrame` repeats that transform's box arithmetic and normalises by
``size``, so targets are ``(x0, y0, x1, y1)`` in [0, 1] of the encoded square.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["BOX_TOLERANCE", "PreprocessedFrame", "box_problem", "xyxy_to_cxcywh"]

# Slack (pixels) past the right/bottom edge, as lgvq-data's validator allows.
BOX_TOLERANCE = 1e-3


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """Corners …×4 → centre/size …×4 (same unit)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def box_problem(box: Sequence[float | None], width: int, height: int) -> str | None:
    """Why ``(x0, y0, x1, y1)`` (pixels of a ``width``×``height`` image) is unusable, or None when it is a
    finite, non-empty box inside the image (``0 ≤ x0 < x1 ≤ width``, same for y, with
    :data:`BOX_TOLERANCE`)."""
    if len(box) != 4 or any(v is None for v in box):
        return f"expected four coordinates, got {list(box)}"
    x0, y0, x1, y1 = (float(v) for v in box)  # type: ignore[arg-type]
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return f"non-finite coordinates {[x0, y0, x1, y1]}"
    if not (x0 < x1 and y0 < y1):
        return f"empty box {[x0, y0, x1, y1]} (needs x0 < x1 and y0 < y1)"
    if x0 < 0 or y0 < 0 or x1 > width + BOX_TOLERANCE or y1 > height + BOX_TOLERANCE:
        return f"box {[x0, y0, x1, y1]} lies outside the {width}×{height} image"
    return None


@dataclass(frozen=True)
class PreprocessedFrame:
    """The resize + crop of one stored image (deterministic: center crop, no flip).

    Attributes:
        size: side of the encoded square (pixels).
        scale_x, scale_y: resized / stored width and height.
        left, top: crop offset in the resized image (pixels).
    """

    size: int
    scale_x: float
    scale_y: float
    left: int
    top: int

    @classmethod
    def of(cls, width: int, height: int, preprocessing: Mapping[str, Any]) -> PreprocessedFrame:
        """The frame of a ``width``×``height`` image under a code manifest's ``preprocessing`` record
        (``size``, ``resize`` = ``"shorter"`` | ``"exact"`` | ``"none"``, ``crop`` = ``"center"``,
        ``hflip`` = false)."""
        size = int(preprocessing["size"])
        resize = preprocessing.get("resize", "shorter")
        if preprocessing.get("crop", "center") != "center" or preprocessing.get("hflip", False):
            raise ValueError(
                f"boxes need a deterministic preprocessing (center crop, no flip), got crop="
                f"{preprocessing.get('crop')!r}, hflip={preprocessing.get('hflip')!r}"
            )
        if width < 1 or height < 1:
            raise ValueError(f"image size {width}×{height} is not positive")
        if resize == "exact":
            new_w, new_h = size, size
        elif resize == "shorter":  # ImageTransform: shorter side → size, the other rounded, at least size
            scale = size / min(width, height)
            new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        elif resize == "none":
            new_w, new_h = width, height
        else:
            raise ValueError(f"unknown resize {resize!r} in the code manifest's preprocessing")
        if new_w < size or new_h < size:
            raise ValueError(f"image {width}×{height} is smaller than the crop {size} (resize='none')")
        return cls(
            size=size,
            scale_x=new_w / width,
            scale_y=new_h / height,
            left=(new_w - size) // 2,
            top=(new_h - size) // 2,
        )

    def normalise(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """Stored-image pixels ``(x0, y0, x1, y1)`` → the crop's coordinates clipped to it, divided by
        ``size`` (so in [0, 1]). A box the crop cuts away entirely comes back with zero width or height."""
        x0, y0, x1, y1 = (float(v) for v in box)
        side = float(self.size)

        def clip(value: float) -> float:
            return min(max(value, 0.0), side) / side

        return (
            clip(x0 * self.scale_x - self.left),
            clip(y0 * self.scale_y - self.top),
            clip(x1 * self.scale_x - self.left),
            clip(y1 * self.scale_y - self.top),
        )
