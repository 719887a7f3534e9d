"""Codebook usage and perplexity over a whole evaluation set (all positions of all images, all ranks).

usage = fraction of the K codes selected at least once; perplexity = exp(−Σ p̄_k log p̄_k) with p̄ the
histogram
normalised over the set (range [1, K]; BASELINES §5.3). Per-batch training perplexity is not comparable.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lgvq_core.quantizers.distributed import all_reduce_sum

__all__ = ["CodebookUsage", "perplexity"]


def perplexity(counts: Tensor) -> float:
    """exp(entropy) of a histogram of code counts."""
    p = counts.double() / counts.sum().clamp_min(1)
    return float(torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum()))


class CodebookUsage:
    """Histogram of code indices; ``compute()`` all-reduces it over ranks (call it on every rank)."""

    def __init__(self, num_codes: int, device: torch.device | str = "cpu") -> None:
        self.num_codes = num_codes
        self.counts = torch.zeros(num_codes, dtype=torch.float64, device=device)

    def update(self, indices: Tensor) -> None:
        """indices: int64 of any shape with values in [0, num_codes)."""
        flat = indices.reshape(-1).to(self.counts.device)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.num_codes):
            raise ValueError(f"indices out of range [0, {self.num_codes})")
        self.counts += torch.bincount(flat, minlength=self.num_codes).double()

    def compute(self) -> dict[str, float | list[float]]:
        counts = all_reduce_sum(self.counts.clone())
        return {
            "usage": float((counts > 0).double().mean()),
            "perplexity": perplexity(counts),
            "tokens": float(counts.sum()),
            "histogram": counts.tolist(),
        }
