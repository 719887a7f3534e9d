"""Nearest-code search in fp32, chunked so the N×K distance matrix never lives in memory at once.

``argmin_k ‖x − e_k‖²  =  argmax_k (x·e_k − ½‖e_k‖²)``: one GEMM per chunk (``addmm`` with the half norms as
the
bias), then an arg-max over a chunk×K block that stays in cache; ‖x‖² is never computed.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["nearest_code", "topk_codes"]


@torch.no_grad()
def nearest_code(x: Tensor, codebook: Tensor, chunk_size: int = 1024) -> Tensor:
    """Index of the nearest code (squared L2) for every row.

    Args:
        x: N×D vectors (any float dtype; computed in fp32).
        codebook: K×D code vectors.
        chunk_size: rows of ``x`` per GEMM block.

    Returns:
        N int64 indices in [0, K).
    """
    x = x.float()
    codebook = codebook.float()
    half_norms = codebook.pow(2).sum(1).mul_(-0.5)  # K
    codebook_t = codebook.t()
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    # one reused score buffer: a fresh chunk×K allocation per chunk costs page faults on CPU
    buffer = torch.empty(min(chunk_size, x.shape[0]), codebook.shape[0], device=x.device)
    with torch.autocast(device_type=x.device.type, enabled=False):
        for start in range(0, x.shape[0], chunk_size):
            rows = x[start : start + chunk_size]
            scores = buffer[: rows.shape[0]]
            torch.addmm(half_norms, rows, codebook_t, out=scores)
            torch.argmax(scores, dim=1, out=out[start : start + rows.shape[0]])
    return out


@torch.no_grad()
def topk_codes(x: Tensor, codebook: Tensor, k: int, chunk_size: int = 1024) -> Tensor:
    """Indices of the ``k`` nearest codes (squared L2), nearest first: N×k int64."""
    x = x.float()
    codebook = codebook.float()
    half_norms = codebook.pow(2).sum(1).mul_(-0.5)
    codebook_t = codebook.t()
    out = torch.empty(x.shape[0], k, dtype=torch.long, device=x.device)
    with torch.autocast(device_type=x.device.type, enabled=False):
        for start in range(0, x.shape[0], chunk_size):
            scores = torch.addmm(half_norms, x[start : start + chunk_size], codebook_t)
            out[start : start + chunk_size] = scores.topk(k, dim=1).indices
    return out
