"""Semantic Alignment Module: masked text prediction from the visual tokens (METHOD-LGVQ §3.3–3.5).

The visual tokens come from :class:`~lgvq_core.guidance.visual_encoder.VisualTokenEncoder`; this module holds
the per-position learnable [mask] vectors, the cross-attention decoder f_m (post-LN, self-attention restricted
to real tokens, cross-attention over all visual tokens, no positional encoding) and the MLM head tied to the
text encoder's input-embedding table.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FactoredMemory(NamedTuple):
    """Visual tokens given as ``features @ proj`` (B×N×W and W×E, W ≪ E) instead of the B×N×E product.

    The decoder's cross-attention keys and values are ``memory·W_k`` and ``memory·W_v``; with the factors it
    computes ``features·(proj·W_k)`` instead — the same function and parameters, re-associated, so the key and
    value projections cost N·W·E instead of N·E·E multiply-adds (6× fewer for W = 64, E = 384).
    """

    features: Tensor
    proj: Tensor

    def materialize(self) -> Tensor:
        """The B×N×E visual tokens."""
        return self.features @ self.proj


def factored_cross_attention(
    attention: nn.MultiheadAttention, query: Tensor, memory: FactoredMemory
) -> Tensor:
    """``attention(query, memory, memory)`` (no masks, batch first) with the memory projections folded into
    the key/value weights; query B×L×E → B×L×E. Attention dropout as ``nn.MultiheadAttention``'s."""
    e, heads = attention.embed_dim, attention.num_heads
    w_q, w_k, w_v = attention.in_proj_weight.split(e)
    b_q, b_k, b_v = attention.in_proj_bias.split(e)
    proj_t = memory.proj.t()
    q = F.linear(query, w_q, b_q)
    k = F.linear(memory.features, w_k @ proj_t, b_k)
    v = F.linear(memory.features, w_v @ proj_t, b_v)
    b, length, n = query.shape[0], query.shape[1], memory.features.shape[1]
    d = e // heads
    q = q.view(b, length, heads, d).transpose(1, 2)
    k = k.view(b, n, heads, d).transpose(1, 2)
    v = v.view(b, n, heads, d).transpose(1, 2)
    dropout = attention.dropout if attention.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    return attention.out_proj(out.transpose(1, 2).reshape(b, length, e))


class MaskedTextDecoder(nn.Module):
    """f_m: B×L×E masked text features + B×N×E visual tokens → B×L×E.

    Self-attention is allowed only between real tokens (``pad ⊗ pad``; disallowed logits get −1e4 as in the
    official code, so padding rows stay finite). The layers are ``nn.TransformerDecoderLayer`` (their
    parameters and state-dict names); with a :class:`FactoredMemory` the same layer computation runs with
    the re-associated cross-attention.
    """

    def __init__(
        self, width: int, layers: int = 2, heads: int = 1, dropout: float = 0.1, norm_first: bool = False
    ) -> None:
        super().__init__()
        self.heads = heads
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(
                width,
                heads,
                dim_feedforward=width,
                dropout=dropout,
                activation="relu",
                layer_norm_eps=1e-12,
                batch_first=True,
                norm_first=norm_first,
            )
            for _ in range(layers)
        )
        for layer in self.layers:
            for module in layer.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=width**-0.5)

    def forward(self, text: Tensor, visual: Tensor | FactoredMemory, valid: Tensor) -> Tensor:
        pair = valid.unsqueeze(2) & valid.unsqueeze(1)
        bias = torch.zeros(pair.shape, dtype=text.dtype, device=text.device).masked_fill(~pair, -1e4)
        bias = bias.repeat_interleave(self.heads, dim=0)
        x = text
        for layer in self.layers:
            if isinstance(visual, FactoredMemory):
                x = _decoder_layer(layer, x, visual, bias)
            else:
                x = layer(x, visual, tgt_mask=bias)
        return x


def _decoder_layer(
    layer: nn.TransformerDecoderLayer, x: Tensor, memory: FactoredMemory, bias: Tensor
) -> Tensor:
    """``layer(x, memory.materialize(), tgt_mask=bias)``, computed with :func:`factored_cross_attention`."""

    def self_block(h: Tensor) -> Tensor:
        return layer.dropout1(layer.self_attn(h, h, h, attn_mask=bias, need_weights=False)[0])

    def cross_block(h: Tensor) -> Tensor:
        return layer.dropout2(factored_cross_attention(layer.multihead_attn, h, memory))

    def feed_forward(h: Tensor) -> Tensor:
        return layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(h)))))

    if layer.norm_first:
        x = x + self_block(layer.norm1(x))
        x = x + cross_block(layer.norm2(x))
        return x + feed_forward(layer.norm3(x))
    x = layer.norm1(x + self_block(x))
    x = layer.norm2(x + cross_block(x))
    return layer.norm3(x + feed_forward(x))


class TiedTokenHead(nn.Module):
    """MLM head: ``LN(GELU(Linear(h))) · Eᵀ + b`` with E the frozen input-embedding table (V×E), passed per
    call."""

    def __init__(self, width: int, vocab_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: Tensor, embedding_table: Tensor, candidates: Tensor | None = None) -> Tensor:
        """hidden ...×E → logits ...×V, or ...×C over the token ids ``candidates`` (C) only."""
        if embedding_table.shape != (self.bias.shape[0], hidden.shape[-1]):
            raise ValueError(
                f"embedding table {tuple(embedding_table.shape)} does not match the head "
                f"({self.bias.shape[0]}×{hidden.shape[-1]})"
            )
        h = self.norm(F.gelu(self.dense(hidden)))
        table, bias = embedding_table.detach(), self.bias
        if candidates is not None:
            table, bias = table[candidates], bias[candidates]
        return h @ table.to(h.dtype).t() + bias


class SemanticAlignment(nn.Module):
    """Mask vectors + decoder + tied head: predicts the masked caption tokens from the visual tokens.

    Args:
        text_dim: E, the text encoder's width.
        vocab_size: V, the text encoder's vocabulary.
        context_length: L, one learnable [mask] vector per position.
    """

    def __init__(
        self,
        text_dim: int,
        vocab_size: int,
        context_length: int,
        layers: int = 2,
        heads: int = 1,
        dropout: float = 0.1,
        norm_first: bool = False,
    ) -> None:
        super().__init__()
        if text_dim % heads:
            raise ValueError(f"text width {text_dim} is not divisible by decoder_heads {heads}")
        self.mask_vectors = nn.Parameter(torch.randn(context_length, text_dim) * 0.01)
        self.decoder = MaskedTextDecoder(text_dim, layers, heads, dropout, norm_first)
        self.head = TiedTokenHead(text_dim, vocab_size)

    def masked_input(self, token_states: Tensor, masked: Tensor, valid: Tensor) -> Tensor:
        """``T_msk = where(masked, M, T) · pad`` (B×L×E)."""
        mask_vectors = self.mask_vectors[: token_states.shape[1]].to(token_states.dtype)
        swapped = torch.where(masked.unsqueeze(-1), mask_vectors.expand_as(token_states), token_states)
        return swapped * valid.unsqueeze(-1).to(token_states.dtype)

    def forward(
        self, token_states: Tensor, masked: Tensor, valid: Tensor, visual: Tensor | FactoredMemory
    ) -> Tensor:
        """Decoder output B×L×E for the masked caption attending to the visual tokens B×N×E (or their
        factors)."""
        return self.decoder(self.masked_input(token_states, masked, valid), visual, valid)
