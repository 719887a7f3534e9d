"""Build the perceptual loss named by a ``LossConfig`` (offline default: EfficientNet-Lite0 features)."""

from __future__ import annotations

from lgvq_core.config import LossConfig
from lgvq_core.losses.perceptual import PerceptualLoss

__all__ = ["build_perceptual"]


def build_perceptual(config: LossConfig) -> PerceptualLoss:
    """``efficientnet-lite0`` → "perceptual-EffLite0"; ``lpips-vgg`` → LPIPS-VGG from
    ``perceptual_weights_path``."""
    if config.perceptual_net == "efficientnet-lite0":
        from lgvq_core.models.feature_nets import EfficientNetLite0Features

        features = EfficientNetLite0Features()
        # mean over the taps (not the sum): keeps the uncalibrated distance on LPIPS's order of magnitude
        # (≈0–2)
        return PerceptualLoss(
            features,
            name="perceptual-EffLite0",
            layer_weights=[1.0 / len(features.taps)] * len(features.taps),
        )
    if config.perceptual_net == "lpips-vgg":
        from lgvq_core.losses.lpips_vgg import load_lpips_vgg

        if config.perceptual_weights_path is None:
            raise ValueError("loss.perceptual_weights_path is required for perceptual_net='lpips-vgg'")
        return load_lpips_vgg(config.perceptual_weights_path)
    raise ValueError(f"loss.perceptual_net={config.perceptual_net!r} builds no perceptual network")
