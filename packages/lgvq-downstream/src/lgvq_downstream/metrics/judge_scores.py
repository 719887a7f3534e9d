"""Scores of generated images under the scene judges, their values on real images, and a shuffled control.

* :func:`condition_consistency` (attribute judge): per image, the fraction of the condition's objects whose
  (colour, shape) pair is detected (probability > ``threshold``) — ``object_recall`` — plus the F1 of the
  detected vs asked-for shapes, colours and pairs (the pair F1 also counts objects that were not asked for).
* :func:`segmentation_consistency` (segmenter judge): per image the pixel accuracy and the mean IoU over the
  classes present in the prediction or the target (:func:`mean_iou`, background included), plus the
  data-set mIoU of the summed confusion.
* :func:`judge_accuracy`: the same scores on real images with their own targets (the reference a generated
  score is shown beside) and with the targets of another image (a seeded derangement: the chance level).

Every aggregate is a mean over images with a 95 % interval (``intervals.mean_interval``); per-image values
come back as lists under ``"per_image"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lgvq_downstream.metrics.image_input import DEFAULT_RANGE, to_unit_images
from lgvq_downstream.metrics.intervals import IntervalMethod, mean_interval
from lgvq_downstream.metrics.judge_masks import check_masks
from lgvq_downstream.metrics.judge_nets import SceneAttributeJudge, SceneSegmenterJudge
from lgvq_downstream.metrics.scene_targets import COLOUR_OFFSET, PAIR_OFFSET, attribute_target_matrix

__all__ = [
    "attribute_scores",
    "condition_consistency",
    "dataset_miou",
    "derangement",
    "judge_accuracy",
    "mean_iou",
    "per_image_miou",
    "segmentation_consistency",
    "segmentation_scores",
]

Targets = Sequence[Mapping[str, Any]] | Tensor


def _f1(predicted: Tensor, wanted: Tensor) -> Tensor:
    """Per-row F1 of two bool N×K sets: 2·TP / (2·TP + FP + FN), 1 when both are empty."""
    tp = (predicted & wanted).sum(dim=1).double()
    wrong = (predicted ^ wanted).sum(dim=1).double()
    denominator = 2 * tp + wrong
    return torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1), torch.ones_like(tp))


def attribute_scores(
    probabilities: Tensor,
    targets: Tensor,
    threshold: float = 0.5,
    interval: IntervalMethod = "bootstrap",
    seed: int = 0,
) -> dict[str, Any]:
    """B×87 attribute probabilities and B×87 multi-hot targets → object recall and shape/colour/pair F1.

    Images whose target holds no object are left out of ``object_recall`` (counted in
    ``images_without_objects``).
    """
    if probabilities.shape != targets.shape:
        raise ValueError(
            f"{tuple(probabilities.shape)[0]} scored images but {tuple(targets.shape)[0]} targets "
            f"(shapes {tuple(probabilities.shape)} vs {tuple(targets.shape)})"
        )
    predicted = probabilities > threshold
    wanted = targets > 0.5
    pairs_wanted = wanted[:, PAIR_OFFSET:]
    found = (predicted[:, PAIR_OFFSET:] & pairs_wanted).sum(dim=1).double()
    count = pairs_wanted.sum(dim=1).double()
    has_objects = count > 0
    recall = found[has_objects] / count[has_objects]
    per_image = {
        "object_recall": recall,
        "shape_f1": _f1(predicted[:, :COLOUR_OFFSET], wanted[:, :COLOUR_OFFSET]),
        "colour_f1": _f1(predicted[:, COLOUR_OFFSET:PAIR_OFFSET], wanted[:, COLOUR_OFFSET:PAIR_OFFSET]),
        "pair_f1": _f1(predicted[:, PAIR_OFFSET:], pairs_wanted),
    }
    out: dict[str, Any] = {
        name: mean_interval(values, interval, seed=seed)
        for name, values in per_image.items()
        if values.numel()
    }
    out.update(
        images=int(targets.shape[0]),
        images_without_objects=int((~has_objects).sum()),
        threshold=threshold,
        per_image={name: values.tolist() for name, values in per_image.items()},
    )
    return out


def condition_consistency(
    judge: SceneAttributeJudge,
    images: Tensor,
    target_rows: Targets,
    *,
    value_range: tuple[float, float] = DEFAULT_RANGE,
    threshold: float = 0.5,
    interval: IntervalMethod = "bootstrap",
    seed: int = 0,
) -> dict[str, Any]:
    """How far images contain what their conditions asked for.

    Args:
        judge: a trained :class:`SceneAttributeJudge`.
        images: B×3×H×W uint8, or float in ``value_range`` (default [-1, 1]).
        target_rows: B shard row dicts (``boxes`` + ``refs``) or a B×87 multi-hot tensor.
    Returns ``object_recall``, ``shape_f1``, ``colour_f1``, ``pair_f1`` (each ``{"mean", "low", "high", "n",
    "interval"}``), ``images``, ``threshold`` and ``per_image`` lists.
    """
    unit = to_unit_images(images, value_range)
    targets = attribute_target_matrix(target_rows)
    if targets.shape[0] != unit.shape[0]:
        raise ValueError(f"{unit.shape[0]} images but {targets.shape[0]} target rows")
    probabilities = judge.probabilities(unit, (0.0, 1.0))
    return attribute_scores(probabilities, targets, threshold, interval, seed)


def mean_iou(prediction: Tensor, target: Tensor, num_classes: int) -> float:
    """One image's mean IoU: H×W class ids (prediction, target) → mean over the classes present in either of
    |P ∩ T| / |P ∪ T|."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape"
        )
    ious = []
    for c in range(num_classes):
        p, t = prediction == c, target == c
        union = int((p | t).sum())
        if union:
            ious.append(int((p & t).sum()) / union)
    return sum(ious) / len(ious)


