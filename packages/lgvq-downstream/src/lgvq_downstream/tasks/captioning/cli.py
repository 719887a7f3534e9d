"""``lgvq-downstream caption train|evaluate``.

    lgvq-downstream caption train --codes DIR --out DIR [--config JSON] [--set KEY=VALUE ...] [--steps N] ...
    lgvq-downstream caption evaluate --codes DIR --out DIR [--model DIR] [--split test] [--beam-size N]
        [--greedy] [--metrics bleu,meteor,rouge,cider] [--figure]

``train`` writes the checkpoint into ``--out`` and ``train-history.json`` beside it; ``evaluate`` writes
``eval-<split>.json`` (and with ``--figure`` ``eval-<split>-examples.png``) into ``--out``.
"""

from __future__ import annotations

import argparse
import logging

from lgvq_downstream.tasks.common.cli import (
    add_evaluate_arguments,
    add_train_arguments,
    config_from_args,
    figure_tokenizer,
    write_report,
)

__all__ = ["add_caption"]

logger = logging.getLogger("lgvq-downstream")


def _train(args: argparse.Namespace) -> int:
    from lgvq_downstream.codes.reader import CodeShardSet
    from lgvq_downstream.tasks.captioning.config import CaptionConfig
    from lgvq_downstream.tasks.captioning.train import build, train

    config = config_from_args(CaptionConfig, args)
    codes = CodeShardSet(args.codes, split=args.split)
    model = build(config, codes)
    history = train(model, codes, progress=not args.no_progress)
    model.save_pretrained(args.out)
    write_report(args.out / "train-history.json", {"config": config.to_dict(), **history})
    logger.info(
        "%s: captioner trained for %d steps on %d images (loss %.4f → %.4f, %d skipped)",
        args.out,
        history["steps"],
        history["images"],
        history["loss"][0] if history["loss"] else float("nan"),
        history["loss"][-1] if history["loss"] else float("nan"),
        history["skipped"]["skipped"],
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from lgvq_downstream.codes.reader import CodeShardSet
    from lgvq_downstream.tasks.captioning.evaluate import evaluate, save_caption_examples
    from lgvq_downstream.tasks.captioning.model import Captioner

    model = Captioner.from_pretrained(args.model or args.out, map_location=args.device)
    codes = CodeShardSet(args.codes, split=args.split)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    report = evaluate(
        model,
        codes,
        beam_size=1 if args.greedy else args.beam_size,
        metrics=metrics,
        on_error=args.on_error,
        progress=not args.no_progress,
    )
    path = write_report(args.out / f"eval-{args.split}.json", report)
    if args.figure:
        tokenizer = figure_tokenizer(args, codes.tokenizer.path)
        save_caption_examples(report, args.out / f"eval-{args.split}-examples.png", tokenizer=tokenizer)
    m, b, c = report["metrics"], report["baseline"]["metrics"], report["shuffled_codes"]["metrics"]
    key = "CIDEr-D" if "CIDEr-D" in m else next(k for k in ("BLEU-4", "ROUGE-L", "METEOR") if k in m)
    logger.info(
        "%s: %s %.4f (baseline %.4f, shuffled codes %.4f) on %d images",
        path,
        key,
        m[key],
        b[key],
        c[key],
        report["num_images"],
    )
    return 0


def add_caption(subparsers: argparse._SubParsersAction) -> None:
    """``caption``: train / evaluate a ClipCap-style captioner on code shards."""
    p = subparsers.add_parser(
        "caption",
        help="image captioning on tokenizer codes (train / evaluate)",
        description="ClipCap-style captioning: code embeddings → mapping network → prefix → caption.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser("train", help="train a captioner on a split of code shards")
    add_train_arguments(t)
    t.set_defaults(handler=_train)
    e = actions.add_parser("evaluate", help="caption metrics vs the baseline and the shuffled-codes control")
    add_evaluate_arguments(e)
    e.add_argument("--beam-size", type=int, help="beam width (default: the model's config, 3)")
    e.add_argument("--greedy", action="store_true", help="greedy decoding (beam size 1)")
    e.add_argument("--metrics", help="comma-separated subset of bleu,meteor,rouge,cider (default: config)")
    e.set_defaults(handler=_evaluate)
