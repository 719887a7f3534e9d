"""``SampleScorer``: what the generation evaluation measures a set of images with — the Fréchet distance to
the real images of the evaluated split (their features computed once) and, when scene judges are given, the
condition-consistency scores (``lgvq_downstream.metrics``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lgvq_downstream.metrics.sample_fd import SampleFrechet

__all__ = ["NO_JUDGES", "SampleScorer"]

NO_JUDGES = "no-judges.json"
"""A judges folder holding only this file says why there are no judges (data without scene annotations):
the scores are then the Fréchet distances alone."""


class SampleScorer:
    """Args:
    real_images: uint8 N×3×H×W, the reference set of the Fréchet distance.
    fid_weights: None = the offline FD-EffLite0; a path = FID from that Inception weights file.
    judges: a folder of scene judges (``lgvq_downstream.metrics.judge_io.save_judges``), or None; a
        folder with only :data:`NO_JUDGES` means none.
    reference_split: the split the real images are from (recorded).
    fd_size: EfficientNet-Lite0 input side (ignored for Inception).
    """

    def __init__(
        self,
        real_images: Tensor,
        *,
        fid_weights: str | os.PathLike[str] | None = None,
        judges: str | os.PathLike[str] | None = None,
        reference_split: str = "test",
        fd_size: int = 224,
    ) -> None:
        self.frechet = SampleFrechet(
            real_images, reference_split=reference_split, fid_weights=fid_weights, fd_size=fd_size
        )
        self.name = self.frechet.name
        self._judges_dir = Path(judges) if judges is not None else None
        self.attribute_judge = self.segmenter_judge = None
        if self._judges_dir is not None and not (self._judges_dir / NO_JUDGES).is_file():
            from lgvq_downstream.metrics.judge_io import load_judges

            self.attribute_judge, self.segmenter_judge = load_judges(self._judges_dir)

    @property
    def has_judges(self) -> bool:
        return self.attribute_judge is not None

    def protocol(self) -> dict[str, Any]:
        """The feature network's record (weights, sha256, input handling) and the judges' folder."""
        return {
            "frechet": self.frechet.protocol(),
            "judges": str(self._judges_dir) if self._judges_dir else None,
        }

    def fd(self, images: Tensor) -> float:
        """Fréchet distance of uint8 images N×3×H×W to the reference set."""
        return self.frechet.distance(images)

    def targets(self, rows: Sequence[Mapping[str, Any]]) -> Tensor:
        """Multi-hot attribute targets N×A of shard rows (their ``boxes`` and ``refs``)."""
        from lgvq_downstream.metrics.scene_targets import attribute_target_matrix

        return attribute_target_matrix(list(rows))

    def attributes(self, images: Tensor, targets: Tensor) -> dict[str, Any]:
        """How many of each row's (colour, shape) objects the attribute judge finds in its image:
        ``object_recall`` (mean over images, 95 % bootstrap interval beside it), ``shape_f1``, ``colour_f1``,
        ``pair_f1``."""
        from lgvq_downstream.metrics.judge_scores import condition_consistency

        scores = condition_consistency(self.attribute_judge, images, targets)
        return _means(scores, ("object_recall", "shape_f1", "colour_f1", "pair_f1"))

    def segmentation(self, images: Tensor, masks: Tensor) -> dict[str, Any]:
        """Per-image mIoU and pixel accuracy of the segmenter judge's prediction on ``images`` against
        ``masks`` (means with 95 % bootstrap intervals) and the dataset-level mIoU."""
        from lgvq_downstream.metrics.judge_scores import segmentation_consistency

        scores = segmentation_consistency(self.segmenter_judge, images, masks.to(torch.long))
        out = _means(scores, ("miou", "pixel_accuracy"))
        out["dataset_miou"] = scores.get("dataset_miou")
        return out


def _means(scores: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """``{key: mean, key_interval: [low, high]}`` of the judges' ``{"mean", "low", "high"}`` entries, plus
    the image count."""
    out: dict[str, Any] = {"images": scores.get("images")}
    for key in keys:
        entry = scores[key]
        out[key] = float(entry["mean"])
        out[f"{key}_interval"] = [float(entry["low"]), float(entry["high"])]
    return out
