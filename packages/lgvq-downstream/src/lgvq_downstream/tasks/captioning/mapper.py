"""Mapping networks: h×w image-code embeddings → P prefix vectors for the caption decoder (ClipCap's mapper,
fed with the tokenizer's code embeddings instead of a CLIP vector).

Shapes: B batch, I = h·w code positions, C model width, P prefix length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_downstream.transformer.attention import Block

__all__ = ["MLPMapper", "TransformerMapper", "build_mapper"]


class TransformerMapper(nn.Module):
    """P learned queries appended to the code embeddings (+ a learned grid position each); bidirectional
    pre-LN blocks; the queries' outputs are the prefix. B×I×C → B×P×C."""

    def __init__(
        self, grid: tuple[int, int], width: int, prefix_length: int, layers: int, heads: int
    ) -> None:
        super().__init__()
        self.grid_pos = nn.Parameter(torch.randn(grid[0] * grid[1], width) * 0.02)
        self.queries = nn.Parameter(torch.randn(prefix_length, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads, 4.0, 0.0, True) for _ in range(layers))
        for block in self.blocks:
            block.init_weights(layers)
        self.ln = nn.LayerNorm(width)

    def forward(self, embeds: Tensor) -> Tensor:
        b = embeds.shape[0]
        x = torch.cat([embeds + self.grid_pos, self.queries.expand(b, -1, -1)], dim=1)
        for i, block in enumerate(self.blocks):
            x = block(x, None, None, i)
        return self.ln(x[:, -self.queries.shape[0] :])


class MLPMapper(nn.Module):
    """The grid average-pooled to s×s, flattened, Linear → tanh → Linear to P·C (ClipCap's MLP mapper).
    B×I×C → B×P×C."""

    def __init__(self, grid: tuple[int, int], width: int, prefix_length: int, pool: int) -> None:
        super().__init__()
        self.grid = grid
        self.pool = (min(pool, grid[0]), min(pool, grid[1]))
        self.prefix_length = prefix_length
        inputs = self.pool[0] * self.pool[1] * width
        hidden = max(width, prefix_length * width // 2)
        self.mlp = nn.Sequential(
            nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, prefix_length * width)
        )

    def forward(self, embeds: Tensor) -> Tensor:
        b, _, c = embeds.shape
        grid = embeds.transpose(1, 2).reshape(b, c, *self.grid)
        pooled = F.adaptive_avg_pool2d(grid, self.pool).flatten(1)
        return self.mlp(pooled).view(b, self.prefix_length, c)


def build_mapper(
    kind: str, grid: tuple[int, int], width: int, prefix_length: int, *, layers: int, heads: int, pool: int
) -> nn.Module:
    """``"transformer"`` → :class:`TransformerMapper`; ``"mlp"`` → :class:`MLPMapper`."""
    if kind == "transformer":
        return TransformerMapper(grid, width, prefix_length, layers, heads)
    if kind == "mlp":
        return MLPMapper(grid, width, prefix_length, pool)
    raise ValueError(f"unknown mapper {kind!r}; choose 'transformer' or 'mlp'")
