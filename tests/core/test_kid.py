"""KID on precomputed features against hand-computed values and a hand-written unbiased MMD²."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from torch import nn

from lgvq_core.metrics.kid import kernel_inception_distance


def _k(x: torch.Tensor, y: torch.Tensor) -> float:
    return (float(x @ y) / x.numel() + 1.0) ** 3


def _unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Σ_{i≠j} k(x_i, x_j) / m(m−1) + Σ_{i≠j} k(y_i, y_j) / m(m−1) − 2 Σ_{i,j} k(x_i, y_j) / m²,
    pair by pair."""
    m = x.shape[0]
    xx = sum(_k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(_k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(_k(x[i], y[j]) for i, j in itertools.product(range(m), range(m))) / (m * m)
    return xx + yy - 2 * xy


def test_hand_computed_one_dimensional_case():
    # D = 1, k(x, y) = (xy + 1)^3; X = {0, 1}, Y = {2, 3}:
    # XX: k(0,1) = 1, twice / 2 = 1; YY: k(2,3) = 343, twice / 2 = 343;
    # XY: k(0,2) + k(0,3) + k(1,2) + k(1,3) = 1 + 1 + 27 + 64 = 93 → 2 * 93 / 4 = 46.5; KID = 1 + 343 − 46.5
    mean, std = kernel_inception_distance(
        torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]]), subsets=3
    )
    assert mean == pytest.approx(297.5, abs=1e-9)
    assert std == 0.0  # every subset is the whole set


def test_full_set_equals_hand_written_unbiased_mmd2():
    g = torch.Generator().manual_seed(3)
    real = torch.randn(12, 5, generator=g)
    fake = torch.randn(12, 5, generator=g) * 1.3 + 0.4
    mean, std = kernel_inception_distance(real, fake, subsets=4, subset_size=12)
    assert mean == pytest.approx(_unbiased_mmd2(real.double(), fake.double()), abs=1e-6)
    assert std == pytest.approx(0.0, abs=1e-9)
    # subset_size larger than the sets is clamped to min(N, M): still one full set
    assert kernel_inception_distance(real, fake, subsets=2, subset_size=1000)[0] == pytest.approx(
        mean, abs=1e-9
    )


def test_unequal_sizes_are_clamped_to_the_smaller_set():
    g = torch.Generator().manual_seed(4)
    real = torch.randn(7, 3, generator=g)
    fake = torch.randn(30, 3, generator=g)
    mean, std = kernel_inception_distance(real, fake, subsets=5, subset_size=50)
    assert std > 0.0  # the 7 generated samples differ between subsets


def test_matches_torchmetrics_kernel_inception_distance_on_the_full_set():
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(5)
    real = torch.randn(20, 8, generator=g, dtype=torch.float64)
    fake = torch.randn(20, 8, generator=g, dtype=torch.float64) + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        metric = KernelInceptionDistance(feature=nn.Identity(), subsets=2, subset_size=20)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    tm_mean, _ = metric.compute()
    assert kernel_inception_distance(real, fake, subsets=2, subset_size=20)[0] == pytest.approx(
        float(tm_mean), abs=1e-9
    )


def test_same_distribution_near_zero_shifted_clearly_positive():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 16, generator=g)
    same = torch.randn(200, 16, generator=g)
    shifted = torch.randn(200, 16, generator=g) + 1.0
    kid_same, std_same = kernel_inception_distance(real, same, subsets=20, subset_size=100)
    kid_shift, _ = kernel_inception_distance(real, shifted, subsets=20, subset_size=100)
    assert abs(kid_same) < 0.1
    assert std_same > 0.0
    assert kid_shift > 2.0
    assert kid_shift > 20 * abs(kid_same)


def test_seeded_and_leaves_the_global_rng_alone():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(50, 4, generator=g)
    fake = torch.randn(50, 4, generator=g) + 0.2
    state = torch.get_rng_state()
    a = kernel_inception_distance(real, fake, subsets=5, subset_size=10, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert kernel_inception_distance(real, fake, subsets=5, subset_size=10, seed=7) == a
    assert kernel_inception_distance(real, fake, subsets=5, subset_size=10, seed=8) != a


def test_input_validation():
    ok = torch.randn(4, 3)
    with pytest.raises(ValueError, match="at least 2 real samples"):
        kernel_inception_distance(torch.randn(1, 3), ok)
    with pytest.raises(ValueError, match="at least 2 generated samples"):
        kernel_inception_distance(ok, torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        kernel_inception_distance(torch.randn(4, 3, 2), ok)
    with pytest.raises(ValueError, match="feature sizes differ"):
        kernel_inception_distance(ok, torch.randn(4, 5))
    with pytest.raises(ValueError, match="NaN"):
        kernel_inception_distance(ok, torch.tensor([[0.0, 1.0, float("nan")], [0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="subsets"):
        kernel_inception_distance(ok, ok, subsets=0)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(ok, ok, subset_size=1)
    with pytest.raises(TypeError):
        kernel_inception_distance(ok.numpy(), ok)
