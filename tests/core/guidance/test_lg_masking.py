"""Mask sampling: the truncated-normal ratio and which tokens may be masked."""

from __future__ import annotations

import torch

from lgvq_core.guidance.masking import exact_token_mask, sample_mask_ratio, sample_token_mask


def test_mask_ratio_follows_the_truncated_normal() -> None:
    generator = torch.Generator().manual_seed(0)
    draws = torch.tensor([sample_mask_ratio(generator=generator) for _ in range(4000)])
    assert float(draws.min()) >= 0.1 and float(draws.max()) <= 0.3
    # μ = 0.5 lies above the upper bound, so the mass piles up near 0.3 (mean ≈ 0.263, median ≈ 0.272)
    assert abs(float(draws.mean()) - 0.263) < 0.005
    assert abs(float(draws.median()) - 0.272) < 0.006


def test_bernoulli_mask_skips_special_and_padding() -> None:
    attention = torch.tensor([[1, 1, 1, 1, 1, 0, 0]] * 500, dtype=torch.bool)
    special = torch.zeros_like(attention)
    special[:, 0] = special[:, 4] = True
    masked = sample_token_mask(attention, special, ratio=0.25, generator=torch.Generator().manual_seed(1))
    assert not masked[:, [0, 4, 5, 6]].any()
    rate = float(masked[:, 1:4].float().mean())
    assert abs(rate - 0.25) < 0.03


def test_exact_mask_has_the_requested_count() -> None:
    attention = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    special = torch.zeros_like(attention)
    special[0, [0, 5]] = True
    special[1, [0, 2]] = True
    for seed in range(20):
        masked = exact_token_mask(attention, special, count=3, generator=torch.Generator().manual_seed(seed))
        assert masked.sum(dim=1).tolist() == [3, 1]  # row 1 has a single maskable token
        assert not (masked & (special | ~attention)).any()
    limited = exact_token_mask(attention, special, count=3, max_position=3)
    assert limited[0].nonzero().flatten().tolist() == [1, 2]
