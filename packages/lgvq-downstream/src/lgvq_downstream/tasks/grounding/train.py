"""Train a grounding model: the shared loop (``tasks.common.loop``) over :func:`.loss.train_step`."""

from __future__ import annotations

import functools
import logging
from typing import Any

from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.common.loop import run_training
from lgvq_downstream.tasks.grounding.config import GroundingConfig
from lgvq_downstream.tasks.grounding.data import GroundingDataset, collate_grounding
from lgvq_downstream.tasks.grounding.loss import train_step
from lgvq_downstream.tasks.grounding.model import GroundingModel

__all__ = ["train"]

logger = logging.getLogger(__name__)


def train(
    model: GroundingModel,
    dataset: GroundingDataset,
    config: GroundingConfig | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` for ``config.train.steps`` steps (``config`` defaults to the model's;
    the loss weights always come from ``model.config``). Records the mean training box (the baseline
    ``evaluate`` scores) in the model.

    Returns:
        ``{"loss": [per step], "lr", "steps", "epochs", "seconds", "examples", "data": dataset report}``.
    """
    config = config or model.config
    check_codes(model.tokenizer_info, dataset.codes, None)
    model.mean_train_box.copy_(dataset.mean_box())
    history = run_training(
        model,
        dataset,
        functools.partial(collate_grounding, vocab=model.vocab),
        train_step,
        config.train,
        desc=f"grounding ({len(dataset)} expressions)",
        progress=progress,
    )
    history["data"] = dataset.report()
    return history
