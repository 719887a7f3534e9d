"""How many LG head steps does the image-dependent part of masked-word recall need? A learning curve.

``python -m pipelines.probe_curve --run models/vqgan-on-s0 --shards data/shards --out reports/probe_curve``
fits fresh LG heads on the run's *frozen* tokenizer (as the evaluate stage's probe, ``fit_probe``: leak-free
``fixed`` mode, loss Lgsa + Lmtp + Lras, the ``guidance`` section's head settings) and, every ``--every``
steps, scores masked-word Recall@1 (mask-1, ``--draws`` mask draws per caption, pooled) on the first
``--images`` images of ``--split`` with real and with shuffled images, overall and per word class (the
evaluate stage's protocol). The heads see ``--steps``
× ``--batch-size`` train images; nothing is chosen from the curve.

Writes ``probe_curve.json`` (the points, the protocol) and ``probe_curve.png`` (recall with real vs shuffled
images, all words and content words, against head steps). Not a DVC stage: a diagnostic for choosing a
budget, about 0.45 CPU s per step at the default size.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipelines.evaluate import EvalBatches, pooled_recall, synthetic_word_classes
from pipelines.models import GuidanceParams, guidance_config, load_run, torch_threads
from pipelines.params import StageParams
from pipelines.splits import SplitParams, carve_fraction
from pipelines.stage import setup_logging, write_json

logger = logging.getLogger(__name__)

CLASSES = ("colour", "shape", "position", "count", "size_pattern", "template")


def recall_point(
    model: Any, batches: EvalBatches, word_classes: dict[str, set[str]], seeds: Sequence[int]
) -> dict[str, float]:
    """Recall@1 (mask-1, pooled over one mask draw per seed) with real and shuffled images, overall, content
    words and per class, in %."""
    real = pooled_recall(model, batches, 1, seeds, "real", word_classes)
    shuffled = pooled_recall(model, batches, 1, seeds, "shuffled", word_classes)
    point: dict[str, float] = {"masked_tokens": real["masked_tokens"]}
    for name in ("", "_content", *(f"_{c}" for c in CLASSES)):
        key = f"recall_at_1{name}"
        if key in real:
            label = name.lstrip("_") or "all"
            point[f"{label}_real"] = 100 * real[key]
            point[f"{label}_shuffled"] = 100 * shuffled[key]
            point[f"{label}_gain"] = 100 * (real[key] - shuffled[key])
    return point


def learning_curve(
    run: Path,
    shards: Path,
    guidance: GuidanceParams,
    *,
    steps: int,
    every: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    split: str = "test",
    images: int = 256,
    seed: int = 0,
    splits: SplitParams | None = None,
    draws: int = 4,
) -> dict[str, Any]:
    """The curve's points (one per ``every`` steps) and its protocol."""
    from lgvq_core.guidance.language_guided import LanguageGuided
    from lgvq_core.guidance.text_encoder import load_text_encoder
    from pipelines.text import training_captions

    if steps < 1 or every < 1:
        raise ValueError(f"steps and every must be >= 1, got {steps} and {every}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    config = guidance_config(guidance)
    if config.mode != "fixed":
        config = guidance_config(GuidanceParams("fixed", guidance.text_encoder, guidance.config))
    encoder = load_text_encoder(guidance.text_encoder, context_length=config.context_length)
    tokenizer, meta = load_run(run)  # no text encoder given: the tokenizer alone, also for an LG run
    image_size = int(meta.get("image_size", tokenizer.config.encoder.resolution))
    splits = splits or SplitParams()
    carve = {"val_from_train": carve_fraction(shards, splits), "split_seed": splits.seed}
    train = EvalBatches(shards, "train", image_size, batch_size, seed, steps * batch_size, **carve)
    scored = EvalBatches(shards, split, image_size, 64, seed, images, **carve)
    word_classes = synthetic_word_classes()
    mask_seeds = [seed + draw for draw in range(draws)]
    points: list[dict[str, float]] = []
    started = time.perf_counter()

    def score(step: int, heads: Any) -> None:
        if step % every and step != steps:
            return
        elapsed = time.perf_counter() - started
        point = {"step": step, "seconds": elapsed, **recall_point(heads, scored, word_classes, mask_seeds)}
        points.append(point)
        log_point(point)

    torch.manual_seed(seed)
    heads = LanguageGuided(tokenizer, encoder, config)
    if config.prediction_vocabulary == "captions":
        heads.set_prediction_vocabulary(training_captions(shards))
    for p in tokenizer.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam([p for n, p in heads.named_parameters() if not n.startswith("base.")], lr=lr)
    data = list(train)
    with torch.enable_grad():
        for step in range(1, steps + 1):
            heads.train()
            tokenizer.eval()
            batch = data[(step - 1) % len(data)]
            with torch.no_grad():
                quantized = tokenizer(batch["images"]).quant.quantized
            out = heads.alignment_losses(quantized, batch["captions"])
            optimizer.zero_grad(set_to_none=True)
            (out.lgsa + out.lmtp + out.lras).backward()
            optimizer.step()
            score(step, heads)
    return {
        "run": str(run),
        "points": points,
        "protocol": {
            "heads": f"fresh LG heads ({config.mode} mode) on the frozen tokenizer, loss Lgsa + Lmtp + Lras",
            "train": f"{steps} steps of {batch_size} train images (one caption per image), lr {lr}",
            "scored": scored_protocol(len(scored), split, mask_seeds),
            "text_encoder": guidance.text_encoder,
        },
    }


def scored_protocol(images: int, split: str, mask_seeds: Sequence[int]) -> str:
    """How a curve's points are scored, for its JSON."""
    return (
        f"first {images} {split} images, mask-1, {len(mask_seeds)} mask draw(s) per caption (seeds "
        f"{mask_seeds[0]}–{mask_seeds[-1]}), pooled; shuffled: images rolled by one across each batch"
    )


def log_point(point: dict[str, float]) -> None:
    """One curve point as a log line: recall with real vs shuffled images, all words and content words."""
    logger.info(
        "step %d: recall %.1f %% (shuffled %.1f %%), content words %.1f %% (shuffled %.1f %%)",
        point["step"],
        point["all_real"],
        point["all_shuffled"],
        point.get("content_real", float("nan")),
        point.get("content_shuffled", float("nan")),
    )


def add_curve_arguments(p: argparse.ArgumentParser, *, out: str, every: int, split: str, images: int) -> None:
    """The options both learning curves share (data, output, budget, scoring, threads, logging)."""
    p.add_argument("--shards", type=Path, default=Path("data/shards"))
    p.add_argument("--out", type=Path, default=Path(out))
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--every", type=int, default=every)
    p.add_argument("--split", default=split)
    p.add_argument("--images", type=int, default=images)
    p.add_argument("--draws", type=int, default=4, help="mask draws per caption, pooled")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-level", default="INFO")


def plot(
    curve: dict[str, Any], path: Path, xlabel: str = "probe head steps", title: str | None = None
) -> Path:
    """Recall with real vs shuffled images (all words, content words) against steps."""
    from pipelines.plots import _pyplot, save_figure

    plt = _pyplot()
    steps = [p["step"] for p in curve["points"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, colour in (("all", "tab:blue"), ("content", "tab:orange")):
        if f"{label}_real" not in curve["points"][0]:
            continue
        name = "all words" if label == "all" else "content words"
        real = [p[f"{label}_real"] for p in curve["points"]]
        ax.plot(steps, real, "-o", color=colour, label=f"{name}, real images")
        ax.plot(
            steps,
            [p[f"{label}_shuffled"] for p in curve["points"]],
            "--o",
            color=colour,
            alpha=0.6,
            label=f"{name}, shuffled images",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("masked-word Recall@1 (mask-1), %")
    ax.set_title(title or f"LG heads on the frozen tokenizer of {Path(curve['run']).name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a trained run folder (models/<run>)")
    add_curve_arguments(p, out="reports/probe_curve", every=300, split="test", images=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    torch_threads(args.threads)
    params = StageParams(args.params, ("guidance", "splits"))
    guidance = params.section("guidance", GuidanceParams)
    curve = learning_curve(
        args.run,
        args.shards,
        guidance,
        steps=args.steps,
        every=args.every,
        batch_size=args.batch_size,
        lr=args.lr,
        split=args.split,
        images=args.images,
        splits=params.section("splits", SplitParams),
        draws=args.draws,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "probe_curve.json", curve)
    plot(curve, args.out / "probe_curve.png")
    last = curve["points"][-1]
    logger.info("wrote %s (last point: step %d, gain %.1f points)", args.out, last["step"], last["all_gain"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
