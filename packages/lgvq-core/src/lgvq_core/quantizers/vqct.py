"""VQCT quantizer: codebook transfer from word vectors through a 2-layer GCN (BASELINES §4.3–4.5).

Codes C = Â·dropout(ReLU(Â·X·W1 + b1))·W2 + b2 over the graph of adjectives + nouns (symmetric co-occurrence
counts, self-loops, Â = D̃^−½(A + I)D̃^−½), recomputed from the frozen word vectors X at every forward; only
the GCN
weights train. The latent has 2·d channels: the first d are quantized against the adjective codes, the last d
against
the noun codes, each with its own straight-through estimator and taming-style loss pair (summed over
branches).

Tokens and k: during training the adjective half uses the mean of its ``topk`` nearest adjective codes (VQCT:
k = 2).
A token is an (adjective, noun) pair, so ``assign``/``embed`` and eval-mode quantization use k = 1 (the
nearest
adjective): decoding tokens then reproduces eval-mode reconstructions exactly. The pair is packed into one
int64
index ``adjective * num_nouns + noun`` (``num_tokens = A·N``); ``split_pairs`` unpacks it for second-stage
models with
separate adjective/noun heads (VQCT's GPT). ``usage`` counts are over the A + N word codes (adjectives first).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.config import QuantizerConfig
from lgvq_core.outputs import QuantizerOutput
from lgvq_core.quantizers.search import nearest_code, topk_codes
from lgvq_core.quantizers.vq import from_rows, to_rows
from lgvq_core.quantizers.vqct_vocabulary import WordCodebookSpec

__all__ = ["VQCTQuantizer", "normalized_adjacency"]


def normalized_adjacency(
    edge_index: Tensor, edge_weight: Tensor, num_nodes: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Symmetric GCN normalisation with self-loops.

    Args:
        edge_index: 2×E (source, target) node indices (one direction; both are added).
        edge_weight: E weights.

    Returns:
        (src, dst, value) of Â's off-diagonal entries (both directions) and the num_nodes diagonal values.
    """
    src = torch.cat([edge_index[0], edge_index[1]])
    dst = torch.cat([edge_index[1], edge_index[0]])
    w = torch.cat([edge_weight, edge_weight]).float()
    degree = torch.ones(num_nodes, device=w.device).index_add_(0, dst, w)  # self-loop weight 1
    inv_sqrt = degree.rsqrt()
    return src, dst, w * inv_sqrt[src] * inv_sqrt[dst], inv_sqrt * inv_sqrt


