"""Evaluate a :class:`Captioner` on one split: coco-caption metrics against every reference caption of each
image, next to two references points scored the same way —

- the trivial baseline: the most frequent training caption, given to every image;
- the shuffled-codes control: each image captioned from the codes of another image of the split (a seeded
  derangement); a model that ignores its image scores the same with and without shuffling.

The report also keeps a few examples (codes, generated, shuffled and reference captions) for a figure.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from tqdm import tqdm

from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.metrics.captions import caption_metrics, require_java
from lgvq_downstream.tasks.captioning.data import collect_images
from lgvq_downstream.tasks.captioning.model import Captioner
from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.common.controls import derangement
from lgvq_downstream.tasks.common.plot import save_examples_png
from lgvq_downstream.tasks.common.rows import OnError, SkipReport

__all__ = ["caption_codes", "evaluate", "save_caption_examples"]

logger = logging.getLogger(__name__)

HEADLINE = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")


@contextlib.contextmanager
def _meteor(enabled: bool) -> Iterator[Any]:
    """One METEOR 1.5 JVM for all the scorings of an evaluation (its start-up dominates the cost)."""
    if not enabled:
        yield None
        return
    require_java()
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        yield scorer
    finally:
        proc = getattr(scorer, "meteor_p", None)
        if proc is not None and proc.poll() is None:
            proc.stdin.close()
            proc.kill()
            proc.wait()


def caption_codes(
    model: Captioner,
    codes: Tensor,
    *,
    beam_size: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "captions",
) -> list[str]:
    """Captions of N×h×w codes, in batches."""
    out: list[str] = []
    for start in tqdm(range(0, codes.shape[0], batch_size), desc=desc, disable=not progress):
        out += model.caption(codes[start : start + batch_size], beam_size=beam_size)
    return out


def _difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    return {k: a[k] - b[k] for k in HEADLINE if k in a and k in b}


def evaluate(
    model: Captioner,
    dataset: CodeShardSet,
    *,
    beam_size: int | None = None,
    metrics: Sequence[str] | None = None,
    on_error: OnError | None = None,
    num_examples: int | None = None,
    control_seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of ``model`` on ``dataset`` with the baseline and the shuffled-codes control.

    Args:
        beam_size: 1 = greedy; default ``model.config.beam_size``.
        metrics: subset of ``bleu``, ``meteor``, ``rouge``, ``cider``; default ``model.config.metrics``.
        on_error: bad-input policy; default ``model.config.train.on_error``.
        num_examples: examples kept in the report; default ``model.config.num_examples``.

    Returns:
        ``metrics`` / ``baseline.metrics`` / ``shuffled_codes.metrics`` (each ``caption_metrics``' output:
        raw values, ``x100``, ``distinct_caption_ratio``, ``protocol``), ``image_dependence`` (model minus
        control), ``decoding``, ``num_images``, ``examples``, ``skipped``.

    Raises:
        CheckpointMismatchError: ``dataset`` holds codes of another tokenizer than the model was trained on.
    """
    check_codes(model.tokenizer_info, dataset, model.source)
    config = model.config
    beam = config.beam_size if beam_size is None else beam_size
    wanted = tuple(metrics if metrics is not None else config.metrics)
    skips = SkipReport(on_error or config.train.on_error)
    images = collect_images(dataset, skips)
    n = len(images)
    if n == 0:
        raise ValueError(f"{dataset.root}: no usable images with captions in split {dataset.split!r}")
    model.eval()
    generated = caption_codes(model, images.codes, beam_size=beam, batch_size=batch_size, progress=progress)
    order = derangement(n, control_seed)
    shuffled = caption_codes(
        model, images.codes[order], beam_size=beam, batch_size=batch_size, progress=progress, desc="control"
    )
    references = dict(enumerate(images.references()))
    with _meteor("meteor" in wanted) as meteor:
        scores = caption_metrics(references, dict(enumerate(generated)), metrics=wanted, meteor=meteor)
        baseline = caption_metrics(
            references, dict.fromkeys(references, model.baseline_caption), metrics=wanted, meteor=meteor
        )
        control = caption_metrics(references, dict(enumerate(shuffled)), metrics=wanted, meteor=meteor)
    keep = config.num_examples if num_examples is None else num_examples
    examples = [
        {
            "id": images.ids[i],
            "indices": images.codes[i].tolist(),
            "generated": generated[i],
            "shuffled_codes": shuffled[i],
            "shuffled_from": images.ids[int(order[i])],
            "references": references[i],
        }
        for i in range(min(keep, n))
    ]
    report = {
        "task": "captioning",
        "codes": str(dataset.root),
        "split": dataset.split,
        "checkpoint": str(model.source) if model.source is not None else None,
        "num_images": n,
        "decoding": {
            "method": "greedy" if beam == 1 else "beam search",
            "beam_size": beam,
            "max_new_tokens": config.generation_limit,
            "length_penalty": config.length_penalty,
        },
        "metrics": scores,
        "baseline": {
            "name": "most frequent training caption, given to every image",
            "caption": model.baseline_caption,
            "metrics": baseline,
        },
        "shuffled_codes": {
            "name": "captions generated from the codes of another image of the split",
            "seed": control_seed,
            "metrics": control,
        },
        "image_dependence": _difference(scores, control),
        "gain_over_baseline": _difference(scores, baseline),
        "examples": examples,
        "skipped": skips.to_dict(),
    }
    logger.info(
        "captioning on %s (%s, %d images): %s | baseline %s | shuffled codes %s",
        dataset.root,
        dataset.split,
        n,
        _short(scores),
        _short(baseline),
        _short(control),
    )
    return report


def _short(scores: dict[str, Any]) -> str:
    return " ".join(f"{k} {scores[k]:.3f}" for k in HEADLINE if k in scores)


def save_caption_examples(
    report: dict[str, Any], path: str | os.PathLike[str], *, tokenizer: nn.Module | None = None
) -> Path:
    """PNG of the report's examples: image decoded by ``tokenizer`` (else the code grid) with the generated
    caption, the shuffled-codes caption and the first reference beneath."""

    def lines(example: dict[str, Any]) -> list[str]:
        return [
            f"model: {example['generated']}",
            f"shuffled: {example['shuffled_codes']}",
            f"reference: {example['references'][0]}",
        ]

    return save_examples_png(report["examples"], path, lines, tokenizer=tokenizer)
