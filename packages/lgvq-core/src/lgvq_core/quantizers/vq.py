"""Vector quantizer (VQ-VAE / VQ-GAN): gradient or EMA codebook, k-means init, dead-code restart.

Everything numeric (distances, EMA statistics, restarts) runs in fp32 with autocast disabled. Under
``torch.distributed`` the per-code counts and sums are all-reduced and random choices are made on rank 0 and
broadcast, so the codebook stays bit-identical on every rank.

Loss terms (BASELINES §1.1, §2.3), both means over all positions and channels:
    codebook   = ‖sg[z] − e‖²   (moves the codes; absent with EMA updates)
    commitment = ‖z − sg[e]‖²   (moves the encoder)
weighted ``codebook_weight`` / ``commitment_weight``; ``legacy=True`` swaps the two weights like taming (β =
``commitment_weight`` then lands on the codebook term). With ``codebook_update="ema"`` there is no codebook
term, so the commitment term is always weighted by β = ``commitment_weight`` and ``legacy`` has no effect
(as in taming's ``EMAVectorQuantizer``: ``β·MSE(sg[z_q], z)``); this is logged once at INFO level.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.config import QuantizerConfig
from lgvq_core.outputs import QuantizerOutput
from lgvq_core.quantizers.distributed import all_reduce_many, broadcast_from_rank0, rank
from lgvq_core.quantizers.search import nearest_code

__all__ = ["VectorQuantizer", "kmeans", "to_rows", "from_rows"]

logger = logging.getLogger(__name__)

_logged_ema_legacy = False  # "legacy has no effect under EMA" is logged once per process


def to_rows(z: Tensor) -> Tensor:
    """B×D×h×w → (B·h·w)×D (row-major over b, y, x)."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def from_rows(rows: Tensor, b: int, h: int, w: int) -> Tensor:
    """(B·h·w)×D → B×D×h×w."""
    return rows.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def kmeans(x: Tensor, num_clusters: int, iters: int, *, chunk_size: int = 1024, generator=None) -> Tensor:
    """k-means++ seeding + Lloyd's iterations in fp32. Works with fewer vectors than clusters (then the seeds
    are
    sampled with replacement).

    Args:
        x: N×D vectors, N ≥ 1.
        num_clusters: K.
        iters: Lloyd iterations; empty clusters keep their previous centre.

    Returns:
        K×D centres.
    """
    x = x.float()
    n = x.shape[0]
    if n == 0:
        raise ValueError("k-means needs at least one vector")
    if n >= num_clusters:
        centres = _kmeans_plus_plus(x, num_clusters, generator)
    else:
        seeds = torch.randint(n, (num_clusters,), generator=generator, device="cpu").to(x.device)
        centres = x[seeds].clone()
    for _ in range(iters):
        assign = nearest_code(x, centres, chunk_size)
        counts = torch.bincount(assign, minlength=num_clusters).float()
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def _kmeans_plus_plus(x: Tensor, k: int, generator=None) -> Tensor:
    """k-means++ seeds: each next seed drawn with probability ∝ squared distance to the nearest chosen
    seed."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    best = (x - x[first]).pow(2).sum(1)
    for _ in range(1, k):
        total = best.sum()
        if float(total) <= 0:
            idx = int(torch.randint(n, (1,), generator=generator))
        else:
            idx = int(torch.multinomial((best / total).cpu(), 1, generator=generator))
        centres.append(x[idx])
        best = torch.minimum(best, (x - x[idx]).pow(2).sum(1))
    return torch.stack(centres).clone()


def _log_ema_legacy_once() -> None:
    global _logged_ema_legacy
    if not _logged_ema_legacy:
        _logged_ema_legacy = True
        logger.info(
            "quantizer legacy=True has no effect with codebook_update='ema' (no codebook term): the "
            "commitment term is weighted by commitment_weight (β)"
        )


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantizer over a K×D codebook with a straight-through estimator.

    Args:
        codebook_size: K.
        embed_dim: D (channels of the latent it quantizes).
        codebook_update: ``"grad"`` (codebook term + optimizer) or ``"ema"`` (EMA of assigned vectors, no
        codebook
            term; the codebook parameter is then frozen for the optimizer).
        codebook_weight, commitment_weight, legacy: see the module docstring (``legacy`` is ignored with
            ``codebook_update="ema"``: the commitment term then always gets ``commitment_weight``).
        l2_normalize: quantize l2-normalised latents against l2-normalised codes (cosine assignment).
        kmeans_init: on the first training batch, set the codes by k-means (rank 0, broadcast); the
        ``initialized``
            buffer is saved, so a resumed model does not re-run it.
        kmeans_iters: Lloyd iterations.
        dead_code_threshold: restart codes whose EMA usage (assignments per step, decay ``usage_decay``) falls
        below
            this with vectors of the current batch; resets their EMA state. 0 disables.
        ema_decay, ema_eps: EMA γ and Laplace-smoothing ε (sonnet).
        search_chunk_size: rows per GEMM block in the nearest-code search.
    """

    def __init__(
        self,
        codebook_size: int,
        embed_dim: int,
        *,
        codebook_update: str = "grad",
        codebook_weight: float = 1.0,
        commitment_weight: float = 0.25,
        legacy: bool = False,
        l2_normalize: bool = False,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 0.0,
        usage_decay: float = 0.99,
        ema_decay: float = 0.99,
        ema_eps: float = 1e-5,
        search_chunk_size: int = 1024,
    ) -> None:
        super().__init__()
        if codebook_update not in ("grad", "ema"):
            raise ValueError(f"codebook_update must be 'grad' or 'ema', got {codebook_update!r}")
        self.codebook_size = codebook_size
        self.embed_dim = embed_dim
        self.codebook_update = codebook_update
        self.legacy = legacy
        # Effective weights of (codebook term, commitment term); legacy puts "β" on the codebook term like
        # taming. With EMA there is no codebook term: the commitment term always gets β.
        if codebook_update == "ema":
            self.codebook_term_weight, self.commitment_term_weight = 0.0, commitment_weight
            if legacy:
                _log_ema_legacy_once()
        elif legacy:
            self.codebook_term_weight, self.commitment_term_weight = commitment_weight, codebook_weight
        else:
            self.codebook_term_weight, self.commitment_term_weight = codebook_weight, commitment_weight
        self.l2_normalize = l2_normalize
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.usage_decay = usage_decay
        self.ema_decay = ema_decay
        self.ema_eps = ema_eps
        self.search_chunk_size = search_chunk_size

        init = torch.empty(codebook_size, embed_dim).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        self.codebook = nn.Parameter(init, requires_grad=codebook_update == "grad")
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self.register_buffer("usage", torch.zeros(codebook_size))
        if codebook_update == "ema":
            self.register_buffer("cluster_size", torch.ones(codebook_size))
            self.register_buffer("embed_avg", init.clone())

    @classmethod
    def from_config(cls, config: QuantizerConfig) -> VectorQuantizer:
        return cls(
            config.codebook_size,
            config.embed_dim,
            codebook_update=config.codebook_update,
            codebook_weight=config.codebook_weight,
            commitment_weight=config.commitment_weight,
            legacy=config.legacy,
            l2_normalize=config.l2_normalize,
            kmeans_init=config.kmeans_init,
            kmeans_iters=config.kmeans_iters,
            dead_code_threshold=config.dead_code_threshold,
            usage_decay=config.usage_decay,
            ema_decay=config.ema_decay,
            ema_eps=config.ema_eps,
            search_chunk_size=config.search_chunk_size,
        )

    @property
    def latent_dim(self) -> int:
        """Channels of the latent this quantizer takes and returns."""
        return self.embed_dim

    @property
    def num_tokens(self) -> int:
        """Size of the index vocabulary."""
        return self.codebook_size

    def get_codebook(self) -> Tensor:
        """K×D code vectors as used for assignment (l2-normalised when ``l2_normalize``), fp32."""
        codes = self.codebook.float()
        return F.normalize(codes, dim=-1) if self.l2_normalize else codes

    def embed(self, indices: Tensor) -> Tensor:
        """Indices B×h×w → code vectors B×D×h×w."""
        self._check_indices(indices)
        return F.embedding(indices, self.get_codebook()).permute(0, 3, 1, 2).contiguous()

    def _check_indices(self, indices: Tensor) -> None:
        if indices.dtype != torch.long or indices.ndim != 3:
            raise ValueError(f"expected int64 indices B×h×w, got {indices.dtype} {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_tokens):
            raise ValueError(f"indices out of range [0, {self.num_tokens})")

    @torch.no_grad()
    def assign(self, z: Tensor) -> Tensor:
        """Code indices B×h×w for latents B×D×h×w, without touching any state (eval semantics)."""
        if z.ndim != 4 or z.shape[1] != self.embed_dim:
            raise ValueError(f"expected latents B×{self.embed_dim}×h×w, got shape {tuple(z.shape)}")
        b, _, h, w = z.shape
        z32 = z.float()
        if self.l2_normalize:
            z32 = F.normalize(z32, dim=1)
        return nearest_code(to_rows(z32), self.get_codebook(), self.search_chunk_size).view(b, h, w)

    def forward(self, z: Tensor) -> QuantizerOutput:
        """z: B×D×h×w → QuantizerOutput (quantized has a straight-through gradient to z)."""
        if z.ndim != 4 or z.shape[1] != self.embed_dim:
            raise ValueError(f"expected latents B×{self.embed_dim}×h×w, got shape {tuple(z.shape)}")
        b, _, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            z32 = z.float()
            if self.l2_normalize:
                z32 = F.normalize(z32, dim=1)
            rows = to_rows(z32)
            if self.training and not bool(self.initialized):
                self._kmeans_initialise(rows.detach())
            codebook = self.get_codebook()
            indices = nearest_code(rows.detach(), codebook.detach(), self.search_chunk_size)
            codes = from_rows(codebook[indices], b, h, w)
            counts = torch.bincount(indices, minlength=self.codebook_size).float()
            if self.training:
                counts = self._update_state(rows.detach(), indices, counts)
            losses = {"commitment": self.commitment_term_weight * F.mse_loss(z32, codes.detach())}
            if self.codebook_update == "grad":
                losses["codebook"] = self.codebook_term_weight * F.mse_loss(codes, z32.detach())
            quantized = codes.detach() + (z32 - z32.detach())  # straight-through, exactly the codes
        return QuantizerOutput(
            quantized=quantized.to(z.dtype),
            indices=indices.view(b, h, w),
            losses=losses,
            usage=counts,
            codes=codes,
        )

    # ------------------------------------------------------------------------------------------- state
    # updates

    @torch.no_grad()
    def _kmeans_initialise(self, rows: Tensor) -> None:
        centres = torch.empty(self.codebook_size, self.embed_dim, device=rows.device)
        if rank() == 0:
            centres.copy_(
                kmeans(rows, self.codebook_size, self.kmeans_iters, chunk_size=self.search_chunk_size)
            )
        broadcast_from_rank0(centres)
        if self.l2_normalize:
            centres = F.normalize(centres, dim=-1)
        self.codebook.data.copy_(centres)
        if self.codebook_update == "ema":
            self.embed_avg.copy_(centres)
            self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)
        logger.info("k-means initialised %d codes from %d vectors", self.codebook_size, rows.shape[0])

    @torch.no_grad()
    def _update_state(self, rows: Tensor, indices: Tensor, counts: Tensor) -> Tensor:
        """All-reduce statistics, update usage, the EMA codebook and restart dead codes. Returns global
        counts."""
        if self.codebook_update == "ema":
            sums = torch.zeros(self.codebook_size, self.embed_dim, device=rows.device).index_add_(
                0, indices, rows
            )
            counts, sums = all_reduce_many(counts, sums)
        else:
            (counts,) = all_reduce_many(counts)
            sums = None
        if not torch.isfinite(counts).all() or (sums is not None and not torch.isfinite(sums).all()):
            logger.warning("non-finite quantizer statistics; codebook state not updated this step")
            return counts
        self.usage.mul_(self.usage_decay).add_(counts, alpha=1.0 - self.usage_decay)
        if sums is not None:
            self.cluster_size.mul_(self.ema_decay).add_(counts, alpha=1.0 - self.ema_decay)
            self.embed_avg.mul_(self.ema_decay).add_(sums, alpha=1.0 - self.ema_decay)
            total = self.cluster_size.sum()
            smoothed = (
                (self.cluster_size + self.ema_eps) / (total + self.codebook_size * self.ema_eps) * total
            )
            self.codebook.data.copy_(self.embed_avg / smoothed.unsqueeze(1))
        if self.dead_code_threshold > 0:
            self._restart_dead_codes(rows)
        return counts

    @torch.no_grad()
    def _restart_dead_codes(self, rows: Tensor) -> None:
        dead = self.usage < self.dead_code_threshold  # identical on every rank (global statistics)
        num_dead = int(dead.sum())
        if num_dead == 0:
            return
        replacement = torch.empty(num_dead, self.embed_dim, device=rows.device)
        if rank() == 0:
            pick = (
                torch.randperm(rows.shape[0], device="cpu")[:num_dead]
                if rows.shape[0] >= num_dead
                else torch.randint(rows.shape[0], (num_dead,), device="cpu")
            )
            replacement.copy_(rows[pick.to(rows.device)])
        broadcast_from_rank0(replacement)
        self.codebook.data[dead] = replacement
        self.usage[dead] = self.dead_code_threshold
        if self.codebook_update == "ema":
            self.embed_avg[dead] = replacement
            self.cluster_size[dead] = 1.0
        logger.debug("restarted %d dead codes", num_dead)
