"""VQCT quantizer: codebook transfer from word vectors through a 2-layer GCN (BASELINES §4.3–4.5).

Codes C = Â·dropout(ReLU(Â·X·W1 + b1))·W2 + b2 over the graph of adjectives + nouns (symmetric co-occurrence
counts, self-loops, Â = D̃^−½(A + I)D̃^−½), recomputed from the frozen word vectors X at every forward; only
the GCN weights train. The latent has 2·d channels: the first d are quantized against the adjective codes,
the last d against the noun codes, each with its own straight-through estimator.

Loss (BASELINES §4.5): per branch a codebook term ``‖q − sg[z]‖²`` and a commitment term ``‖sg[q] − z‖²``
(means), summed over the two branches. With ``legacy=True`` (the ``vqct`` default of
``builders.default_config``) the weights are swapped like taming, giving exactly the official
``mean((sg[q]−z)²) + 0.25·mean((q − sg[z])²)`` per branch (commitment ``codebook_weight`` = 1, codebook β =
``commitment_weight`` = 0.25).

Top-k, in every mode: the adjective half uses the mean of its ``topk`` nearest adjective codes (VQCT: k = 2)
in training, in eval mode, in ``assign`` (``encode``) and in ``embed`` (``decode``), as the official
``forward`` does (it has no eval branch). A token therefore carries all k adjective ids (nearest first) and
the noun id, packed into one int64 in mixed radix (A adjectives, N nouns)::

    token = ((a_1·A + a_2)·A + … + a_k)·N + noun        num_tokens = A^k·N

(``pack_tokens`` / ``unpack_tokens``; ``split_tokens`` gives ``(adjectives …×k, nouns)``). For k = 1 this is
the (adjective, noun) pair index ``a·N + noun``. Decoding a token reproduces the top-k mean, so eval-mode
reconstructions equal ``decode(encode(x))`` (the official ``get_codebook_entry`` decodes one adjective only
and does not). ``split_pairs`` gives the (nearest adjective, noun) pair for second-stage models with
separate adjective/noun heads (VQCT's GPT); ``embed_words`` embeds any number of adjective ids per position
(e.g. one).

``usage`` counts are over the A + N word codes (adjectives first); each of the k adjective selections of a
position is counted, so a position adds k + 1 counts. ``lgvq_core.metrics.codebook.codebook_usage_for``
reports usage per sub-codebook and over the word codes.
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

__all__ = ["VQCTQuantizer", "normalized_adjacency", "pack_tokens", "unpack_tokens", "num_word_tokens"]

_INT64_MAX = 2**63 - 1


def num_word_tokens(num_adjectives: int, num_nouns: int, topk: int) -> int:
    """Size A^k·N of the packed token vocabulary."""
    return num_adjectives**topk * num_nouns


def pack_tokens(adjectives: Tensor, nouns: Tensor, num_adjectives: int, num_nouns: int) -> Tensor:
    """Adjective ids ``…×k`` (nearest first) and noun ids ``…`` → tokens ``…`` (see the module docstring)."""
    if adjectives.shape[:-1] != nouns.shape:
        raise ValueError(f"adjectives {tuple(adjectives.shape)} must be nouns {tuple(nouns.shape)} × k")
    token = adjectives[..., 0]
    for j in range(1, adjectives.shape[-1]):
        token = token * num_adjectives + adjectives[..., j]
    return token * num_nouns + nouns


def unpack_tokens(tokens: Tensor, num_adjectives: int, num_nouns: int, topk: int) -> tuple[Tensor, Tensor]:
    """Tokens ``…`` → (adjective ids ``…×topk`` nearest first, noun ids ``…``); inverse of ``pack_tokens``."""
    nouns = tokens % num_nouns
    rest = tokens // num_nouns
    adjectives = []
    for _ in range(topk):
        adjectives.append(rest % num_adjectives)
        rest = rest // num_adjectives
    return torch.stack(adjectives[::-1], dim=-1), nouns


def _mean_of_codes(codes: Tensor, idx: Tensor) -> Tensor:
    """M×j ids → M×d mean of their codes, summed in id order (bit-identical in forward and embed)."""
    out = codes[idx[:, 0]]
    for j in range(1, idx.shape[1]):
        out = out + codes[idx[:, j]]
    return out / idx.shape[1] if idx.shape[1] > 1 else out


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
        topk: nearest adjective codes averaged per position (training, eval, tokens alike).
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
        if num_word_tokens(num_adjectives, num_nouns, topk) > _INT64_MAX:
            raise ValueError(
                f"{num_adjectives}^{topk}·{num_nouns} packed tokens do not fit in int64; lower topk"
            )
        self.num_adjectives, self.num_nouns = num_adjectives, num_nouns
        self.embed_dim = embed_dim
        self.topk = topk
        self.search_chunk_size = search_chunk_size
        self.legacy = legacy
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
        """Size of the packed token vocabulary, A^topk·N (A·N for topk = 1)."""
        return num_word_tokens(self.num_adjectives, self.num_nouns, self.topk)

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

    def split_tokens(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Tokens → (adjective ids ``…×topk``, nearest first; noun ids shaped like ``indices``)."""
        return unpack_tokens(indices, self.num_adjectives, self.num_nouns, self.topk)

    def pack_tokens(self, adjectives: Tensor, nouns: Tensor) -> Tensor:
        """(adjective ids ``…×topk`` nearest first, noun ids ``…``) → tokens ``…``."""
        if adjectives.shape[-1] != self.topk:
            raise ValueError(f"expected {self.topk} adjective ids per position, got {adjectives.shape[-1]}")
        return pack_tokens(adjectives, nouns, self.num_adjectives, self.num_nouns)

    def split_pairs(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Tokens → (nearest adjective id, noun id), each shaped like ``indices`` (second-stage models)."""
        adjectives, nouns = self.split_tokens(indices)
        return adjectives[..., 0], nouns

    def embed_words(self, adjectives: Tensor, nouns: Tensor) -> Tensor:
        """Word ids → B×2d×h×w: mean of the adjective codes ``adjectives`` (B×h×w×j, any j ≥ 1, or B×h×w for
        one) concatenated with the noun codes ``nouns`` (B×h×w)."""
        if adjectives.ndim == nouns.ndim:
            adjectives = adjectives.unsqueeze(-1)
        if nouns.ndim != 3 or adjectives.shape[:-1] != nouns.shape:
            raise ValueError(
                "expected nouns B×h×w and adjectives B×h×w×j, "
                f"got {tuple(nouns.shape)} and {tuple(adjectives.shape)}"
            )
        for name, ids, size in (
            ("adjective", adjectives, self.num_adjectives),
            ("noun", nouns, self.num_nouns),
        ):
            if ids.dtype != torch.long:
                raise ValueError(f"{name} ids must be int64, got {ids.dtype}")
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
                raise ValueError(f"{name} ids out of range [0, {size})")
        codes = self.get_codebook()
        b, h, w = nouns.shape
        q_adj = _mean_of_codes(codes[: self.num_adjectives], adjectives.reshape(-1, adjectives.shape[-1]))
        q_noun = codes[self.num_adjectives :][nouns.reshape(-1)]
        return from_rows(torch.cat([q_adj, q_noun], dim=1), b, h, w)

    def embed(self, indices: Tensor) -> Tensor:
        """Tokens B×h×w → B×2d×h×w (mean of the k adjective codes, noun code), as quantized in ``forward``."""
        if indices.dtype != torch.long or indices.ndim != 3:
            raise ValueError(f"expected int64 indices B×h×w, got {indices.dtype} {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_tokens):
            raise ValueError(f"indices out of range [0, {self.num_tokens})")
        return self.embed_words(*self.split_tokens(indices))

    @torch.no_grad()
    def assign(self, z: Tensor) -> Tensor:
        """Tokens B×h×w for latents B×2d×h×w (top-k adjectives, nearest noun), no state change."""
        if z.ndim != 4 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents B×{self.latent_dim}×h×w, got shape {tuple(z.shape)}")
        b, _, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            codes = self.get_codebook()
            d = self.embed_dim
            z32 = z.float()
            adj = topk_codes(
                to_rows(z32[:, :d]), codes[: self.num_adjectives], self.topk, self.search_chunk_size
            )
            noun = nearest_code(to_rows(z32[:, d:]), codes[self.num_adjectives :], self.search_chunk_size)
            return self.pack_tokens(adj, noun).view(b, h, w)

    def forward(self, z: Tensor) -> QuantizerOutput:
        """z: B×2d×h×w → QuantizerOutput with packed tokens and A+N usage counts (top-k in every mode)."""
        if z.ndim != 4 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents B×{self.latent_dim}×h×w, got shape {tuple(z.shape)}")
        b, _, h, w = z.shape
        d = self.embed_dim
        with torch.autocast(device_type=z.device.type, enabled=False):
            z32 = z.float()
            codes = self.get_codebook(deterministic=False)
            adj_codes, noun_codes = codes[: self.num_adjectives], codes[self.num_adjectives :]
            rows_adj, rows_noun = to_rows(z32[:, :d]), to_rows(z32[:, d:])
            adj_idx = topk_codes(
                rows_adj.detach(), adj_codes.detach(), self.topk, self.search_chunk_size
            )  # N×k
            noun_idx = nearest_code(rows_noun.detach(), noun_codes.detach(), self.search_chunk_size)
            q_adj = from_rows(_mean_of_codes(adj_codes, adj_idx), b, h, w)
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
            usage = torch.cat(
                [
                    torch.bincount(adj_idx.reshape(-1), minlength=self.num_adjectives),
                    torch.bincount(noun_idx, minlength=self.num_nouns),
                ]
            ).float()
        return QuantizerOutput(
            quantized=quantized.to(z.dtype),
            indices=self.pack_tokens(adj_idx, noun_idx).view(b, h, w),
            losses=losses,
            usage=usage,
            codes=codes_out,
        )