class VQCTQuantizer(nn.Module):
    """VQCT quantizer (see module docstring).

    Args:
        num_adjectives, num_nouns, word_dim, num_edges: vocabulary sizes (buffers are created with these
        shapes).
        embed_dim: d, the width of each code; the latent has 2·d channels.
        topk: adjectives averaged during training.
        gcn_hidden, gcn_dropout: GCN hidden width and dropout between the layers.
        spec: the ``WordCodebookSpec`` to fill the buffers from (None: zeros, to be loaded from a state dict).
        vocabulary: {"adjectives": [...], "nouns": [...]} when no spec is given (saved in config.json).
    """

    def __init__(
        self,
        *,
        num_adjectives: int,
        num_nouns: int,
        word_dim: int,
        num_edges: int,
        embed_dim: int,
        topk: int = 2,
        gcn_hidden: int = 256,
        gcn_dropout: float = 0.5,
        codebook_weight: float = 1.0,
        commitment_weight: float = 0.25,
        legacy: bool = False,
        search_chunk_size: int = 1024,
        spec: WordCodebookSpec | None = None,
        vocabulary: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__()
        if min(num_adjectives, num_nouns, word_dim) < 1:
            raise ValueError(
                "VQCT needs a vocabulary: build it with vqct_vocabulary.build_word_codebook and pass spec= "
                f"(got {num_adjectives} adjectives, {num_nouns} nouns, word_dim {word_dim})"
            )
        if topk > num_adjectives:
            raise ValueError(f"topk={topk} exceeds the {num_adjectives} adjectives")
        self.num_adjectives, self.num_nouns = num_adjectives, num_nouns
        self.embed_dim = embed_dim
        self.topk = topk
        self.search_chunk_size = search_chunk_size
        if legacy:
            self.codebook_term_weight, self.commitment_term_weight = commitment_weight, codebook_weight
        else:
            self.codebook_term_weight, self.commitment_term_weight = codebook_weight, commitment_weight
        self.register_buffer("word_vectors", torch.zeros(num_adjectives + num_nouns, word_dim))
        self.register_buffer("edge_index", torch.zeros(2, num_edges, dtype=torch.long))
        self.register_buffer("edge_weight", torch.zeros(num_edges))
        self.gcn1 = nn.Linear(word_dim, gcn_hidden)
        self.gcn2 = nn.Linear(gcn_hidden, embed_dim)
        self.dropout = nn.Dropout(gcn_dropout)
        if spec is not None:
            if (len(spec.adjectives), len(spec.nouns)) != (num_adjectives, num_nouns):
                raise ValueError("spec sizes disagree with num_adjectives/num_nouns")
            edges = spec.edge_index
            if edges.shape[1] != num_edges:
                raise ValueError(f"spec has {edges.shape[1]} edges, config says {num_edges}")
            self.word_vectors.copy_(torch.cat([spec.adjective_vectors, spec.noun_vectors]).float())
            self.edge_index.copy_(torch.stack([edges[0], edges[1] + num_adjectives]))
            self.edge_weight.copy_(spec.edge_weight)
            vocabulary = {"adjectives": list(spec.adjectives), "nouns": list(spec.nouns)}
        self.vocabulary = vocabulary or {"adjectives": [], "nouns": []}

    @classmethod
    def from_config(
        cls,
        config: QuantizerConfig,
        *,
        spec: WordCodebookSpec | None = None,
        extra: dict[str, Any] | None = None,
    ) -> VQCTQuantizer:
        v = config.vqct
        return cls(
            num_adjectives=v.num_adjectives,
            num_nouns=v.num_nouns,
            word_dim=v.word_dim,
            num_edges=v.num_edges,
            embed_dim=config.embed_dim,
            topk=v.topk,
            gcn_hidden=v.gcn_hidden,
            gcn_dropout=v.gcn_dropout,
            codebook_weight=config.codebook_weight,
            commitment_weight=config.commitment_weight,
            legacy=config.legacy,
            search_chunk_size=config.search_chunk_size,
            spec=spec,
            vocabulary=(extra or {}).get("vocabulary"),
        )

    def extra_config(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary}

    @property
    def latent_dim(self) -> int:
        return 2 * self.embed_dim

    @property
    def num_tokens(self) -> int:
        """Number of (adjective, noun) pair tokens, A·N."""
        return self.num_adjectives * self.num_nouns

    def _propagate(self, x: Tensor) -> Tensor:
        src, dst, value, self_value = normalized_adjacency(self.edge_index, self.edge_weight, x.shape[0])
        out = x * self_value.unsqueeze(1)
        return out.index_add(0, dst, x[src] * value.unsqueeze(1))

    def get_codebook(self, *, deterministic: bool = True) -> Tensor:
        """(A + N)×d word codes from the GCN (adjectives first), fp32; dropout only when training and not
        ``deterministic``."""
        with torch.autocast(device_type=self.word_vectors.device.type, enabled=False):
            h = F.relu(self._propagate(self.gcn1(self.word_vectors.float())))
            if self.training and not deterministic:
                h = self.dropout(h)
            return self._propagate(self.gcn2(h))

    def split_pairs(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Pair tokens → (adjective index, noun index), each shaped like ``indices``."""
        return indices // self.num_nouns, indices % self.num_nouns

    def embed(self, indices: Tensor) -> Tensor:
        """Pair tokens B×h×w → B×2d×h×w (adjective code, noun code)."""
        if indices.dtype != torch.long or indices.ndim != 3:
            raise ValueError(f"expected int64 indices B×h×w, got {indices.dtype} {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_tokens):
            raise ValueError(f"indices out of range [0, {self.num_tokens})")
        codes = self.get_codebook()
        adj, noun = self.split_pairs(indices)
        out = torch.cat([codes[: self.num_adjectives][adj], codes[self.num_adjectives :][noun]], dim=-1)
        return out.permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def assign(self, z: Tensor) -> Tensor:
        """Pair tokens B×h×w for latents B×2d×h×w (nearest adjective, nearest noun), no state change."""
        b, _, h, w = z.shape
        codes = self.get_codebook()
        d = self.embed_dim
        z32 = z.float()
        adj = nearest_code(to_rows(z32[:, :d]), codes[: self.num_adjectives], self.search_chunk_size)
        noun = nearest_code(to_rows(z32[:, d:]), codes[self.num_adjectives :], self.search_chunk_size)
        return (adj * self.num_nouns + noun).view(b, h, w)

    def forward(self, z: Tensor) -> QuantizerOutput:
        """z: B×2d×h×w → QuantizerOutput with pair tokens and A+N usage counts."""
        if z.ndim != 4 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents B×{self.latent_dim}×h×w, got shape {tuple(z.shape)}")
        b, _, h, w = z.shape
        d = self.embed_dim
        with torch.autocast(device_type=z.device.type, enabled=False):
            z32 = z.float()
            codes = self.get_codebook(deterministic=False)
            adj_codes, noun_codes = codes[: self.num_adjectives], codes[self.num_adjectives :]
            rows_adj, rows_noun = to_rows(z32[:, :d]), to_rows(z32[:, d:])
            k = self.topk if self.training else 1
            adj_idx = topk_codes(rows_adj.detach(), adj_codes.detach(), k, self.search_chunk_size)  # N×k
            noun_idx = nearest_code(rows_noun.detach(), noun_codes.detach(), self.search_chunk_size)
            q_adj = from_rows(adj_codes[adj_idx].mean(dim=1), b, h, w)
            q_noun = from_rows(noun_codes[noun_idx], b, h, w)
            z_adj, z_noun = z32[:, :d], z32[:, d:]
            losses = {
                "commitment": self.commitment_term_weight
                * (F.mse_loss(z_adj, q_adj.detach()) + F.mse_loss(z_noun, q_noun.detach())),
                "codebook": self.codebook_term_weight
                * (F.mse_loss(q_adj, z_adj.detach()) + F.mse_loss(q_noun, z_noun.detach())),
            }
            codes_out = torch.cat([q_adj, q_noun], dim=1)
            quantized = codes_out.detach() + (z32 - z32.detach())
            nearest_adj = adj_idx[:, 0]
            usage = torch.cat(
                [
                    torch.bincount(nearest_adj, minlength=self.num_adjectives),
                    torch.bincount(noun_idx, minlength=self.num_nouns),
                ]
            ).float()
        return QuantizerOutput(
            quantized=quantized.to(z.dtype),
            indices=(nearest_adj * self.num_nouns + noun_idx).view(b, h, w),
            losses=losses,
            usage=usage,
            codes=codes_out,
        )
