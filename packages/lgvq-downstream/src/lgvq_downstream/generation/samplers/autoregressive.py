"""Raster-order sampling of image codes, with a per-layer KV cache or by re-running the whole sequence.

The image segment is ``[start, c_0, …, c_{N−2}]``: the output at the start token predicts c_0, the output
at c_j predicts c_{j+1}. Both paths draw the same random numbers in the same order, so with one generator
seed they return the same codes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lgvq_downstream.transformer import KVCache, sample_next_token

__all__ = ["NextLogits", "sample_autoregressive"]

NextLogits = Callable[[Tensor, KVCache | None], Tensor]
"""(image-segment tokens B×t — only the new ones when a non-empty cache is given —, cache) → B×K logits of the
next code."""


@torch.no_grad()
def sample_autoregressive(
    next_logits: NextLogits,
    prompt: Tensor,
    num_tokens: int,
    *,
    new_cache: Callable[[], KVCache] | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Extend ``prompt`` B×(1+p) (start token + p given codes) to N = ``num_tokens`` codes.

    Args:
        next_logits: see ``NextLogits``.
        new_cache: builds an empty ``KVCache``; ``None`` re-runs the full sequence at every step.
        temperature, top_k, top_p: as ``sample_next_token`` (temperature 0 = greedy).

    Returns:
        B×N int64: the p given codes followed by N − p sampled ones.
    """
    given = prompt.shape[1] - 1
    if given < 0 or given > num_tokens:
        raise ValueError(f"prompt must hold the start token and at most {num_tokens} codes, got {given + 1}")
    tokens = prompt
    if given == num_tokens:
        return tokens[:, 1:]
    cache = new_cache() if new_cache is not None else None
    logits = next_logits(tokens, cache)
    while True:
        nxt = sample_next_token(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        if tokens.shape[1] - 1 == num_tokens:
            return tokens[:, 1:]
        logits = next_logits(nxt[:, None] if cache is not None else tokens, cache)
