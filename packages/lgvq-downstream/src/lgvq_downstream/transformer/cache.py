"""``KVCache``: per-layer keys and values of the positions already processed, for incremental decoding.

Shapes: keys/values B×H×L×Dh per layer; ``key_mask`` B×L (True = real token) when any padding was seen.
The cache also remembers ``prefix_length`` (prefix-LM mode), so that a step that feeds one new token builds
the same mask and positions as a full recompute.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["KVCache"]


class KVCache:
    """Grows by ``append`` (one call per layer per forward); ``reorder`` selects rows (beam search)."""

    def __init__(self, num_layers: int) -> None:
        self.keys: list[Tensor | None] = [None] * num_layers
        self.values: list[Tensor | None] = [None] * num_layers
        self.key_mask: Tensor | None = None
        self.prefix_length: int | None = None

    @property
    def length(self) -> int:
        """Positions already cached (L)."""
        first = self.keys[0]
        return 0 if first is None else first.shape[2]

    def append(self, layer: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Add B×H×N×Dh keys/values for ``layer``; return the full B×H×(L+N)×Dh tensors."""
        old_k, old_v = self.keys[layer], self.values[layer]
        if old_k is not None and old_v is not None:
            keys = torch.cat([old_k, keys], dim=2)
            values = torch.cat([old_v, values], dim=2)
        self.keys[layer], self.values[layer] = keys, values
        return keys, values

    def extend_mask(
        self, new_mask: Tensor | None, batch: int, new_length: int, device: torch.device
    ) -> Tensor | None:
        """Record the B×N key mask of the new positions (``None`` = all real) before the layers ``append``;
        return the B×(L+N) mask of all keys, or ``None`` when every key is real."""
        if new_mask is None and self.key_mask is None:
            return None
        if new_mask is None:
            new_mask = torch.ones(batch, new_length, dtype=torch.bool, device=device)
        old = self.key_mask
        if old is None:
            old = torch.ones(batch, self.length, dtype=torch.bool, device=device)
        self.key_mask = torch.cat([old, new_mask.to(torch.bool)], dim=1)
        return self.key_mask

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` (int64, length B') of every tensor, e.g. the parents of the surviving beams."""
        for i, (k, v) in enumerate(zip(self.keys, self.values, strict=True)):
            if k is not None and v is not None:
                self.keys[i], self.values[i] = k.index_select(0, index), v.index_select(0, index)
        if self.key_mask is not None:
            self.key_mask = self.key_mask.index_select(0, index)

    def repeat_interleave(self, repeats: int) -> None:
        """Repeat every row ``repeats`` times in place (B → B·repeats; rows of one item stay adjacent)."""
        batch = self.keys[0].shape[0] if self.keys[0] is not None else 0
        index = torch.arange(batch).repeat_interleave(repeats)
        if self.keys[0] is not None:
            index = index.to(self.keys[0].device)
        self.reorder(index)
