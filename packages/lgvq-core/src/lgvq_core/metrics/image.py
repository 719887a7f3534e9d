"""PSNR and SSIM over an evaluation set (torchmetrics), on images mapped from [-1, 1] to [0, 1].

Per image, then averaged over images (CVQ's convention); torchmetrics syncs its states across ranks at
``compute``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["to_unit_range", "ReconstructionMetrics"]


def to_unit_range(images: Tensor) -> Tensor:
    """[-1, 1] → [0, 1], clamped, float32."""
    return ((images.float().clamp(-1.0, 1.0) + 1.0) / 2.0).clamp(0.0, 1.0)


class ReconstructionMetrics:
    """Accumulate PSNR (dB, data range 1) and SSIM (Gaussian window 11) over batches."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        # torchmetrics is imported here: at module level it drags in transformers/huggingface_hub/yaml.
        from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

        self.psnr = PeakSignalNoiseRatio(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3)).to(
            device
        )
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0).to(device)

    def update(self, images: Tensor, reconstruction: Tensor) -> None:
        """images, reconstruction: B×C×H×W in [-1, 1] (SSIM needs H, W ≥ 11)."""
        real, fake = to_unit_range(images), to_unit_range(reconstruction)
        self.psnr.update(fake, real)
        self.ssim.update(fake, real)

    def compute(self) -> dict[str, float]:
        return {"psnr": float(self.psnr.compute()), "ssim": float(self.ssim.compute())}
