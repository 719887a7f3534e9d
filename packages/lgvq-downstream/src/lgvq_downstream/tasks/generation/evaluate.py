"""Evaluate a :class:`GenerationModel` on the four generation tasks, each next to its references and controls.

For every task the report holds the sampling protocol, the Fréchet distance of the samples to the real images
of the evaluated split, and beside it: the tokenizer's own reconstructions of those images (the best a
generator on these codes can do), the unigram baseline (codes drawn independently from the training codes'
frequencies: the trivial generator) and, for the conditional tasks, the condition-consistency scores of the
scene judges on the samples, on the real images, on the reconstructions and on the samples paired with
another row's condition (the shuffled control: what the score is when the image ignores its condition).
The generator's validation NLL (nats per code) is reported against the uniform code (ln K) and the unigram
entropy, and for the conditional tasks with the condition against the null condition.

Protocols (documented; the paper does not state its completion protocol): *unconditional* — ``num_samples``
samples, null conditions; *completion* — the top ``completion_rows`` code rows (default half) of each
evaluated row given, the rest sampled unconditionally; PSNR/SSIM over the given half's pixels beside the
tokenizer's own reconstruction of that half; *semantic* — each evaluated row's class mask as the condition;
*text_to_image* — each evaluated row's first caption as the condition. Conditional tasks use
``guidance_scale``. Evaluated rows: the first ``num_samples`` rows of the split (cycled when it is shorter).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.generation import Condition
from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.common.controls import derangement
from lgvq_downstream.tasks.common.rows import SkipReport
from lgvq_downstream.tasks.generation.config import GENERATION_TASKS, SamplingConfig
from lgvq_downstream.tasks.generation.data import GenerationExamples, collect_examples
from lgvq_downstream.tasks.generation.model import GenerationModel
from lgvq_downstream.tasks.generation.sampling import decode_images, draw, unigram_codes
from lgvq_downstream.tasks.generation.scoring import SampleScorer

__all__ = ["evaluate"]

logger = logging.getLogger(__name__)


def _psnr_ssim(images: Tensor, reference: Tensor, rows: int) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of the top ``rows`` pixel rows of uint8 images against the reference."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    a = images[:, :, :rows].float() / 255.0
    b = reference[:, :, :rows].float() / 255.0
    psnr = peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))
    kernel = min(7, rows if rows % 2 else rows - 1)
    ssim = structural_similarity_index_measure(a, b, data_range=1.0, kernel_size=max(3, kernel))
    return {"psnr_db": float(psnr.mean()), "ssim": float(ssim)}


class _Rows:
    """The evaluated rows: ``n`` positions cycling through the examples, with their codes, captions, masks,
    real images and reconstructions."""

    def __init__(
        self, examples: GenerationExamples, n: int, real: Tensor, decoder: nn.Module, targets: Tensor | None
    ) -> None:
        self.index = torch.arange(n) % len(examples)
        self.targets = targets[self.index] if targets is not None else None
        self.codes = examples.codes[self.index]
        self.captions = [examples.captions[i][0] if examples.captions[i] else "" for i in self.index.tolist()]
        self.masks = examples.masks[self.index] if examples.masks is not None else None
        self.ids = [examples.ids[i] for i in self.index.tolist()]
        self.real = real[self.index]
        self.reconstructions = decode_images(decoder, self.codes)


def evaluate(
    model: GenerationModel,
    dataset: CodeShardSet,
    decoder: nn.Module,
    real_images: Tensor,
    *,
    tasks: tuple[str, ...] | list[str] = tuple(GENERATION_TASKS),
    scorer: SampleScorer | None = None,
    sampling: SamplingConfig | None = None,
    progress: bool = True,
    on_task: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``tasks`` over the rows of ``dataset`` (one split of code shards).

    Args:
        decoder: the frozen tokenizer that made the codes (``decode``: B×h×w → B×3×H×W in [-1, 1]).
        real_images: uint8 N×3×H×W, the source images of ``dataset``'s rows in dataset order
            (:func:`~lgvq_downstream.tasks.generation.reference.reference_images`).
        scorer: Fréchet distance and scene judges (default: FD-EffLite0 against ``real_images``, no judges).
        sampling: default ``model.config.sampling``.
        on_task: called with each task's name before it runs (progress reporting).

    Returns:
        ``{"tasks": {task: report}, "nll": {...}, "reference": {...}, "protocol": {...}, "ids": [...]}`` (see
        the module docstring; ``ids``: the evaluated rows' ids in order); ``examples`` per task hold the first
        ``num_examples`` samples' codes and conditions.
    """
    config = model.config
    sampling = sampling or config.sampling
    unknown = [t for t in tasks if t not in GENERATION_TASKS]
    if unknown:
        raise ValueError(f"unknown generation task(s) {unknown}; choose from {list(GENERATION_TASKS)}")
    unsupported = [t for t in tasks if not config.supports(t)]
    if unsupported:
        raise ValueError(
            f"the model was trained with conditions {list(config.conditions)} (dropout "
            f"{config.condition_dropout}); it cannot run {unsupported}"
        )
    check_codes(model.tokenizer_info, dataset, model.source)
    skips = SkipReport(config.train.on_error)
    examples = collect_examples(
        dataset,
        skips,
        need_text="text_to_image" in tasks,
        need_mask="semantic" in tasks,
        mask_classes=model.mask_classes or None,
    )
    if len(examples) == 0:
        raise ValueError(f"{dataset.root}: no usable rows to evaluate (split {dataset.split!r})")
    if real_images.shape[0] != len(dataset):
        raise ValueError(
            f"real_images holds {real_images.shape[0]} images, the split {dataset.split!r} has {len(dataset)} rows"
        )
    real = real_images[torch.tensor(examples.positions)]
    started = time.perf_counter()
    model.eval()
    decoder.eval()
    scorer = scorer or SampleScorer(real)
    targets = None
    if scorer.has_judges and "text_to_image" in tasks:
        targets = scorer.targets([dataset[p] for p in examples.positions])
    rows = _Rows(examples, sampling.num_samples, real, decoder, targets)
    k = model.generator.config.codebook_size
    grid = tuple(model.generator.config.grid)
    unigram = decode_images(
        decoder, unigram_codes(model.code_frequencies, len(rows.index), grid, sampling.seed + 7)
    )
    reference = {
        "rows": len(rows.index),
        "distinct_rows": int(min(len(examples), sampling.num_samples)),
        "fd": {"reconstructions": scorer.fd(rows.reconstructions), "unigram_baseline": scorer.fd(unigram)},
        "fd_name": scorer.name,
    }
    nll = _nll(model, examples, k)
    report: dict[str, Any] = {
        "protocol": {
            "split": dataset.split,
            "num_samples": sampling.num_samples,
            "sampler": config.sampler,
            "sampling": sampling.to_dict(),
            "feature_network": scorer.name,
            "reference_images": int(real.shape[0]),
            **scorer.protocol(),
        },
        "nll": nll,
        "reference": reference,
        "tasks": {},
        "skipped": skips.to_dict(),
        "ids": list(rows.ids),
    }
    ctx = _Context(model, decoder, rows, scorer, sampling, unigram, progress)
    for task in tasks:
        if on_task is not None:
            on_task(task)
        t0 = time.perf_counter()
        result = RUNNERS[task](ctx)
        result["seconds"] = time.perf_counter() - t0
        report["tasks"][task] = result
        logger.info("generation %s: FD %.2f (%.0f s)", task, result["fd"]["samples"], result["seconds"])
    report["seconds"] = time.perf_counter() - started
    return report


