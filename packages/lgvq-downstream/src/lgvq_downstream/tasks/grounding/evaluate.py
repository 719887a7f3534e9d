"""Evaluate a grounding model: Acc@IoU≥t and mean IoU on one split, next to trivial baselines on the same
expressions.

- ``mean_train_box``: every expression answered with the mean training box (mean cx, cy, w, h);
- ``centre_box``: a box of the mean training width and height centred in the image;
- ``shuffled_codes``: the model itself, each expression paired with the codes of another image of the split
  (a fixed derangement by ``seed``): how much of the score the image codes carry.

Boxes are compared in the preprocessed (resized, center-cropped) frame normalised to [0, 1]; IoU is continuous
(no +1 pixel) and predicted corners are clamped to [0, 1] (TransVG).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from lgvq_downstream.metrics.boxes import box_iou_paired, cxcywh_to_xyxy, grounding_metrics
from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.common.controls import derangement
from lgvq_downstream.tasks.grounding.data import GroundingDataset, collate_grounding
from lgvq_downstream.tasks.grounding.model import GroundingModel

__all__ = ["evaluate", "predict"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def predict(
    model: GroundingModel,
    dataset: GroundingDataset,
    *,
    batch_size: int = 64,
    image_order: Tensor | None = None,
) -> Tensor:
    """Predicted corners N×4 (normalised, clamped) for every expression of ``dataset``; ``image_order``
    (n_images, int64) replaces image slot i by slot ``image_order[i]`` (the shuffled-codes control)."""
    was_training = model.training
    model.eval()
    device = model.reg_token.device
    out = []
    for start in range(0, len(dataset), batch_size):
        batch = collate_grounding(
            [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))], model.vocab
        )
        codes = batch["codes"]
        if image_order is not None:
            codes = dataset.images[image_order[dataset.image_index[batch["index"]]]]
        out.append(
            model.predict(codes.to(device), batch["tokens"].to(device), batch["text_mask"].to(device)).cpu()
        )
    model.train(was_training)
    return torch.cat(out)


def _metrics(pred: Tensor, target: Tensor, threshold: float) -> dict[str, float]:
    result = grounding_metrics(pred, target, threshold=threshold)
    return {key: float(value) for key, value in result.items() if key != "num_samples"}


def evaluate(
    model: GroundingModel,
    dataset: GroundingDataset,
    *,
    batch_size: int = 64,
    seed: int = 0,
    num_examples: int | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on ``dataset`` with the baselines of the module docstring.

    Raises ``CheckpointMismatchError`` (naming both tokenizers) when the codes come from another tokenizer
    than the model was trained on.

    Returns:
        ``{"task", "split", "num_samples", "num_images", "protocol", "model": {"accuracy@t", "mean_iou"},
        "baselines": {name: {...}}, "data": dataset report, "examples": [...]}``; each example holds ``id``,
        ``expression``, ``true_box``, ``pred_box``, ``iou`` and its code grid ``indices`` (h×w lists).
    """
    check_codes(model.tokenizer_info, dataset.codes, None)
    threshold = model.config.iou_threshold
    target = dataset.boxes
    pred = predict(model, dataset, batch_size=batch_size)
    mean = model.mean_train_box.detach().cpu().float()
    n = len(dataset)
    mean_box = cxcywh_to_xyxy(mean.expand(n, 4))
    centre_box = cxcywh_to_xyxy(torch.tensor([0.5, 0.5, float(mean[2]), float(mean[3])]).expand(n, 4))
    baselines: dict[str, Any] = {
        "mean_train_box": _metrics(mean_box, target, threshold),
        "centre_box": _metrics(centre_box, target, threshold),
    }
    n_images = int(dataset.images.shape[0])
    if n_images >= 2:
        shuffled = predict(model, dataset, batch_size=batch_size, image_order=derangement(n_images, seed))
        baselines["shuffled_codes"] = _metrics(shuffled, target, threshold)
    else:
        baselines["shuffled_codes"] = None  # one image: nothing to shuffle
    model_metrics = _metrics(pred, target, threshold)
    iou = box_iou_paired(pred.double(), target.double())
    count = model.config.num_examples if num_examples is None else num_examples
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(count, n)].sort().values
    examples = []
    for i in chosen.tolist():
        item = dataset.items[i]
        examples.append(
            {
                "id": item.row_id,
                "file": item.file,
                "row": item.row,
                "ref": item.ref,
                "expression": item.expression,
                "true_box": [round(float(v), 6) for v in target[i]],
                "pred_box": [round(float(v), 6) for v in pred[i]],
                "iou": float(iou[i]),
                "indices": dataset.images[item.image].tolist(),
            }
        )
    key = f"accuracy@{threshold:g}"
    logger.info(
        "grounding on %s (%d expressions): %s %.3f, mean IoU %.3f; mean box %.3f, centre box %.3f, shuffled "
        "codes %s",
        dataset.split,
        n,
        key,
        model_metrics[key],
        model_metrics["mean_iou"],
        baselines["mean_train_box"][key],
        baselines["centre_box"][key],
        "n/a" if baselines["shuffled_codes"] is None else f"{baselines['shuffled_codes'][key]:.3f}",
    )
    return {
        "task": "grounding",
        "split": dataset.split,
        "num_samples": n,
        "num_images": n_images,
        "protocol": (
            f"Acc@IoU≥{threshold:g} and mean IoU of the predicted vs the true box in the preprocessed "
            f"({dataset.codes.manifest.preprocessing.get('resize')} resize + center crop to "
            f"{dataset.codes.manifest.preprocessing.get('size')} px) frame normalised to [0, 1]; continuous "
            "IoU, predicted corners clamped to [0, 1] (TransVG); one sample per referring expression"
        ),
        "model": model_metrics,
        "baselines": baselines,
        "data": dataset.report(),
        "examples": examples,
    }
