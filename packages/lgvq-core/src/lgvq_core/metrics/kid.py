"""Kernel Inception Distance on precomputed features: the unbiased MMD² estimate with the cubic polynomial
kernel ``k(x, y) = (xᵀy / D + 1)³`` (Bińkowski et al. 2018), averaged over random subsets.

Unlike the Fréchet distance it is unbiased, so it stays meaningful at small sample sizes. The estimator is
torchmetrics' own (``torchmetrics.image.kid.poly_mmd``, the one ``KernelInceptionDistance`` uses); the
subset sampling is done here with a seeded ``torch.Generator`` so the result is reproducible and the global
RNG is left alone. With features from a network other than Inception it is not KID proper: name it after
the features (e.g. "KID-EffLite0"), like ``FrechetDistance``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kernel_inception_distance"]


def _check_features(x: Tensor, what: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} features must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{what} features must be (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"KID needs at least 2 {what} samples, got {x.shape[0]}")
    if x.shape[1] < 1:
        raise ValueError(f"{what} features have no dimension (shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} features contain NaN or inf")


def kernel_inception_distance(
    real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(N, D) real and (M, D) generated features → (mean, std) of the unbiased MMD² over ``subsets`` subsets.

    Unitless (kernel units; often reported ×10³); can be slightly negative when the distributions match.
    Each subset draws ``min(subset_size, N, M)`` real and as many generated samples without replacement
    (seeded by ``seed``); the std is the population std over subsets, as in torchmetrics. Computed in float64.
    """
    _check_features(real, "real")
    _check_features(fake, "generated")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real D={real.shape[1]}, generated D={fake.shape[1]}")
    if isinstance(subsets, bool) or not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"subsets must be an int >= 1, got {subsets!r}")
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"subset_size must be an int >= 2, got {subset_size!r}")
    # torchmetrics is imported here: at module level it drags in transformers/huggingface_hub/yaml.
    from torchmetrics.image.kid import poly_mmd

    real, fake = real.detach(), fake.detach()
    n_real, n_fake = real.shape[0], fake.shape[0]
    size = min(subset_size, n_real, n_fake)
    dtype = torch.float32 if real.device.type == "mps" else torch.float64
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        idx_real = torch.randperm(n_real, generator=generator)[:size].to(real.device)
        idx_fake = torch.randperm(n_fake, generator=generator)[:size].to(fake.device)
        f_real = real[idx_real].to(dtype)
        f_fake = fake[idx_fake].to(device=real.device, dtype=dtype)
        scores.append(poly_mmd(f_real, f_fake, degree=3, gamma=None, coef=1.0))
    kid = torch.stack(scores)
    return float(kid.mean()), float(kid.std(unbiased=False))