# ------------------------------------------------------------------------------------------------ NLL


@torch.no_grad()
def _nll(model: GenerationModel, examples: GenerationExamples, k: int, limit: int = 256) -> dict[str, Any]:
    """Validation NLL (nats per code) of the first ``limit`` rows: null condition, and each condition alone."""
    n = min(limit, len(examples))
    codes = examples.codes[:n]
    freq = model.code_frequencies.clamp_min(1e-12)
    out: dict[str, Any] = {
        "rows": n,
        "uniform": math.log(k),
        "unigram_entropy": float(-(freq * freq.log()).sum()),
        "null_condition": _mean_nll(model, codes, None),
    }
    if "text" in model.config.conditions:
        captions = [c[0] for c in examples.captions[:n]]
        out["text_condition"] = _mean_nll(model, codes, lambda s, e: model.condition(captions=captions[s:e]))
    if "mask" in model.config.conditions and examples.masks is not None:
        masks = examples.masks[:n]
        out["mask_condition"] = _mean_nll(model, codes, lambda s, e: model.condition(masks=masks[s:e]))
    return out


def _mean_nll(model: GenerationModel, codes: Tensor, condition_of: Any, batch: int = 64) -> float:
    values = []
    for s in range(0, codes.shape[0], batch):
        e = min(codes.shape[0], s + batch)
        condition = condition_of(s, e) if condition_of is not None else None
        values.append(model.generator.nll(codes[s:e], condition).cpu())
    return float(torch.cat(values).mean())


# ------------------------------------------------------------------------------------------------ tasks


@dataclass
class _Context:
    model: GenerationModel
    decoder: nn.Module
    rows: _Rows
    scorer: SampleScorer
    sampling: SamplingConfig
    unigram: Tensor  # uint8 images of the unigram baseline, one per evaluated row
    progress: bool

    @property
    def n(self) -> int:
        return len(self.rows.index)

    def examples(self, samples: Tensor, **extra: Any) -> list[dict[str, Any]]:
        """The first ``num_examples`` samples' codes (for the figure) with their row id and condition."""
        out = []
        for i in range(min(self.model.config.num_examples, samples.shape[0])):
            item: dict[str, Any] = {"id": self.rows.ids[i], "indices": samples[i].tolist()}
            item.update({key: values[i] for key, values in extra.items()})
            out.append(item)
        return out


