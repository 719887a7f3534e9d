"""The two scene judges' networks: small fully-convolutional nets trained on real synthetic scenes
(``judge_training``).

* :class:`SceneSegmenterJudge`: image → per-pixel logits over ``mask_classes`` (0 = background,
  1 + shape index): a two-level U-Net (32 → 16 → 8 px and back, ``width`` channels at full resolution).
* :class:`SceneAttributeJudge`: the same U-Net for shapes plus a separate shallow colour branch (two 3×3
  convolutions: colour is local), so per pixel a shape and a colour distribution. Its image-level outputs are
  multi-label probabilities over the attribute vocabulary of ``scene_targets`` (7 shapes, 10 colours, 70
  (colour, shape) pairs), read off the predicted objects: the 4-connected components (at least
  ``min_object_pixels``) of the pixels whose most likely shape class is not background. For each component
  the shape and colour distributions are averaged over its pixels (background left out, renormalised), a
  pair's probability is the product of its shape's and its colour's, and an image's probability of an
  attribute is the largest over its components (0 when no object is found).

Image-level labels alone trained such nets too slowly for a one-minute CPU budget, so both judges learn from
dense per-pixel labels (the class-id mask; for colours the object map of ``scene_targets.object_map``).

Both take B×3×H×W uint8, or float in ``value_range`` (default [-1, 1], what the tokenizers decode to),
resize to ``input_size`` and normalise to [-1, 1] themselves (:meth:`prepare`). Configs are dataclasses
stored as JSON beside the safetensors weights (``judge_io``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_downstream.metrics.components import connected_components
from lgvq_downstream.metrics.image_input import DEFAULT_RANGE, resize_images, to_unit_images
from lgvq_downstream.metrics.scene_targets import (
    ATTRIBUTE_NAMES,
    COLOUR_OFFSET,
    COLOURS,
    NUM_ATTRIBUTES,
    PAIR_OFFSET,
    SHAPES,
)

__all__ = [
    "AttributeJudgeConfig",
    "SceneAttributeJudge",
    "SceneSegmenterJudge",
    "SegmenterJudgeConfig",
]

_EPS = 1e-6


@dataclass(frozen=True)
class SegmenterJudgeConfig:
    """``input_size``: side (px) images are resized to; ``width``: U-Net channels at full resolution (2× at
    1/2 and 1/4); ``mask_classes``: per-pixel classes (background + 7 shapes) named by ``class_names``."""

    input_size: int = 32
    width: int = 16
    mask_classes: int = 1 + len(SHAPES)
    class_names: tuple[str, ...] = ("background",) + SHAPES

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "class_names": list(self.class_names)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmenterJudgeConfig:
        return cls(
            input_size=int(data["input_size"]),
            width=int(data["width"]),
            mask_classes=int(data["mask_classes"]),
            class_names=tuple(data["class_names"]),
        )


@dataclass(frozen=True)
class AttributeJudgeConfig:
    """``input_size``: side (px) images are resized to; ``width``: U-Net channels of the shape branch;
    ``colour_width``: channels of the colour branch; ``min_object_pixels``: smallest component (at
    ``input_size``) counted as an object; ``shapes``, ``colours``: the class names (background first is
    implied)."""

    input_size: int = 32
    width: int = 16
    colour_width: int = 16
    min_object_pixels: int = 4
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = COLOURS

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shapes": list(self.shapes), "colours": list(self.colours)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributeJudgeConfig:
        return cls(
            input_size=int(data["input_size"]),
            width=int(data["width"]),
            colour_width=int(data["colour_width"]),
            min_object_pixels=int(data["min_object_pixels"]),
            shapes=tuple(data["shapes"]),
            colours=tuple(data["colours"]),
        )


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class UNet2(nn.Module):
    """Two-level U-Net: B×3×S×S → B×classes×S×S logits (S divisible by 4)."""

    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(_conv(3, w), _conv(w, w))
        self.enc2 = nn.Sequential(_conv(w, 2 * w), _conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_conv(2 * w, 2 * w), _conv(2 * w, 2 * w))
        self.dec2 = _conv(4 * w, 2 * w)
        self.dec1 = _conv(3 * w, w)
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="nearest"), e2], dim=1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], dim=1))
        return self.head(d1)


def _check_input_size(size: int) -> None:
    if size < 8 or size % 4:
        raise ValueError(f"input_size must be a multiple of 4 and >= 8, got {size}")


class _Judge(nn.Module):
    """Shared input handling: checked conversion to [0, 1], resize to ``input_size``, scale to [-1, 1]."""

    input_size: int

    def prepare(self, images: Tensor, value_range: tuple[float, float] = DEFAULT_RANGE) -> Tensor:
        """B×3×H×W uint8 or float in ``value_range`` → float B×3×S×S in [-1, 1] (S = ``input_size``) on the
        judge's device."""
        unit = to_unit_images(images, value_range)
        device = next(self.parameters()).device
        return resize_images(unit.to(device), self.input_size) * 2.0 - 1.0


