"""LPIPS-style perceptual distance on an injected, frozen feature network.

Per tapped layer: unit-normalise features over channels, squared difference, sum over channels, spatial mean;
sum
over layers with ``layer_weights`` (1 each when omitted — the learned LPIPS heads are not used). With
``EfficientNetLite0Features`` this is the offline default, named "perceptual-EffLite0".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["PerceptualLoss"]


def _unit_normalize(x: Tensor, eps: float = 1e-10) -> Tensor:
    return x / torch.sqrt((x * x).sum(dim=1, keepdim=True) + eps)


class PerceptualLoss(nn.Module):
    """distance(images, reconstruction) → scalar (mean over the batch).

    Args:
        features: module mapping B×3×H×W in [-1, 1] to a list of B×C_l×H_l×W_l maps; frozen by the caller.
        name: reported name (e.g. "perceptual-EffLite0").
        layer_weights: one weight per returned map (default 1).
    """

    def __init__(
        self, features: nn.Module, *, name: str, layer_weights: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        self.features = features
        self.name = name
        self.layer_weights = None if layer_weights is None else tuple(float(w) for w in layer_weights)

    def forward(self, images: Tensor, reconstruction: Tensor) -> Tensor:
        feats_real = self.features(images.to(reconstruction.dtype))
        feats_fake = self.features(reconstruction)
        weights = self.layer_weights or (1.0,) * len(feats_real)
        if len(weights) != len(feats_real):
            raise ValueError(f"{len(weights)} layer weights for {len(feats_real)} feature maps")
        total = reconstruction.new_zeros(())
        for w, fr, ff in zip(weights, feats_real, feats_fake, strict=True):
            diff = (_unit_normalize(fr.float()).detach() - _unit_normalize(ff.float())) ** 2
            total = total + w * diff.sum(dim=1).mean()
        return total