def _class_counts(prediction: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """B×H×W, B×H×W → per image and class (B×C): intersection, predicted and target pixel counts."""
    pred = torch.nn.functional.one_hot(prediction.flatten(1), num_classes).sum(dim=1)
    true = torch.nn.functional.one_hot(target.flatten(1), num_classes).sum(dim=1)
    agree = torch.where(prediction == target, target, torch.full_like(target, num_classes))
    inter = torch.nn.functional.one_hot(agree.flatten(1), num_classes + 1).sum(dim=1)[:, :num_classes]
    return inter, pred, true


def per_image_miou(prediction: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """B×H×W, B×H×W → (B,) float64: :func:`mean_iou` of each image (vectorised)."""
    inter, pred, true = _class_counts(prediction, target, num_classes)
    union = pred + true - inter
    present = union > 0
    iou = inter.double() / union.clamp_min(1).double()
    return (iou * present).sum(dim=1) / present.sum(dim=1)


def dataset_miou(prediction: Tensor, target: Tensor, num_classes: int) -> dict[str, Any]:
    """Summed confusion over all images: ``{"miou", "per_class"}``; classes absent from both are ``None``."""
    inter, pred, true = (x.sum(dim=0) for x in _class_counts(prediction, target, num_classes))
    union = pred + true - inter
    per_class = [float(inter[c]) / float(union[c]) if union[c] > 0 else None for c in range(num_classes)]
    present = [v for v in per_class if v is not None]
    return {"miou": sum(present) / len(present), "per_class": per_class}


def segmentation_scores(
    prediction: Tensor,
    masks: Tensor,
    num_classes: int,
    interval: IntervalMethod = "bootstrap",
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Predicted and target B×H×W class ids → pixel accuracy and mIoU per image (mean + interval) and the
    data-set mIoU."""
    if prediction.shape != masks.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and masks {tuple(masks.shape)} differ in shape"
        )
    accuracy = (prediction == masks).flatten(1).double().mean(dim=1)
    miou = per_image_miou(prediction, masks, num_classes)
    whole = dataset_miou(prediction, masks, num_classes)
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    return {
        "pixel_accuracy": mean_interval(accuracy, interval, seed=seed),
        "miou": mean_interval(miou, interval, seed=seed),
        "dataset_miou": whole["miou"],
        "dataset_iou_per_class": dict(zip(names, whole["per_class"], strict=True)),
        "images": int(masks.shape[0]),
        "per_image": {"pixel_accuracy": accuracy.tolist(), "miou": miou.tolist()},
    }


def segmentation_consistency(
    judge: SceneSegmenterJudge,
    images: Tensor,
    masks: Tensor,
    *,
    value_range: tuple[float, float] = DEFAULT_RANGE,
    interval: IntervalMethod = "bootstrap",
    seed: int = 0,
) -> dict[str, Any]:
    """How far images follow their condition masks.

    Args:
        judge: a trained :class:`SceneSegmenterJudge`.
        images: B×3×H×W uint8, or float in ``value_range``; any size (resized to the judge's input).
        masks: B×h×w class ids in ``0..mask_classes-1``; the judge's logits are resized to h×w.
    Returns ``pixel_accuracy`` and ``miou`` (per-image means with intervals), ``dataset_miou``,
    ``dataset_iou_per_class``, ``images`` and ``per_image`` lists.
    """
    unit = to_unit_images(images, value_range)
    masks = check_masks(masks, judge.config.mask_classes)
    if masks.shape[0] != unit.shape[0]:
        raise ValueError(f"{unit.shape[0]} images but {masks.shape[0]} masks")
    prediction = judge.predict(unit, size=tuple(masks.shape[-2:]), value_range=(0.0, 1.0))
    return segmentation_scores(
        prediction, masks, judge.config.mask_classes, interval, seed, judge.config.class_names
    )


def derangement(n: int, seed: int = 0) -> Tensor:
    """A seeded permutation of ``range(n)`` with no fixed point (n ≥ 2): item ``order[i]`` takes
    ``order[i + 1]``."""
    if n < 2:
        raise ValueError(f"a shuffled control needs at least 2 items, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out = torch.empty(n, dtype=torch.long)
    out[order] = order.roll(-1)
    return out


def judge_accuracy(
    judge: SceneAttributeJudge | SceneSegmenterJudge,
    real_images: Tensor,
    targets: Targets,
    *,
    value_range: tuple[float, float] = DEFAULT_RANGE,
    interval: IntervalMethod = "bootstrap",
    seed: int = 0,
) -> dict[str, Any]:
    """A judge's scores on real images: ``{"real": ..., "shuffled": ..., "control": ...}``.

    ``targets``: for the attribute judge the rows (or B×87 multi-hot), for the segmenter the B×h×w masks.
    ``"real"`` pairs each image with its own targets (what a perfect generator would score); ``"shuffled"``
    pairs it with another image's (a derangement seeded by ``seed``: what ignoring the condition scores).
    """
    unit = to_unit_images(real_images, value_range)
    if isinstance(judge, SceneSegmenterJudge):
        masks = check_masks(targets, judge.config.mask_classes)  # type: ignore[arg-type]
        if masks.shape[0] != unit.shape[0]:
            raise ValueError(f"{unit.shape[0]} images but {masks.shape[0]} masks")
        prediction = judge.predict(unit, size=tuple(masks.shape[-2:]), value_range=(0.0, 1.0))
        names = judge.config.class_names
        real = segmentation_scores(prediction, masks, judge.config.mask_classes, interval, seed, names)
        other = masks[derangement(masks.shape[0], seed)]
        shuffled = segmentation_scores(prediction, other, judge.config.mask_classes, interval, seed, names)
    elif isinstance(judge, SceneAttributeJudge):
        matrix = attribute_target_matrix(targets)
        if matrix.shape[0] != unit.shape[0]:
            raise ValueError(f"{unit.shape[0]} images but {matrix.shape[0]} target rows")
        probabilities = judge.probabilities(unit, (0.0, 1.0))
        real = attribute_scores(probabilities, matrix, interval=interval, seed=seed)
        shuffled = attribute_scores(
            probabilities, matrix[derangement(matrix.shape[0], seed)], interval=interval, seed=seed
        )
    else:
        raise TypeError(
            f"judge must be a SceneAttributeJudge or SceneSegmenterJudge, got {type(judge).__name__}"
        )
    return {
        "real": real,
        "shuffled": shuffled,
        "control": "shuffled: each real image scored against another image's targets "
        f"(derangement, seed {seed})",
    }
