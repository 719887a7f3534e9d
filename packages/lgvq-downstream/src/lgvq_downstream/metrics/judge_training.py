"""Training of the two scene judges on real images with dense labels.

Recipe (both): AdamW (weight decay 1e-4), learning rate warmed up linearly over the first 5 % of the steps,
held, then decayed linearly to 0 over the last 20 % (a cosine decay from the start stalled the nets on the
"background + one shape" plateau); pixel cross-entropy with the background class weighted
``BACKGROUND_WEIGHT`` (0.2: background is ~85 % of the pixels, and down-weighting it is what makes the
shape classes emerge reliably within a few hundred steps); seeded batches and augmentation: a horizontal
flip (every synthetic shape is left-right symmetric) and Gaussian pixel noise, so that the judges tolerate the
slight noise of decoded samples. The training set is converted to the judge's input size once and held in
memory (3,200 images of 32×32 px ≈ 40 MB as float32).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_downstream.metrics.image_input import DEFAULT_RANGE, to_unit_images
from lgvq_downstream.metrics.judge_masks import check_masks, resize_masks
from lgvq_downstream.metrics.judge_nets import (
    AttributeJudgeConfig,
    SceneAttributeJudge,
    SceneSegmenterJudge,
    SegmenterJudgeConfig,
)
from lgvq_downstream.metrics.scene_targets import COLOURS, NUM_PAIRS

__all__ = ["BACKGROUND_WEIGHT", "NOISE_STD", "train_attribute_judge", "train_segmenter_judge"]

logger = logging.getLogger(__name__)

BACKGROUND_WEIGHT = 0.2
NOISE_STD = 0.04  # Gaussian pixel noise of the augmentation, in [-1, 1] units
WARMUP_FRACTION = 0.05
COOLDOWN_FRACTION = 0.2


def _check_training_args(n: int, steps: int, batch_size: int, lr: float) -> None:
    if n < 2:
        raise ValueError(f"training needs at least 2 images, got {n}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")


def lr_factor(step: int, steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``steps``: warm-up, hold, cool-down."""
    warmup = max(1, int(WARMUP_FRACTION * steps))
    if step < warmup:
        return (step + 1) / warmup
    return min(1.0, (steps - step) / max(1.0, COOLDOWN_FRACTION * steps))


def _class_weights(classes: int, device: torch.device) -> Tensor:
    weights = torch.ones(classes, device=device)
    weights[0] = BACKGROUND_WEIGHT
    return weights


