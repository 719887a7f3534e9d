"""Small ``torch.distributed`` helpers: every call is a no-op in a single process.

Codebook state must stay bit-identical on every rank: statistics are all-reduced (sums), and any random choice
(k-means seeds, restart vectors, CVQ anchors) is made on rank 0 and broadcast with the same shape on every
rank.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "rank", "world_size", "all_reduce_sum", "broadcast_from_rank0"]


def is_distributed() -> bool:
    """True when a process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """In-place sum over ranks (returns the tensor)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_from_rank0(tensor: Tensor) -> Tensor:
    """In-place broadcast of rank 0's values (every rank passes a tensor of the same shape and dtype)."""
    if is_distributed():
        dist.broadcast(tensor, src=0)
    return tensor


def _ensure_contiguous(tensor: Tensor) -> Tensor:
    return tensor if tensor.is_contiguous() else tensor.contiguous()


def all_reduce_many(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Sum several float tensors over ranks with one collective (flattened together)."""
    if not is_distributed():
        return tensors
    flat = torch.cat([_ensure_contiguous(t).reshape(-1).float() for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    out, offset = [], 0
    for t in tensors:
        out.append(flat[offset : offset + t.numel()].view_as(t).to(t.dtype))
        offset += t.numel()
    return tuple(out)
