"""Box IoU / GIoU and grounding accuracy (TransVG convention: continuous coordinates, no +1 pixel).

Boxes are ``(x1, y1, x2, y2)`` corners (any unit, usually normalised to [0, 1]); N×4 and M×4 float tensors.
A pair whose union (or enclosing box) has zero area scores IoU 0 (GIoU: its IoU term only), never NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "box_area",
    "box_iou",
    "box_iou_paired",
    "cxcywh_to_xyxy",
    "generalized_box_iou",
    "generalized_box_iou_paired",
    "grounding_metrics",
]


def box_area(boxes: Tensor) -> Tensor:
    """…×4 → … (zero for inverted boxes)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _iou_and_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Broadcasting …×4, …×4 → (IoU, union area)."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    union = box_area(a) + box_area(b) - inter
    iou = torch.where(
        union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(union)
    )
    return iou, union


def _giou(a: Tensor, b: Tensor) -> Tensor:
    iou, union = _iou_and_union(a, b)
    lt = torch.minimum(a[..., :2], b[..., :2])
    rb = torch.maximum(a[..., 2:], b[..., 2:])
    enclose = (rb - lt).clamp(min=0).prod(dim=-1)
    penalty = torch.where(
        enclose > 0,
        (enclose - union) / enclose.clamp(min=torch.finfo(enclose.dtype).tiny),
        torch.zeros_like(enclose),
    )
    return iou - penalty


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU: N×4, M×4 → N×M."""
    return _iou_and_union(a[:, None, :], b[None, :, :])[0]


def box_iou_paired(a: Tensor, b: Tensor) -> Tensor:
    """IoU of row i of ``a`` with row i of ``b``: N×4, N×4 → N."""
    if a.shape != b.shape:
        raise ValueError(f"paired boxes need equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return _iou_and_union(a, b)[0]


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise GIoU (Rezatofighi et al. 2019), in [−1, 1]: N×4, M×4 → N×M."""
    return _giou(a[:, None, :], b[None, :, :])


def generalized_box_iou_paired(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise GIoU: N×4, N×4 → N (the GIoU loss is ``1 − this``)."""
    if a.shape != b.shape:
        raise ValueError(f"paired boxes need equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return _giou(a, b)


def cxcywh_to_xyxy(boxes: Tensor, *, clamp: bool = True) -> Tensor:
    """Normalised centre/size …×4 → corners …×4, clamped to [0, 1] by default (TransVG)."""
    cx, cy, w, h = boxes.unbind(-1)
    out = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    return out.clamp(0.0, 1.0) if clamp else out


def grounding_metrics(pred: Tensor, target: Tensor, *, threshold: float = 0.5) -> dict[str, float | int]:
    """Acc@IoU≥threshold and mean IoU of predicted vs ground-truth corner boxes (N×4 each)."""
    if pred.shape[0] == 0:
        raise ValueError("no boxes")
    iou = box_iou_paired(pred.double(), target.double())
    return {
        f"accuracy@{threshold:g}": float((iou >= threshold).double().mean()),
        "mean_iou": float(iou.mean()),
        "num_samples": iou.numel(),
    }
