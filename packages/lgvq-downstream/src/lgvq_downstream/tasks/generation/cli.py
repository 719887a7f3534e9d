"""``lgvq-downstream unconditional|complete|synthesize|text2image train|evaluate``.

    lgvq-downstream text2image train --codes DIR --out DIR [--config JSON] [--set KEY=VALUE ...] [--steps N]
    lgvq-downstream text2image evaluate --codes DIR --out DIR [--model DIR] [--split test] [--judges DIR]
        [--fid-weights FILE] [--shards DIR] [--samples N] [--guidance-scale S] [--figure]

``train`` trains a generator with the conditions the task needs (unconditional and complete: none;
synthesize: the class mask; text2image: the caption), unless ``--config``/``--set conditions=...`` says
otherwise — a generator trained with several conditions serves several tasks. ``evaluate`` writes
``eval-<split>-<task>.json`` (and with ``--figure`` ``<task>.png``) into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from lgvq_downstream.tasks.common.cli import (
    add_evaluate_arguments,
    add_train_arguments,
    config_from_args,
    figure_tokenizer,
    write_report,
)

__all__ = ["COMMANDS", "add_generation"]

logger = logging.getLogger("lgvq-downstream")

# subcommand → (package task, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "unconditional": ("unconditional", "unconditional image generation on codes"),
    "complete": ("completion", "image completion: the top code rows given, the rest sampled"),
    "synthesize": ("semantic", "semantic image synthesis: class mask → image"),
    "text2image": ("text_to_image", "text-to-image: caption → image codes"),
}


def _train(args: argparse.Namespace) -> int:
    from lgvq_downstream.codes.reader import CodeShardSet
    from lgvq_downstream.tasks.generation import TASK_CONDITIONS, GenerationConfig, build, train

    config = config_from_args(GenerationConfig, args)
    given = {item.partition("=")[0].strip() for item in args.overrides}
    if "conditions" not in given and args.config is None:
        config = dataclasses.replace(config, conditions=TASK_CONDITIONS[args.task])
    codes = CodeShardSet(args.codes, split=args.split)
    model = build(config, codes)
    history = train(model, codes, progress=not args.no_progress)
    model.save_pretrained(args.out)
    write_report(args.out / "train-history.json", {"config": config.to_dict(), **history})
    logger.info(
        "%s: generator (%s, conditions %s) trained for %d steps (loss %.4f → %.4f, %d skipped)",
        args.out,
        config.sampler,
        list(config.conditions) or "none",
        history["steps"],
        history["loss"][0] if history["loss"] else float("nan"),
        history["loss"][-1] if history["loss"] else float("nan"),
        history["skipped"]["skipped"],
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from lgvq_downstream.codes.reader import CodeShardSet
    from lgvq_downstream.codes.tokenizer_folder import load_tokenizer
    from lgvq_downstream.tasks.generation import (
        GenerationModel,
        SampleScorer,
        evaluate,
        reference_images,
        save_task_figures,
    )

    model = GenerationModel.from_pretrained(args.model or args.out, map_location=args.device)
    codes = CodeShardSet(args.codes, split=args.split)
    decoder = figure_tokenizer(args, codes.tokenizer.path)
    if decoder is None:
        decoder = load_tokenizer(args.tokenizer or codes.tokenizer.path).model  # raises with the reason
    decoder = decoder.to(args.device)
    ids = [str(codes[i]["id"]) for i in range(len(codes))]
    real = reference_images(codes, ids, args.shards)
    sampling = model.config.sampling
    changes = {
        k: v
        for k, v in (("num_samples", args.samples), ("guidance_scale", args.guidance_scale))
        if v is not None
    }
    if changes:
        sampling = dataclasses.replace(sampling, **changes)
    scorer = SampleScorer(real, fid_weights=args.fid_weights, judges=args.judges)
    report = evaluate(
        model,
        codes,
        decoder,
        real,
        tasks=(args.task,),
        scorer=scorer,
        sampling=sampling,
        progress=not args.no_progress,
    )
    if args.figure:
        figures = save_task_figures(report, args.out, decoder, real_by_id=dict(zip(ids, real, strict=True)))
        report["figures"] = {task: str(path) for task, path in figures.items()}
    path = write_report(args.out / f"eval-{args.split}-{args.task}.json", report)
    result = report["tasks"][args.task]
    logger.info(
        "%s: %s on %s: %s %.2f (reconstructions %.2f, unigram baseline %.2f)",
        path,
        args.task,
        args.split,
        report["protocol"]["feature_network"],
        result["fd"]["samples"],
        report["reference"]["fd"]["reconstructions"],
        report["reference"]["fd"]["unigram_baseline"],
    )
    return 0


def add_generation(subparsers: argparse._SubParsersAction) -> None:
    """The four generation subcommands, each with ``train`` and ``evaluate``."""
    for command, (task, help_text) in COMMANDS.items():
        p = subparsers.add_parser(command, help=help_text, description=__doc__.split("\n\n")[0])
        actions = p.add_subparsers(dest="action", required=True)
        t = actions.add_parser("train", help=f"train a generator for {task}")
        add_train_arguments(t)
        t.set_defaults(handler=_train, task=task)
        e = actions.add_parser("evaluate", help=f"evaluate a generator on {task}")
        add_evaluate_arguments(e)
        e.add_argument("--judges", type=Path, help="scene judges folder (condition consistency)")
        e.add_argument("--fid-weights", help="Inception weights file for FID (default: offline FD-EffLite0)")
        e.add_argument("--shards", type=Path, help="source lgvq-data shards (default: the codes' manifest)")
        e.add_argument("--samples", type=int, help="sampling.num_samples")
        e.add_argument("--guidance-scale", type=float, help="sampling.guidance_scale")
        e.set_defaults(handler=_evaluate, task=task)
