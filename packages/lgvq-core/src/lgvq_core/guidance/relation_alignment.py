"""Relationship Alignment Module: the code projector g used by L_ras (METHOD-LGVQ §3.6, §4.2)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class CodeProjector(nn.Module):
    """g(q) = LN(GELU(Linear_D→E(q))) applied to each code vector; the linear weight is initialised N(0,
    0.01)."""

    def __init__(self, code_dim: int, text_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(code_dim, text_dim)
        nn.init.normal_(self.linear.weight, std=0.01)
        self.norm = nn.LayerNorm(text_dim)

    def forward(self, quantized: Tensor) -> Tensor:
        """quantized B×D×h×w → B×(h·w)×E."""
        return self.norm(F.gelu(self.linear(quantized.flatten(2).transpose(1, 2))))
