"""Classifier-free guidance by batch doubling: logits = uncond + s·(cond − uncond).

The model embeds its condition for 2B rows (rows 0..B−1 conditional, B..2B−1 with every condition null);
``guided`` wraps a logits function over those 2B rows into one over B rows. At s = 1 the conditional logits
are returned as they are, so s = 1 is plain conditional sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["combine_guidance", "guided"]


def combine_guidance(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """uncond + scale·(cond − uncond) (same shapes); exactly ``cond`` at scale 1."""
    if scale == 1.0:
        return cond
    return uncond + scale * (cond - uncond)


def guided(logits_fn: Callable[..., Tensor], scale: float) -> Callable[..., Tensor]:
    """``logits_fn(tokens 2B×…, *rest) → 2B×…×K`` → a function of ``tokens`` B×… returning guided B×…×K
    logits. The other arguments (e.g. a KV cache of 2B rows) are passed through."""

    def wrapped(tokens: Tensor, *rest: Any) -> Tensor:
        cond, uncond = logits_fn(torch.cat([tokens, tokens]), *rest).chunk(2)
        return combine_guidance(cond, uncond, scale)

    return wrapped
