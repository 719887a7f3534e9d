"""Pre-LN transformer block on ``torch.nn.functional.scaled_dot_product_attention``, and its attention mask.

Shapes: B batch, N new (query) positions, L cached positions, H heads, Dh head width, C model width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_downstream.transformer.cache import KVCache
from lgvq_downstream.transformer.config import AttentionMode

__all__ = ["Block", "SelfAttention", "attention_mask"]


def attention_mask(
    mode: AttentionMode,
    query_positions: Tensor,
    key_length: int,
    *,
    prefix_length: int = 0,
    key_mask: Tensor | None = None,
) -> Tensor | None:
    """Boolean mask (True = may attend) for SDPA.

    Args:
        mode: ``"causal"`` (key ≤ query), ``"bidirectional"`` (all keys), ``"prefix"`` (key ≤
            max(query, prefix_length − 1): bidirectional inside the prefix, causal after it).
        query_positions: N absolute positions of the queries (int64).
        key_length: number of keys (positions 0..key_length−1).
        prefix_length: length of the bidirectional prefix (``"prefix"`` mode only).
        key_mask: B×key_length, True for real tokens; padded keys are hidden.

    Returns:
        ``None`` (attend everywhere) or a 1×1×N×K / B×1×N×K boolean tensor. Every query may always attend to
        itself, so no row is empty (an empty row would make SDPA return NaN).
    """
    keys = torch.arange(key_length, device=query_positions.device)
    queries = query_positions[:, None]
    if mode == "bidirectional":
        if key_mask is None:
            return None
        allowed = torch.ones(query_positions.numel(), key_length, dtype=torch.bool, device=keys.device)
    elif mode == "causal":
        allowed = keys[None, :] <= queries
    elif mode == "prefix":
        allowed = keys[None, :] <= torch.clamp(queries, min=prefix_length - 1)
    else:
        raise ValueError(f"unknown attention mode {mode!r}")
    allowed = allowed[None, None]
    if key_mask is not None:
        allowed = allowed & key_mask.to(torch.bool)[:, None, None, :]
    return allowed | (keys[None, :] == queries)[None, None]


class SelfAttention(nn.Module):
    """Multi-head self-attention; keys/values of earlier positions may come from a ``KVCache``."""

    def __init__(self, width: int, heads: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(width, 3 * width, bias=bias)
        self.proj = nn.Linear(width, width, bias=bias)

    def forward(self, x: Tensor, mask: Tensor | None, cache: KVCache | None, layer: int) -> Tensor:
        """x B×N×C → B×N×C."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """x + attn(LN(x)); x + MLP(LN(x)) (GPT-2 pre-LN)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float, bias: bool) -> None:
        super().__init__()
        hidden = int(round(width * mlp_ratio))
        self.ln_1 = nn.LayerNorm(width, bias=bias)
        self.attn = SelfAttention(width, heads, dropout, bias)
        self.ln_2 = nn.LayerNorm(width, bias=bias)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden, bias=bias),
            nn.GELU(approximate="tanh"),
            nn.Linear(hidden, width, bias=bias),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None, cache: KVCache | None, layer: int) -> Tensor:
        x = x + self.drop(self.attn(self.ln_1(x), mask, cache, layer))
        return x + self.drop(self.mlp(self.ln_2(x)))

    def init_weights(self, layers: int) -> None:
        """GPT-2 init: N(0, 0.02) weights, zero biases, residual projections scaled by 1/√(2·layers)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for proj in (self.attn.proj, self.mlp[2]):
            nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * layers))
