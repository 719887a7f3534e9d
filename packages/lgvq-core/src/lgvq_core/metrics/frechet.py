"""Fréchet distance with an injected feature network (torchmetrics
``FrechetInceptionDistance(feature=module)``).

The offline default is ``FD-EffLite0``: pooled 1280-d ImageNet EfficientNet-Lite0 features at 224 px. It is
not FID
and must not be compared with published FIDs; for real FID pass the Inception module of a local weights file,
``lgvq_core.metrics.inception.load_inception_features(path)`` ("FID-InceptionV3").
"""

from __future__ import annotations

from torch import Tensor, nn

from lgvq_core.metrics.image import to_unit_range

__all__ = ["FrechetDistance", "EffLite0FrechetFeatures"]


class EffLite0FrechetFeatures(nn.Module):
    """(N, 3, H, W) float in [0, 1] → (N, 1280) pooled EfficientNet-Lite0 features ("FD-EffLite0")."""

    name = "FD-EffLite0"
    num_features = 1280

    def __init__(self) -> None:
        super().__init__()
        from lgvq_core.models.feature_nets import EfficientNetLite0Features

        self.net = EfficientNetLite0Features()

    def forward(self, images01: Tensor) -> Tensor:
        return self.net.pooled(images01.float() * 2.0 - 1.0)


class FrechetDistance:
    """Accumulate real and generated images ([-1, 1]) and compute the Fréchet distance of their features.

    Args:
        features: module mapping (N, 3, H, W) in [0, 1] to (N, D), with an int ``num_features`` attribute;
            default ``EffLite0FrechetFeatures``.
        name: reported metric name (default: ``features.name``).
    """

    def __init__(
        self, features: nn.Module | None = None, *, name: str | None = None, device: str = "cpu"
    ) -> None:
        features = features if features is not None else EffLite0FrechetFeatures()
        if not isinstance(getattr(features, "num_features", None), int):
            raise ValueError("the feature module needs an int attribute num_features")
        from torchmetrics.image.fid import FrechetInceptionDistance  # lazy: drags in yaml at module level

        self.name = name or getattr(features, "name", "FD")
        self.metric = FrechetInceptionDistance(feature=features, normalize=True).to(device)

    def update(self, images: Tensor, *, real: bool) -> None:
        self.metric.update(to_unit_range(images), real=real)

    def compute(self) -> dict[str, float]:
        return {self.name: float(self.metric.compute())}
