"""The grounding loss (TransVG/DETR): ``l1_weight·L1 + giou_weight·(1 − GIoU)``, and ``train_step``.

L1 is taken on the normalised ``(cx, cy, w, h)``; GIoU on the corners of the prediction (not clamped, so its
gradient never vanishes at the border) against the target corners. Both are means over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from lgvq_downstream.metrics.boxes import cxcywh_to_xyxy, generalized_box_iou_paired
from lgvq_downstream.tasks.grounding.boxes import xyxy_to_cxcywh

__all__ = ["GroundingLoss", "batch_loss", "grounding_loss", "train_step"]


@dataclass
class GroundingLoss:
    """Scalar tensors: the weighted ``total`` and its unweighted parts."""

    total: Tensor
    l1: Tensor
    giou: Tensor


def grounding_loss(
    pred: Tensor, target: Tensor, l1_weight: float = 5.0, giou_weight: float = 2.0
) -> GroundingLoss:
    """pred B×4 normalised (cx, cy, w, h); target B×4 normalised corners (x0, y0, x1, y1)."""
    l1 = F.l1_loss(pred, xyxy_to_cxcywh(target))
    giou = (1.0 - generalized_box_iou_paired(cxcywh_to_xyxy(pred, clamp=False), target)).mean()
    return GroundingLoss(total=l1_weight * l1 + giou_weight * giou, l1=l1, giou=giou)


def batch_loss(model: Any, batch: dict[str, Any]) -> GroundingLoss:
    """The loss of one ``collate_grounding`` batch (moved to the model's device), weights from
    ``model.config``."""
    device = model.reg_token.device
    pred = model(batch["codes"].to(device), batch["tokens"].to(device), batch["text_mask"].to(device))
    return grounding_loss(pred, batch["boxes"].to(device), model.config.l1_weight, model.config.giou_weight)


def train_step(model: Any, batch: dict[str, Any]) -> Tensor:
    """Scalar training loss of one batch (what the training loop, or a Ray Train worker, back-propagates)."""
    return batch_loss(model, batch).total
