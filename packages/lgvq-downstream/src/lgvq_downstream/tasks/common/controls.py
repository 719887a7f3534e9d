"""The shuffled-codes control: every image is paired with the codes of another image of the same split."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["derangement"]


def derangement(n: int, seed: int = 0) -> Tensor:
    """int64 permutation of 0..n−1 with no fixed point (n ≥ 2): position i takes the codes of image
    ``out[i] ≠ i``. A random cyclic order, shifted by one; n = 1 returns ``[0]``."""
    if n < 1:
        raise ValueError(f"need at least one image, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out = torch.empty(n, dtype=torch.long)
    out[order] = order.roll(-1)
    return out
