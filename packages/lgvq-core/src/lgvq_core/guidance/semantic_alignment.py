"""Semantic Alignment Module: masked text prediction from the visual tokens (METHOD-LGVQ §3.3–3.5).

The visual tokens come from :class:`~lgvq_core.guidance.visual_encoder.VisualTokenEncoder`; this module holds
the per-position learnable [mask] vectors, the cross-attention decoder f_m (post-LN, self-attention restricted
to real tokens, cross-attention over all visual tokens, no positional encoding) and the MLM head tied to the
text encoder's input-embedding table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedTextDecoder(nn.Module):
    """f_m: B×L×E masked text features + B×N×E visual tokens → B×L×E.

    Self-attention is allowed only between real tokens (``pad ⊗ pad``; disallowed logits get −1e4 as in the
    official code, so padding rows stay finite).
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

    def forward(self, text: Tensor, visual: Tensor, valid: Tensor) -> Tensor:
        pair = valid.unsqueeze(2) & valid.unsqueeze(1)
        bias = torch.zeros(pair.shape, dtype=text.dtype, device=text.device).masked_fill(~pair, -1e4)
        bias = bias.repeat_interleave(self.heads, dim=0)
        x = text
        for layer in self.layers:
            x = layer(x, visual, tgt_mask=bias)
        return x


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

    def forward(self, token_states: Tensor, masked: Tensor, valid: Tensor, visual: Tensor) -> Tensor:
        """Decoder output B×L×E for the masked caption attending to the visual tokens B×N×E."""
        return self.decoder(self.masked_input(token_states, masked, valid), visual, valid)
