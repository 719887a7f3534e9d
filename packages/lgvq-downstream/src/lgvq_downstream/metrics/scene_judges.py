"""Scene judges for the generation tasks on synthetic scenes: do generated images contain what their
condition asked for?

Two small nets trained on real synthetic images (``judge_nets``, ``judge_training``) score samples
(``judge_scores``): the attribute judge for text-to-image (are the asked-for (colour, shape) objects there?),
the segmenter judge for semantic synthesis (does the layout follow the mask?). A judge's score on generated
images means little alone: show it beside the judge's score on real held-out images (the ceiling) and on
shuffled real pairs (chance), both from :func:`judge_accuracy` and stored with the judges by
:func:`fit_scene_judges`.

This module gathers the public API and holds :func:`fit_scene_judges`, the one-call training from shards.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from lgvq_data.shards import ShardSet
from lgvq_downstream.metrics.intervals import mean_interval
from lgvq_downstream.metrics.judge_io import LoadedJudges, load_judges, save_judges
from lgvq_downstream.metrics.judge_nets import (
    AttributeJudgeConfig,
    SceneAttributeJudge,
    SceneSegmenterJudge,
    SegmenterJudgeConfig,
)
from lgvq_downstream.metrics.judge_scores import (
    condition_consistency,
    judge_accuracy,
    mean_iou,
    segmentation_consistency,
)
from lgvq_downstream.metrics.judge_training import (
    BACKGROUND_WEIGHT,
    NOISE_STD,
    train_attribute_judge,
    train_segmenter_judge,
)
from lgvq_downstream.metrics.scene_data import SceneSplit, load_scene_split
from lgvq_downstream.metrics.scene_targets import attribute_targets, object_map

__all__ = [
    "AttributeJudgeConfig",
    "LoadedJudges",
    "SceneAttributeJudge",
    "SceneSegmenterJudge",
    "SceneSplit",
    "SegmenterJudgeConfig",
    "attribute_targets",
    "condition_consistency",
    "fit_scene_judges",
    "judge_accuracy",
    "load_judges",
    "load_scene_split",
    "mean_interval",
    "mean_iou",
    "object_map",
    "save_judges",
    "segmentation_consistency",
    "train_attribute_judge",
    "train_segmenter_judge",
]

logger = logging.getLogger(__name__)


def _summary(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores without their per-image lists (for JSON)."""
    return {k: v for k, v in scores.items() if k != "per_image"}


def fit_scene_judges(
    shards_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    split_train: str = "train",
    split_eval: str | None = None,
    steps: int = 200,
    seed: int = 0,
    *,
    batch_size: int = 64,
    lr: float = 3e-3,
    image_size: int | None = None,
    limit_train: int | None = None,
    limit_eval: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train both judges on ``split_train`` of an lgvq-data shard directory of synthetic scenes, score them on
    the held-out ``split_eval`` (default ``"test"``, else ``"val"``), save them to ``out_dir`` and return the
    metrics written into its ``judges.json``.

    ``steps``, ``batch_size``, ``lr``: each judge's training; ``seed``: the attribute judge trains with
    ``seed``, the segmenter with ``seed + 1``; ``image_size``: resize rows to this side (default: as stored);
    ``limit_train``/``limit_eval``: use only the first rows of a split.

    Returned dict: ``attribute`` and ``segmenter`` → ``{"held_out": {"real", "shuffled", "control"},
    "train_seconds"}`` (scores without per-image lists), ``data`` (directory, splits, counts, sizes),
    ``training`` (the settings).
    """
    if split_eval is None:
        shards = ShardSet.open(shards_dir)
        split_eval = "test" if shards.split_indices("test") else "val"
    if split_eval == split_train:
        raise ValueError(f"split_eval must differ from split_train ({split_train!r})")
    train = load_scene_split(shards_dir, split_train, image_size=image_size, limit=limit_train)
    held_out = load_scene_split(
        shards_dir, split_eval, image_size=image_size or train.images.shape[-1], limit=limit_eval
    )
    settings = {
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "background_weight": BACKGROUND_WEIGHT,
        "noise_std": NOISE_STD,
        "torch_threads": torch.get_num_threads(),
    }
    start = time.perf_counter()
    attribute = train_attribute_judge(train.images, train.object_maps, steps, batch_size, lr, seed, progress)
    attribute_seconds = time.perf_counter() - start
    start = time.perf_counter()
    segmenter = train_segmenter_judge(train.images, train.masks, steps, batch_size, lr, seed + 1, progress)
    segmenter_seconds = time.perf_counter() - start
    attribute_eval = judge_accuracy(attribute, held_out.images, held_out.targets, seed=seed)
    segmenter_eval = judge_accuracy(segmenter, held_out.images, held_out.masks, seed=seed)
    metrics: dict[str, Any] = {
        "attribute": {
            "held_out": {k: _summary(v) if isinstance(v, dict) else v for k, v in attribute_eval.items()},
            "train_seconds": round(attribute_seconds, 2),
        },
        "segmenter": {
            "held_out": {k: _summary(v) if isinstance(v, dict) else v for k, v in segmenter_eval.items()},
            "train_seconds": round(segmenter_seconds, 2),
        },
        "data": {
            "shards": str(Path(shards_dir)),
            "split_train": split_train,
            "split_eval": split_eval,
            "train_images": len(train),
            "eval_images": len(held_out),
            "image_size": int(train.images.shape[-1]),
        },
        "training": settings,
    }
    save_judges(out_dir, attribute, segmenter, record={"metrics": metrics})
    logger.info(
        "scene judges → %s: attribute object recall %.3f (shuffled %.3f), segmenter mIoU %.3f "
        "(shuffled %.3f); trained in %.1f + %.1f s",
        out_dir,
        attribute_eval["real"]["object_recall"]["mean"],
        attribute_eval["shuffled"]["object_recall"]["mean"],
        segmenter_eval["real"]["miou"]["mean"],
        segmenter_eval["shuffled"]["miou"]["mean"],
        attribute_seconds,
        segmenter_seconds,
    )
    return metrics
