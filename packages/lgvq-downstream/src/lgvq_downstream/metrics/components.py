"""Connected components of boolean masks (4-connectivity) in torch, batched, without scipy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["connected_components"]


def connected_components(foreground: Tensor) -> Tensor:
    """bool B×H×W → int64 B×H×W labels: 0 off the foreground, and one positive label per 4-connected
    component (labels are unique within an image, not consecutive).

    Every foreground pixel starts with its own id (1 + its flat index) and takes the largest id among itself
    and its four neighbours until nothing changes; the number of rounds is bounded by the longest path inside
    a component.
    """
    if foreground.ndim != 3 or foreground.dtype != torch.bool:
        raise ValueError(
            f"foreground must be a bool B×H×W tensor, got {foreground.dtype} {tuple(foreground.shape)}"
        )
    batch, height, width = foreground.shape
    ids = torch.arange(1, height * width + 1, device=foreground.device, dtype=torch.float32).view(
        1, height, width
    )
    labels = torch.where(foreground, ids, torch.zeros((), device=foreground.device))
    for _ in range(height * width):
        padded = F.pad(labels, (1, 1, 1, 1))
        neighbours = torch.stack(
            [labels, padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]]
        ).amax(dim=0)
        spread = torch.where(foreground, neighbours, labels)
        if torch.equal(spread, labels):
            break
        labels = spread
    return labels.long()