class SceneSegmenterJudge(_Judge):
    """B×3×S×S in [-1, 1] (see :meth:`prepare`) → B×C×S×S per-pixel class logits (C = ``mask_classes``)."""

    def __init__(self, config: SegmenterJudgeConfig | None = None) -> None:
        super().__init__()
        self.config = config or SegmenterJudgeConfig()
        _check_input_size(self.config.input_size)
        if len(self.config.class_names) != self.config.mask_classes:
            raise ValueError(
                f"class_names has {len(self.config.class_names)} names, mask_classes is "
                f"{self.config.mask_classes}"
            )
        self.input_size = self.config.input_size
        self.net = UNet2(self.config.width, self.config.mask_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict(
        self,
        images: Tensor,
        size: tuple[int, int] | None = None,
        value_range: tuple[float, float] = DEFAULT_RANGE,
        batch_size: int = 256,
    ) -> Tensor:
        """B×3×H×W (uint8 or float in ``value_range``) → int64 B×h×w class ids (CPU); the logits are resized
        (bilinear) to ``size`` = (h, w), default the images' own H×W."""
        self.eval()
        unit = to_unit_images(images, value_range)
        out_size = (int(size[0]), int(size[1])) if size is not None else (unit.shape[-2], unit.shape[-1])
        out = []
        for i in range(0, unit.shape[0], batch_size):
            logits = self(self.prepare(unit[i : i + batch_size], (0.0, 1.0)))
            if tuple(logits.shape[-2:]) != out_size:
                logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
            out.append(logits.argmax(dim=1).cpu())
        return torch.cat(out)


class SceneAttributeJudge(_Judge):
    """B×3×S×S in [-1, 1] (see :meth:`prepare`) → B×(8 + 11)×S×S logits: per-pixel shape classes
    (background + 7) then colour classes (background + 10). Image-level attributes: :meth:`probabilities`."""

    def __init__(self, config: AttributeJudgeConfig | None = None) -> None:
        super().__init__()
        self.config = config or AttributeJudgeConfig()
        _check_input_size(self.config.input_size)
        if self.config.shapes != SHAPES or self.config.colours != COLOURS:
            raise ValueError(
                f"the attribute judge's classes must be the scene vocabulary (shapes {SHAPES}, colours "
                f"{COLOURS}), got shapes {self.config.shapes} and colours {self.config.colours}"
            )
        self.input_size = self.config.input_size
        self.num_shape_classes = 1 + len(self.config.shapes)
        self.num_colour_classes = 1 + len(self.config.colours)
        self.shape_net = UNet2(self.config.width, self.num_shape_classes)
        cw = self.config.colour_width
        self.colour_net = nn.Sequential(
            _conv(3, cw), _conv(cw, cw), nn.Conv2d(cw, self.num_colour_classes, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.shape_net(x), self.colour_net(x)], dim=1)

    def _objects(self, logits: Tensor) -> Tensor:
        """B×19×S×S logits → B×87 attribute probabilities (see the module docstring)."""
        shape_prob = logits[:, : self.num_shape_classes].softmax(dim=1)
        colour_prob = logits[:, self.num_shape_classes :].softmax(dim=1)
        labels = connected_components(shape_prob.argmax(dim=1) > 0)
        n_shapes, n_colours = self.num_shape_classes - 1, self.num_colour_classes - 1
        out = torch.zeros(logits.shape[0], NUM_ATTRIBUTES, device=logits.device)
        for b in range(logits.shape[0]):
            flat = labels[b].flatten()
            ids, inverse, counts = torch.unique(flat, return_inverse=True, return_counts=True)
            keep = (ids > 0) & (counts >= self.config.min_object_pixels)
            if not bool(keep.any()):
                continue
            shapes = torch.zeros(len(ids), n_shapes, device=logits.device).index_add_(
                0, inverse, shape_prob[b, 1:].flatten(1).T
            )[keep]
            colours = torch.zeros(len(ids), n_colours, device=logits.device).index_add_(
                0, inverse, colour_prob[b, 1:].flatten(1).T
            )[keep]
            shapes = shapes / shapes.sum(dim=1, keepdim=True).clamp_min(_EPS)
            colours = colours / colours.sum(dim=1, keepdim=True).clamp_min(_EPS)
            pairs = (shapes[:, :, None] * colours[:, None, :]).flatten(1)  # shape-major, as PAIR_OFFSET
            out[b, :COLOUR_OFFSET] = shapes.amax(dim=0)
            out[b, COLOUR_OFFSET:PAIR_OFFSET] = colours.amax(dim=0)
            out[b, PAIR_OFFSET:] = pairs.amax(dim=0)
        return out

    @torch.no_grad()
    def probabilities(
        self, images: Tensor, value_range: tuple[float, float] = DEFAULT_RANGE, batch_size: int = 256
    ) -> Tensor:
        """B×3×H×W (uint8 or float in ``value_range``) → B×87 attribute probabilities (float32, CPU), in the
        order of ``scene_targets.ATTRIBUTE_NAMES``."""
        self.eval()
        unit = to_unit_images(images, value_range)
        out = [
            self._objects(self(self.prepare(unit[i : i + batch_size], (0.0, 1.0)))).cpu()
            for i in range(0, unit.shape[0], batch_size)
        ]
        return torch.cat(out)

    def logits(
        self, images: Tensor, value_range: tuple[float, float] = DEFAULT_RANGE, batch_size: int = 256
    ) -> Tensor:
        """B×87 multi-label logits: ``log p − log(1 − p)`` of :meth:`probabilities` (p clamped to
        [1e-6, 1 − 1e-6])."""
        p = self.probabilities(images, value_range, batch_size).clamp(_EPS, 1.0 - _EPS)
        return torch.log(p) - torch.log1p(-p)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return ATTRIBUTE_NAMES
