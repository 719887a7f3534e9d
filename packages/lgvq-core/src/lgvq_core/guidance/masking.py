"""Which caption tokens are masked for masked-text prediction (METHOD-LGVQ §3.4).

Training: one ratio ``r ~ TruncNormal(μ=0.5, σ=0.1)`` on ``[0.1, 0.3]`` per step (the draws pile up near 0.3,
mean ≈ 0.263), then each real, non-special token is masked independently with probability ``r`` (so the count
is binomial, as in the official code). Evaluation (paper Table 3): exactly ``k`` random tokens per caption.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_mask_ratio(
    mean: float = 0.5,
    std: float = 0.1,
    low: float = 0.1,
    high: float = 0.3,
    generator: torch.Generator | None = None,
) -> float:
    """One draw of the truncated-normal mask ratio."""
    value = torch.empty(1)
    torch.nn.init.trunc_normal_(value, mean=mean, std=std, a=low, b=high, generator=generator)
    return float(value.clamp(low, high))


def sample_token_mask(
    attention_mask: Tensor,
    special_mask: Tensor,
    ratio: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """B×L bool, True for masked positions: each maskable token (attended, not special) with probability
    ``ratio``."""
    maskable = attention_mask & ~special_mask
    draws = torch.rand(maskable.shape, generator=generator, device="cpu").to(maskable.device)
    return maskable & (draws < ratio)


def exact_token_mask(
    attention_mask: Tensor,
    special_mask: Tensor,
    count: int,
    generator: torch.Generator | None = None,
    max_position: int | None = None,
) -> Tensor:
    """B×L bool with exactly ``min(count, maskable)`` masked tokens per row, chosen uniformly at random.

    Args:
        max_position: only positions ``< max_position`` may be masked (the official evaluation uses the first
        28).
    """
    maskable = attention_mask & ~special_mask
    if max_position is not None:
        maskable[:, max_position:] = False
    scores = torch.rand(maskable.shape, generator=generator, device="cpu").to(maskable.device)
    scores = scores.masked_fill(~maskable, -1.0)
    order = scores.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return maskable & (rank < count)