def _train(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    loss_of: Callable[[Tensor, Tensor], Tensor],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool,
    what: str,
) -> None:
    """The shared loop. ``inputs`` N×3×S×S in [-1, 1], ``labels`` N×S×S; ``loss_of(logits, labels)``."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: lr_factor(s, steps))
    model.to(memory_format=torch.channels_last)
    size = min(batch_size, inputs.shape[0])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"train {what}", unit="step")
    model.train()
    start = time.perf_counter()
    running = 0.0
    order = torch.randperm(inputs.shape[0], generator=generator)
    cursor = 0
    for step in range(steps):
        if cursor + size > len(order):
            order, cursor = torch.randperm(inputs.shape[0], generator=generator), 0
        index = order[cursor : cursor + size]
        cursor += size
        x, y = inputs[index], labels[index]
        flipped = (torch.rand(size, generator=generator) < 0.5).to(x.device)
        x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
        y = torch.where(flipped[:, None, None], y.flip(-1), y)
        x = x + NOISE_STD * torch.randn(x.shape, generator=generator).to(x.device)
        loss = loss_of(model(x.contiguous(memory_format=torch.channels_last)), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        scheduler.step()
        value = float(loss.detach())
        running = 0.9 * running + 0.1 * value if step else value
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
        if (step + 1) % max(1, steps // 5) == 0 or step + 1 == steps:
            logger.info(
                "%s: step %d/%d loss %.4f (%.1f s)",
                what,
                step + 1,
                steps,
                running,
                time.perf_counter() - start,
            )
    if bar is not None:
        bar.close()
    model.to(memory_format=torch.contiguous_format)
    model.eval()


def train_segmenter_judge(
    images: Tensor,
    masks: Tensor,
    steps: int = 200,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = False,
    *,
    config: SegmenterJudgeConfig | None = None,
    value_range: tuple[float, float] = DEFAULT_RANGE,
) -> SceneSegmenterJudge:
    """Train a :class:`SceneSegmenterJudge` on real images and their class-id masks.

    Args:
        images: N×3×H×W uint8, or float in ``value_range`` (resized to ``config.input_size``).
        masks: N×H'×W' integer class ids in ``0..mask_classes-1`` (resized, nearest, to the input size).
        steps, batch_size, lr: optimisation (see the module docstring for the schedule and loss).
        seed: fixes the initial weights, the batches and the augmentation.
        progress: show a tqdm bar.
    Returns the judge in eval mode, on the images' device.
    """
    config = config or SegmenterJudgeConfig()
    unit = to_unit_images(images, value_range)
    masks = check_masks(masks, config.mask_classes)
    if masks.shape[0] != unit.shape[0]:
        raise ValueError(f"{unit.shape[0]} images but {masks.shape[0]} masks")
    _check_training_args(unit.shape[0], steps, batch_size, lr)
    torch.manual_seed(seed)
    judge = SceneSegmenterJudge(config).to(unit.device)
    inputs = judge.prepare(unit, (0.0, 1.0))
    labels = resize_masks(masks, config.input_size).to(inputs.device)
    weights = _class_weights(config.mask_classes, inputs.device)

    def loss_of(logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, weight=weights)

    _train(judge, inputs, labels, loss_of, steps, batch_size, lr, seed, progress, "segmenter judge")
    return judge


def train_attribute_judge(
    images: Tensor,
    object_maps: Tensor,
    steps: int = 200,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = False,
    *,
    config: AttributeJudgeConfig | None = None,
    value_range: tuple[float, float] = DEFAULT_RANGE,
) -> SceneAttributeJudge:
    """Train a :class:`SceneAttributeJudge` on real images and their object maps.

    Args:
        images: N×3×H×W uint8, or float in ``value_range`` (resized to ``config.input_size``).
        object_maps: N×H'×W' int, 0 = background or ``1 + shape·10 + colour`` (``scene_targets.object_map``),
            resized (nearest) to the input size. The shape branch learns ``1 + (v − 1) // 10`` per pixel, the
            colour branch ``1 + (v − 1) % 10``.
        steps, batch_size, lr, seed, progress: as for :func:`train_segmenter_judge`.
    """
    config = config or AttributeJudgeConfig()
    unit = to_unit_images(images, value_range)
    object_maps = check_masks(object_maps, 1 + NUM_PAIRS, what="object_maps")
    if object_maps.shape[0] != unit.shape[0]:
        raise ValueError(f"{unit.shape[0]} images but {object_maps.shape[0]} object maps")
    _check_training_args(unit.shape[0], steps, batch_size, lr)
    torch.manual_seed(seed)
    judge = SceneAttributeJudge(config).to(unit.device)
    inputs = judge.prepare(unit, (0.0, 1.0))
    labels = resize_masks(object_maps, config.input_size).to(inputs.device)
    n_shape, n_colour = judge.num_shape_classes, judge.num_colour_classes
    shape_weights = _class_weights(n_shape, inputs.device)
    colour_weights = _class_weights(n_colour, inputs.device)
    n_colours = len(COLOURS)

    def loss_of(logits: Tensor, target: Tensor) -> Tensor:
        on = target > 0
        shape_target = torch.where(on, 1 + (target - 1) // n_colours, 0)
        colour_target = torch.where(on, 1 + (target - 1) % n_colours, 0)
        return F.cross_entropy(logits[:, :n_shape], shape_target, weight=shape_weights) + F.cross_entropy(
            logits[:, n_shape:], colour_target, weight=colour_weights
        )

    _train(judge, inputs, labels, loss_of, steps, batch_size, lr, seed, progress, "attribute judge")
    return judge
