"""MaskGIT masking: the cosine schedule, random token masks for training, and the masked-token loss.

Shapes: B batch, N = h·w tokens, K codebook size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cosine_schedule", "masked_cross_entropy", "random_token_mask", "token_mask"]


def cosine_schedule(u: Tensor | float) -> Tensor:
    """Mask ratio γ(u) = cos(π/2·u): 1 at u = 0, 0 at u = 1."""
    return torch.cos(math.pi / 2 * torch.as_tensor(u, dtype=torch.float64))


def token_mask(ratio: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """B×N bool mask (True = masked) with ⌈ratio_b·N⌉ positions of row b masked (at least 1, at most N),
    chosen uniformly at random. ``ratio`` B (in [0, 1])."""
    device = ratio.device
    count = torch.ceil(ratio.to(torch.float64) * n).long().clamp(1, n)
    scores = torch.rand(ratio.shape[0], n, generator=generator, device=device)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < count[:, None].to(device)


def random_token_mask(
    batch: int, n: int, *, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> Tensor:
    """Training masks B×N: per example a ratio r = cos(π/2·u), u ~ U(0, 1], then ``token_mask``."""
    u = 1.0 - torch.rand(batch, generator=generator, device=device)  # (0, 1]
    return token_mask(cosine_schedule(u).to(device), n, generator=generator)


def masked_cross_entropy(
    logits: Tensor, targets: Tensor, masked: Tensor, *, per_example: bool = False
) -> Tensor:
    """Cross-entropy of ``targets`` B×N under ``logits`` B×N×K on the positions where ``masked`` B×N is True.

    Returns the mean over all masked positions of the batch, or (``per_example``) B per-example means.
    """
    ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # B×N
    ce = ce * masked
    if per_example:
        return ce.sum(dim=1) / masked.sum(dim=1).clamp(min=1)
    return ce.sum() / masked.sum().clamp(min=1)
