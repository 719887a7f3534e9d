"""MaskGIT iterative parallel decoding (Chang et al., 2022) with pre-filled tokens.

Start: every unknown position holds the [MASK] id. Step t = 1..T: sample a token at every position from
the (temperature / top-k / top-p filtered) logits; score each newly sampled token by its log-probability
plus Gumbel noise scaled by ``choice_temperature``·(1 − t/T) (annealed to 0); of the positions still
masked before the step, the ⌊U·cos(π/2·t/T)⌋ lowest-scoring ones stay masked (U: the row's unknown
positions at the start; at least one position is decided per step), the others keep their sampled token.
Given and already decided tokens never change; after step T nothing is masked.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lgvq_downstream.generation.masking import cosine_schedule
from lgvq_downstream.transformer import filter_logits

__all__ = ["TokenLogits", "sample_maskgit"]

TokenLogits = Callable[[Tensor], Tensor]
"""tokens B×N (the [MASK] id at masked positions) → B×N×K logits."""


def _gumbel(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard Gumbel noise −log(−log u), u ~ U(0, 1)."""
    u = torch.rand(shape, generator=generator, device=device).clamp_(min=1e-20)
    return -torch.log((-torch.log(u)).clamp_(min=1e-20))


@torch.no_grad()
def sample_maskgit(
    logits_fn: TokenLogits,
    tokens: Tensor,
    known: Tensor,
    *,
    mask_id: int,
    steps: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    choice_temperature: float = 4.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill the positions of ``tokens`` B×N where ``known`` B×N is False; return B×N int64.

    Args:
        logits_fn: see ``TokenLogits``.
        mask_id: the [MASK] id (K).
        steps: T ≥ 1 decoding steps.
        temperature, top_k, top_p: token sampling, as ``sample_next_token`` (temperature 0 = greedy; a
            negative temperature raises).
        choice_temperature: scale of the Gumbel noise on the confidences at step 1 (MaskGIT: 4.5).
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, got {temperature}")
    known = known.to(torch.bool)
    tokens = torch.where(known, tokens, torch.full_like(tokens, mask_id))
    unknown_at_start = (~known).sum(dim=1)  # B
    if int(unknown_at_start.max()) == 0:
        return tokens
    b, n = tokens.shape
    for step in range(steps):
        masked = tokens == mask_id
        if not bool(masked.any()):
            break
        logits = logits_fn(tokens).float()  # B×N×K
        k = logits.shape[-1]
        flat = logits.reshape(b * n, k)
        if temperature == 0:
            logp_all = flat.log_softmax(dim=-1)
            sampled = flat.argmax(dim=-1)
        else:
            logp_all = filter_logits(flat / temperature, top_k=top_k, top_p=top_p).log_softmax(dim=-1)
            sampled = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(-1)
        logp = logp_all.gather(1, sampled[:, None]).view(b, n)
        sampled = sampled.view(b, n)
        fraction = 1.0 - (step + 1) / steps
        confidence = logp + choice_temperature * fraction * _gumbel(logp.shape, generator, logp.device)
        confidence = confidence.masked_fill(~masked, float("inf"))
        still_masked = masked.sum(dim=1)
        keep_masked = torch.floor(unknown_at_start * cosine_schedule((step + 1) / steps)).long()
        keep_masked = torch.minimum(keep_masked.to(still_masked.device), (still_masked - 1).clamp(min=0))
        ranks = confidence.argsort(dim=1).argsort(dim=1)  # 0 = least confident
        remask = ranks < keep_masked[:, None]
        tokens = torch.where(masked & ~remask, sampled, tokens)
    return tokens