def _unconditional(ctx: _Context) -> dict[str, Any]:
    codes = draw(
        ctx.model,
        ctx.n,
        lambda s, e: (None, None, None),
        ctx.sampling,
        guidance=False,
        desc="unconditional",
        progress=ctx.progress,
    )
    images = decode_images(ctx.decoder, codes)
    return {
        "fd": {"samples": ctx.scorer.fd(images)},
        "distinct_samples": int(torch.unique(codes.flatten(1), dim=0).shape[0]),
        "examples": ctx.examples(codes),
    }


def _completion(ctx: _Context) -> dict[str, Any]:
    h, w = ctx.model.generator.config.grid
    given_rows = ctx.sampling.completion_rows or h // 2
    if not 1 <= given_rows < h:
        raise ValueError(f"completion_rows must be in 1..{h - 1} for a {h}×{w} grid, got {given_rows}")
    keep = torch.zeros(h, w, dtype=torch.bool)
    keep[:given_rows] = True
    given = ctx.rows.codes

    def inputs(s: int, e: int) -> tuple[Tensor, Tensor, None]:
        return given[s:e], keep, None

    codes = draw(
        ctx.model, ctx.n, inputs, ctx.sampling, guidance=False, desc="completion", progress=ctx.progress
    )
    if not torch.equal(codes[:, :given_rows], given[:, :given_rows]):
        raise AssertionError("completion changed given codes")  # the sampler's contract; tested there
    images = decode_images(ctx.decoder, codes)
    pixels = given_rows * images.shape[-2] // h
    filled = given.clone()
    filled[:, given_rows:] = unigram_codes(
        ctx.model.code_frequencies, ctx.n, (h - given_rows, w), ctx.sampling.seed + 11
    )
    unigram = decode_images(ctx.decoder, filled)
    return {
        "protocol": {"given_code_rows": given_rows, "of_rows": h, "given_pixel_rows": pixels},
        "fd": {"samples": ctx.scorer.fd(images), "unigram_fill": ctx.scorer.fd(unigram)},
        "given_half": {
            "samples": _psnr_ssim(images, ctx.rows.real, pixels),
            "reconstructions": _psnr_ssim(ctx.rows.reconstructions, ctx.rows.real, pixels),
        },
        "given_codes_unchanged": True,
        "examples": ctx.examples(codes, given_rows=[given_rows] * ctx.n),
    }


def _semantic(ctx: _Context) -> dict[str, Any]:
    masks = ctx.rows.masks
    assert masks is not None  # collect_examples(need_mask=True)

    def inputs(s: int, e: int) -> tuple[None, None, Condition | None]:
        return None, None, ctx.model.condition(masks=masks[s:e])

    codes = draw(
        ctx.model, ctx.n, inputs, ctx.sampling, guidance=True, desc="semantic", progress=ctx.progress
    )
    images = decode_images(ctx.decoder, codes)
    result: dict[str, Any] = {"fd": {"samples": ctx.scorer.fd(images)}}
    if ctx.scorer.has_judges:
        other = masks[derangement(ctx.n, seed=ctx.sampling.seed)]
        result["consistency"] = {
            "samples": ctx.scorer.segmentation(images, masks),
            "shuffled_masks": ctx.scorer.segmentation(images, other),
            "real_images": ctx.scorer.segmentation(ctx.rows.real, masks),
            "reconstructions": ctx.scorer.segmentation(ctx.rows.reconstructions, masks),
            "unigram_baseline": ctx.scorer.segmentation(ctx.unigram, masks),
        }
    result["examples"] = ctx.examples(
        codes, mask=[m.tolist() for m in masks[: ctx.model.config.num_examples]]
    )
    return result


def _text_to_image(ctx: _Context) -> dict[str, Any]:
    captions = ctx.rows.captions

    def inputs(s: int, e: int) -> tuple[None, None, Condition | None]:
        return None, None, ctx.model.condition(captions=captions[s:e])

    codes = draw(
        ctx.model, ctx.n, inputs, ctx.sampling, guidance=True, desc="text-to-image", progress=ctx.progress
    )
    images = decode_images(ctx.decoder, codes)
    result: dict[str, Any] = {"fd": {"samples": ctx.scorer.fd(images)}}
    if ctx.scorer.has_judges and ctx.rows.targets is not None:
        targets = ctx.rows.targets
        other = targets[derangement(ctx.n, seed=ctx.sampling.seed)]
        result["consistency"] = {
            "samples": ctx.scorer.attributes(images, targets),
            "shuffled_captions": ctx.scorer.attributes(images, other),
            "real_images": ctx.scorer.attributes(ctx.rows.real, targets),
            "reconstructions": ctx.scorer.attributes(ctx.rows.reconstructions, targets),
            "unigram_baseline": ctx.scorer.attributes(ctx.unigram, targets),
        }
    result["examples"] = ctx.examples(codes, caption=captions)
    return result


RUNNERS = {
    "unconditional": _unconditional,
    "completion": _completion,
    "semantic": _semantic,
    "text_to_image": _text_to_image,
}
