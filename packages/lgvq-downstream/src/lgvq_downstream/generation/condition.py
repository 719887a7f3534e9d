"""``Condition``: what a ``CodeGenerator`` is conditioned on (text features and/or a class map), and
``encode_captions`` to build one from captions with a frozen text encoder.

Shapes: B batch, T text tokens, D text-feature width, H×W class map (integer multiples of the code grid h×w).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from lgvq_core.guidance.text_encoder import TextEncoder

__all__ = ["Condition", "encode_captions", "pool_class_map"]


@dataclass
class Condition:
    """A batch of conditions; any field may be ``None`` (that condition is then absent).

    Attributes:
        text_features: B×T×D float, frozen text-encoder token states.
        text_mask: B×T bool, True for real tokens (``None``: all real).
        mask: B×H×W int64 class ids; H, W are integer multiples of the code grid (pooled to it by per-cell
            majority vote).
    """

    text_features: Tensor | None = None
    text_mask: Tensor | None = None
    mask: Tensor | None = None

    def __post_init__(self) -> None:
        if self.text_features is None and self.mask is None:
            raise ValueError("a Condition needs text_features and/or mask; pass condition=None for none")
        if self.text_features is not None:
            if self.text_features.ndim != 3 or not self.text_features.is_floating_point():
                raise ValueError(
                    f"text_features must be a float B×T×D tensor, got {self.text_features.dtype} "
                    f"{tuple(self.text_features.shape)}"
                )
            if self.text_mask is not None and self.text_mask.shape != self.text_features.shape[:2]:
                raise ValueError(
                    f"text_mask must be B×T = {tuple(self.text_features.shape[:2])}, "
                    f"got {tuple(self.text_mask.shape)}"
                )
        elif self.text_mask is not None:
            raise ValueError("text_mask was given without text_features")
        if self.mask is not None:
            if self.mask.ndim != 3 or self.mask.is_floating_point() or self.mask.dtype == torch.bool:
                raise ValueError(
                    f"mask must be a B×H×W integer tensor of class ids, got {self.mask.dtype} "
                    f"{tuple(self.mask.shape)}"
                )
            self.mask = self.mask.long()
        sizes = {t.shape[0] for t in (self.text_features, self.mask) if t is not None}
        if len(sizes) != 1:
            raise ValueError(f"text_features and mask have different batch sizes {sorted(sizes)}")

    def batch_size(self) -> int:
        """B."""
        first = self.text_features if self.text_features is not None else self.mask
        assert first is not None
        return first.shape[0]

    def select(self, index: Tensor | Sequence[int] | slice) -> Condition:
        """The rows ``index`` of every field."""
        if not isinstance(index, (Tensor, slice)):
            index = torch.as_tensor(list(index), dtype=torch.long)
        return Condition(*(None if t is None else t[index] for t in self._fields()))

    def to(self, device: torch.device | str) -> Condition:
        return Condition(*(None if t is None else t.to(device) for t in self._fields()))

    def _fields(self) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        return self.text_features, self.text_mask, self.mask


def encode_captions(text_encoder: TextEncoder, captions: Sequence[str]) -> Condition:
    """Captions → ``Condition`` with the encoder's token states (B×L×E) and attention mask (B×L).

    Example: ``encode_captions(load_text_encoder("minilm"), ["a red square"])``. Raises ``ValueError`` for an
    empty caption.
    """
    if isinstance(captions, str):
        raise TypeError("captions must be a list of strings, not one string")
    captions = list(captions)
    if not captions:
        raise ValueError("captions is empty; expected at least one caption")
    for i, caption in enumerate(captions):
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"caption {i} is {caption!r}; expected a non-empty string")
    features = text_encoder.encode(captions)
    return Condition(
        text_features=features.token_states.float(), text_mask=features.attention_mask.to(torch.bool)
    )


def pool_class_map(mask: Tensor, grid: tuple[int, int], num_classes: int) -> Tensor:
    """Class map B×H×W → B×h×w by per-cell majority vote (ties: the smallest class id).

    H and W must be positive integer multiples of h and w; ids must lie in [0, num_classes).
    """
    b, height, width = mask.shape
    h, w = grid
    if height % h or width % w or height < h or width < w:
        raise ValueError(f"mask is {height}×{width}; expected integer multiples of the code grid {h}×{w}")
    if mask.numel() and (int(mask.min()) < 0 or int(mask.max()) >= num_classes):
        raise ValueError(
            f"mask class ids must be in [0, {num_classes}), got values in "
            f"[{int(mask.min())}, {int(mask.max())}]"
        )
    if (height, width) == (h, w):
        return mask
    rows = torch.arange(height, device=mask.device) // (height // h)
    cols = torch.arange(width, device=mask.device) // (width // w)
    cell = rows[:, None] * w + cols[None, :]  # H×W cell index
    index = (cell[None] * num_classes + mask).reshape(b, -1)
    counts = torch.zeros(b, h * w * num_classes, dtype=torch.int32, device=mask.device)
    counts.scatter_add_(1, index, torch.ones_like(index, dtype=torch.int32))
    return counts.view(b, h, w, num_classes).argmax(dim=-1)
