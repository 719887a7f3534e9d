"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lgvq_core.metrics.codebook import CodebookUsage, perplexity
from lgvq_core.metrics.frechet import FrechetDistance
from lgvq_core.metrics.image import ReconstructionMetrics


def test_psnr_is_averaged_per_image_on_unit_range():
    real = torch.zeros(2, 3, 16, 16)  # 0.5 grey in [0, 1]
    fake = real.clone()
    fake[0] += 0.2  # error 0.1 in [0, 1] → 20 dB
    fake[1] += 0.02  # error 0.01 → 40 dB
    m = ReconstructionMetrics()
    m.update(real, fake)
    out = m.compute()
    assert out["psnr"] == pytest.approx(30.0, abs=1e-3)
    assert 0.0 < out["ssim"] <= 1.0


def test_usage_and_perplexity_over_batches():
    usage = CodebookUsage(8)
    usage.update(torch.tensor([[0, 0], [1, 2]]))
    usage.update(torch.tensor([3, 3, 3, 3]))
    out = usage.compute()
    assert out["usage"] == 4 / 8 and out["tokens"] == 8
    p = torch.tensor([2, 1, 1, 4]) / 8.0
    assert out["perplexity"] == pytest.approx(math.exp(-(p * p.log()).sum().item()))
    assert perplexity(torch.ones(5)) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="out of range"):
        usage.update(torch.tensor([8]))


class _MeanColour(nn.Module):
    num_features = 3
    name = "FD-meancolour"

    def forward(self, x):
        return x.mean(dim=(2, 3)).double()


def test_frechet_distance_with_an_injected_feature_net():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(64, 3, 8, 8, generator=g) * 2 - 1
    b = torch.rand(64, 3, 8, 8, generator=g) * 2 - 1
    same = FrechetDistance(_MeanColour())
    same.update(a, real=True)
    same.update(a, real=False)
    assert same.compute()["FD-meancolour"] == pytest.approx(0.0, abs=1e-6)
    shifted = FrechetDistance(_MeanColour())
    shifted.update(b, real=True)
    shifted.update((b + 1.0).clamp(-1, 1), real=False)
    near = FrechetDistance(_MeanColour())
    near.update(b, real=True)
    near.update(a, real=False)
    assert shifted.compute()["FD-meancolour"] > near.compute()["FD-meancolour"] > 0
