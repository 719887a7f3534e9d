"""``lgvq-downstream vqa train|evaluate``.

    lgvq-downstream vqa train --codes DIR --out DIR [--config JSON] [--set KEY=VALUE ...] [--steps N] ...
    lgvq-downstream vqa evaluate --codes DIR --out DIR [--model DIR] [--split test] [--no-wups] [--figure]

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

__all__ = ["add_vqa"]

logger = logging.getLogger("lgvq-downstream")


def _train(args: argparse.Namespace) -> int:
    from lgvq_downstream.codes.reader import CodeShardSet
    from lgvq_downstream.tasks.vqa.config import VQAConfig
    from lgvq_downstream.tasks.vqa.train import build, train

    config = config_from_args(VQAConfig, args)
    codes = CodeShardSet(args.codes, split=args.split)
    model = build(config, codes)
    history = train(model, codes, progress=not args.no_progress)
    model.save_pretrained(args.out)
    write_report(args.out / "train-history.json", {"config": config.to_dict(), **history})
    logger.info(
        "%s: VQA model trained for %d steps on %d questions (loss %.4f → %.4f, %d skipped)",
        args.out,
        history["steps"],
        history["questions"],
        history["loss"][0] if history["loss"] else float("nan"),
        history["loss"][-1] if history["loss"] else float("nan"),
        history["skipped"]["skipped"],
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from lgvq_downstream.codes.reader import CodeShardSet
    from lgvq_downstream.tasks.vqa.evaluate import evaluate, save_vqa_examples
    from lgvq_downstream.tasks.vqa.model import VQAModel

    model = VQAModel.from_pretrained(args.model or args.out, map_location=args.device)
    codes = CodeShardSet(args.codes, split=args.split)
    report = evaluate(
        model, codes, on_error=args.on_error, wups=not args.no_wups, progress=not args.no_progress
    )
    path = write_report(args.out / f"eval-{args.split}.json", report)
    if args.figure:
        tokenizer = figure_tokenizer(args, codes.tokenizer.path)
        save_vqa_examples(report, args.out / f"eval-{args.split}-examples.png", tokenizer=tokenizer)
    logger.info(
        "%s: accuracy %.4f (majority per type %.4f, shuffled codes %.4f) on %d questions",
        path,
        report["metrics"]["accuracy"],
        report["baseline"]["metrics"]["accuracy"],
        report["shuffled_codes"]["metrics"]["accuracy"],
        report["num_questions"],
    )
    return 0


def add_vqa(subparsers: argparse._SubParsersAction) -> None:
    """``vqa``: train / evaluate an answer classifier on code shards."""
    p = subparsers.add_parser(
        "vqa",
        help="visual question answering on tokenizer codes (train / evaluate)",
        description="VQA as answer classification from the last hidden state over [image codes | question].",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser("train", help="train a VQA model on a split of code shards")
    add_train_arguments(t)
    t.set_defaults(handler=_train)
    e = actions.add_parser("evaluate", help="accuracy/WUPS vs the baseline and the shuffled-codes control")
    add_evaluate_arguments(e)
    e.add_argument("--no-wups", action="store_true", help="skip WUPS (no WordNet load)")
    e.set_defaults(handler=_evaluate)
