"""CVQ: online clustered codebook (Zheng & Vedaldi, ICCV 2023), as coded in the official repo (BASELINES §3).

Per training step, after quantizing with the current codes:
    usage   N ← γ·N + (1 − γ)·p̄            (p̄: fraction of the batch's positions assigned to each code)
    anchor  a_k from the batch: ``closest`` (most similar feature), ``random`` (a pool of past features),
            ``probrandom`` (sampled with probability softmax over the batch of the similarities to e_k)
    mix     α_k = exp(−N_k·K·10/(1 − γ) − 1e-3);  e_k ← (1 − α_k)·e_k + α_k·a_k   (outside autograd)
so practically unused codes are pulled onto data while used codes are left to the loss. Similarities use the
detached features (``l2``: −‖z − e‖², ``cos``: cosine). The optional contrastive term (τ = 0.07) treats, per
code,
the mean of its ⌊N/K⌋ most similar features as the positive and its ⌊N/2⌋ least similar as negatives.
Loss placement as in the official code (VQ-VAE ordering, ``legacy=False``, the ``cvq`` default of
``builders.default_config``): ``0.25·‖sg[z_q] − z‖² + ‖z_q − sg[z]‖²``, i.e. codebook 1.0, commitment
β = 0.25.
Under ``torch.distributed`` the usage statistics are all-reduced and the anchors are chosen on rank 0 and
broadcast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.config import QuantizerConfig
from lgvq_core.outputs import QuantizerOutput
from lgvq_core.quantizers.distributed import all_reduce_many, broadcast_from_rank0, rank
from lgvq_core.quantizers.vq import from_rows, to_rows

__all__ = ["ClusteredVectorQuantizer", "cvq_contrastive_loss"]


def cvq_contrastive_loss(similarity: Tensor, temperature: float = 0.07) -> Tensor:
    """CVQ's contrastive term from an N×K similarity matrix (features × codes)."""
    n, k = similarity.shape
    num_pos = max(1, n // k)
    num_neg = n // 2
    if num_neg < 1:
        return similarity.new_zeros(())
    ordered = similarity.sort(dim=0, descending=True).values  # N×K, most similar first
    positive = ordered[:num_pos].mean(dim=0, keepdim=True)  # 1×K
    negatives = ordered[n - num_neg :]  # num_neg×K, least similar half
    logits = torch.cat([positive, negatives], dim=0).t() / temperature  # K×(1+num_neg)
    return F.cross_entropy(logits, torch.zeros(k, dtype=torch.long, device=similarity.device))


class ClusteredVectorQuantizer(nn.Module):
    """CVQ quantizer over a K×D codebook (see module docstring).

    Args:
        codebook_size, embed_dim: K, D.
        codebook_weight, commitment_weight, legacy: loss placement as in ``VectorQuantizer``.
        distance: ``"l2"`` or ``"cos"`` similarity for assignment, anchors and the contrastive term.
        anchor: ``"closest"``, ``"random"`` or ``"probrandom"``.
        decay: γ of the usage EMA.
        contrastive, contrastive_temperature, contrastive_weight: the contrastive term.
        first_batch_only: apply the re-initialisation once (the "offline" variant), then freeze it.
    """

    def __init__(
        self,
        codebook_size: int,
        embed_dim: int,
        *,
        codebook_weight: float = 1.0,
        commitment_weight: float = 0.25,
        legacy: bool = False,
        distance: str = "l2",
        anchor: str = "probrandom",
        decay: float = 0.99,
        contrastive: bool = True,
        contrastive_temperature: float = 0.07,
        contrastive_weight: float = 1.0,
        first_batch_only: bool = False,
    ) -> None:
        super().__init__()
        if distance not in ("l2", "cos"):
            raise ValueError(f"distance must be 'l2' or 'cos', got {distance!r}")
        if anchor not in ("closest", "random", "probrandom"):
            raise ValueError(f"anchor must be 'closest', 'random' or 'probrandom', got {anchor!r}")
        self.codebook_size = codebook_size
        self.embed_dim = embed_dim
        self.legacy = legacy
        if legacy:
            self.codebook_term_weight, self.commitment_term_weight = commitment_weight, codebook_weight
        else:
            self.codebook_term_weight, self.commitment_term_weight = codebook_weight, commitment_weight
        self.distance = distance
        self.anchor = anchor
        self.decay = decay
        self.contrastive = contrastive
        self.contrastive_temperature = contrastive_temperature
        self.contrastive_weight = contrastive_weight
        self.first_batch_only = first_batch_only
        bound = 1.0 / codebook_size
        self.codebook = nn.Parameter(torch.empty(codebook_size, embed_dim).uniform_(-bound, bound))
        self.register_buffer("embed_prob", torch.zeros(codebook_size))
        self.register_buffer("reinit_done", torch.tensor(False))
        if anchor == "random":
            self.register_buffer("pool", torch.empty(codebook_size, embed_dim).uniform_(-bound, bound))
            self.register_buffer("pool_filled", torch.tensor(0, dtype=torch.long))

    @classmethod
    def from_config(cls, config: QuantizerConfig) -> ClusteredVectorQuantizer:
        c = config.cvq
        return cls(
            config.codebook_size,
            config.embed_dim,
            codebook_weight=config.codebook_weight,
            commitment_weight=config.commitment_weight,
            legacy=config.legacy,
            distance=c.distance,
            anchor=c.anchor,
            decay=c.decay,
            contrastive=c.contrastive,
            contrastive_temperature=c.contrastive_temperature,
            contrastive_weight=c.contrastive_weight,
            first_batch_only=c.first_batch_only,
        )

    @property
    def latent_dim(self) -> int:
        return self.embed_dim

    @property
    def num_tokens(self) -> int:
        return self.codebook_size

    def get_codebook(self) -> Tensor:
        """K×D code vectors (un-normalised, as fed to the decoder even in ``cos`` mode)."""
        return self.codebook.float()

    def similarity(self, rows: Tensor, codebook: Tensor) -> Tensor:
        """N×K similarities (higher = closer) in fp32."""
        if self.distance == "l2":
            return -(rows.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2.0 * rows @ codebook.t())
        return F.normalize(rows, dim=1) @ F.normalize(codebook, dim=1).t()

    def embed(self, indices: Tensor) -> Tensor:
        """Indices B×h×w → code vectors B×D×h×w."""
        if indices.dtype != torch.long or indices.ndim != 3:
            raise ValueError(f"expected int64 indices B×h×w, got {indices.dtype} {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"indices out of range [0, {self.codebook_size})")
        return F.embedding(indices, self.get_codebook()).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def assign(self, z: Tensor) -> Tensor:
        """Indices B×h×w (argmax similarity), no state change."""
        b, _, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self.similarity(to_rows(z.float()), self.get_codebook()).argmax(1).view(b, h, w)

    def forward(self, z: Tensor) -> QuantizerOutput:
        """z: B×D×h×w → QuantizerOutput (contrastive term under ``losses["contrastive"]`` when enabled)."""
        if z.ndim != 4 or z.shape[1] != self.embed_dim:
            raise ValueError(f"expected latents B×{self.embed_dim}×h×w, got shape {tuple(z.shape)}")
        b, _, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            z32 = z.float()
            rows = to_rows(z32)
            codebook = self.get_codebook()
            sim = self.similarity(rows.detach(), codebook)  # gradient reaches the codebook only
            indices = sim.detach().argmax(dim=1)
            codes = from_rows(codebook[indices], b, h, w)
            losses = {
                "commitment": self.commitment_term_weight * F.mse_loss(z32, codes.detach()),
                "codebook": self.codebook_term_weight * F.mse_loss(codes, z32.detach()),
            }
            if self.contrastive:
                losses["contrastive"] = self.contrastive_weight * cvq_contrastive_loss(
                    sim, self.contrastive_temperature
                )
            counts = torch.bincount(indices, minlength=self.codebook_size).float()
            if self.training:
                counts = self._online_reinit(rows.detach(), sim.detach(), counts)
            quantized = codes.detach() + (z32 - z32.detach())
        return QuantizerOutput(
            quantized=quantized.to(z.dtype),
            indices=indices.view(b, h, w),
            losses=losses,
            usage=counts,
            codes=codes,
        )

    @torch.no_grad()
    def _online_reinit(self, rows: Tensor, sim: Tensor, counts: Tensor) -> Tensor:
        (counts,) = all_reduce_many(counts)
        if self.first_batch_only and bool(self.reinit_done):
            return counts
        if not torch.isfinite(counts).all() or not torch.isfinite(rows).all():
            return counts
        avg_probs = counts / counts.sum().clamp_min(1.0)
        self.embed_prob.mul_(self.decay).add_(avg_probs, alpha=1.0 - self.decay)
        anchors = torch.empty_like(self.codebook.data)
        if self.anchor == "random":
            if rank() == 0:
                self._update_pool(rows)
            broadcast_from_rank0(self.pool)
            broadcast_from_rank0(self.pool_filled)
            anchors.copy_(self.pool)
        elif rank() == 0:
            if self.anchor == "closest":
                anchors.copy_(rows[sim.argmax(dim=0)])
            else:  # probrandom: one feature per code, sampled by softmax over the batch
                probs = torch.softmax(sim.t(), dim=1)
                anchors.copy_(rows[torch.multinomial(probs, 1).squeeze(1)])
        if self.anchor != "random":
            broadcast_from_rank0(anchors)
        alpha = torch.exp(-self.embed_prob * self.codebook_size * 10.0 / (1.0 - self.decay) - 1e-3).unsqueeze(
            1
        )
        self.codebook.data.mul_(1.0 - alpha).add_(anchors * alpha)
        self.reinit_done.fill_(True)
        return counts

    def _update_pool(self, rows: Tensor) -> None:
        n, k = rows.shape[0], self.codebook_size
        filled = int(self.pool_filled)
        if n >= k:
            self.pool.copy_(rows[torch.randperm(n, device="cpu")[:k].to(rows.device)])
            self.pool_filled.fill_(k)
        elif filled + n <= k:
            self.pool[filled : filled + n] = rows
            self.pool_filled.fill_(filled + n)
        else:
            slots = torch.randperm(k, device="cpu")[:n].to(rows.device)
            self.pool[slots] = rows
            self.pool_filled.fill_(k)
