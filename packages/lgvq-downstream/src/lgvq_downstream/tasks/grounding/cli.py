"""``lgvq-downstream ground train|evaluate``.

    lgvq-downstream ground train    --codes DIR --out DIR [--config grounding.json] [--set KEY=VALUE] ...
    lgvq-downstream ground evaluate --codes DIR --out DIR [--model DIR] [--split test] [--tokenizer DIR]

``train`` writes the checkpoint (``transformer/``, ``heads.safetensors``, ``task.json``) and
``history.json`` into ``--out``; ``evaluate`` writes ``metrics.json`` (metrics, baselines, data report,
examples) and ``examples.png`` (true vs predicted boxes; images decoded with ``--tokenizer``, else the code
grids).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["add_ground"]

logger = logging.getLogger("lgvq-downstream.ground")

# Grounding's own shortcut flags → top-level GroundingConfig keys (the train.* shortcuts, --config and --set
# are the shared ones of ``tasks.common.cli``).
_MODEL_SHORTCUTS = ("width", "layers", "heads", "max_text_tokens")


def _config(args: argparse.Namespace) -> Any:
    from lgvq_downstream.tasks.common.cli import config_from_args
    from lgvq_downstream.tasks.grounding.config import GroundingConfig

    overrides = [
        f"{key}={json.dumps(v)}" for key in _MODEL_SHORTCUTS if (v := getattr(args, key)) is not None
    ]
    if args.no_codebook_init:
        overrides.append("init_from_codebook=false")
    args.overrides = [*args.overrides, *overrides]
    return config_from_args(GroundingConfig, args)


def _write_json(path: Path, payload: Any) -> None:
    from lgvq_downstream.tasks.common.cli import write_report

    path.parent.mkdir(parents=True, exist_ok=True)
    write_report(path, payload)


def _run_train(args: argparse.Namespace) -> int:
    from lgvq_downstream.tasks.common.text import load_text_tokenizer
    from lgvq_downstream.tasks.grounding.data import GroundingDataset
    from lgvq_downstream.tasks.grounding.model import build
    from lgvq_downstream.tasks.grounding.train import train

    config = _config(args)
    tokenizer = load_text_tokenizer(config.text_encoder)
    dataset = GroundingDataset(
        args.codes,
        args.split,
        tokenizer,
        max_text_tokens=config.max_text_tokens,
        on_error=config.train.on_error,
    )
    model = build(config, dataset)
    history = train(model, dataset, progress=not args.no_progress)
    model.save_pretrained(args.out)
    _write_json(args.out / "history.json", history)
    logger.info(
        "%s: %d steps on %d expressions, loss %.4f → %.4f",
        args.out,
        history["steps"],
        len(dataset),
        history["loss"][0] if history["loss"] else float("nan"),
        history["loss"][-1] if history["loss"] else float("nan"),
    )
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from lgvq_downstream.codes.tokenizer_folder import load_tokenizer
    from lgvq_downstream.tasks.grounding.data import GroundingDataset
    from lgvq_downstream.tasks.grounding.evaluate import evaluate
    from lgvq_downstream.tasks.grounding.model import GroundingModel
    from lgvq_downstream.tasks.grounding.plot import save_grounding_png

    args.model = args.model or args.out
    model = GroundingModel.from_pretrained(args.model, map_location=args.device)
    dataset = GroundingDataset(
        args.codes,
        args.split,
        model.vocab.tokenizer,
        max_text_tokens=model.config.max_text_tokens,
        on_error=args.on_error,
    )
    result = evaluate(model, dataset, batch_size=args.batch_size, seed=args.seed, num_examples=args.examples)
    result["checkpoint"] = str(args.model)
    examples = result["examples"]
    if examples:
        decoder = None
        if args.tokenizer is not None:
            dataset.codes.assert_matches(args.tokenizer)
            decoder = load_tokenizer(args.tokenizer).model
        result["figure"] = str(save_grounding_png(examples, args.out / "examples.png", tokenizer=decoder))
    result["examples"] = [{k: v for k, v in e.items() if k != "indices"} for e in examples]
    _write_json(args.out / "metrics.json", result)
    return 0


def add_ground(subparsers: argparse._SubParsersAction) -> None:
    """``ground``: train / evaluate a grounding model on code shards with referring expressions."""
    from lgvq_downstream.tasks.common.cli import add_train_arguments

    p = subparsers.add_parser(
        "ground",
        help="visual grounding (referring expression → box) on code shards",
        description="TransVG-like grounding: a bidirectional transformer over [REG] | image codes | "
        "expression tokens regresses the box. Needs code shards with refs and boxes.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    t = actions.add_parser("train", help="train a grounding model", description="Train and save a model.")
    add_train_arguments(t)
    t.add_argument("--width", type=int, help="transformer width")
    t.add_argument("--layers", type=int, help="transformer blocks")
    t.add_argument("--heads", type=int, help="attention heads")
    t.add_argument("--max-text-tokens", type=int, help="longest expression ([CLS]/[SEP] included)")
    t.add_argument(
        "--no-codebook-init", action="store_true", help="learn image embeddings from scratch (no codebook)"
    )
    t.set_defaults(handler=_run_train)

    e = actions.add_parser(
        "evaluate", help="evaluate a grounding model", description="Acc@0.5, mean IoU and baselines."
    )
    e.add_argument("--codes", type=Path, required=True, help="code-shard directory")
    e.add_argument("--model", type=Path, help="checkpoint directory (ground train --out; default: --out)")
    e.add_argument("--out", type=Path, required=True, help="directory for metrics.json and examples.png")
    e.add_argument("--split", default="test", help="evaluation split (default test)")
    e.add_argument("--batch-size", type=int, default=64, help="expressions per forward pass")
    e.add_argument("--seed", type=int, default=0, help="seed of the shuffled-codes control and examples")
    e.add_argument("--examples", type=int, help="examples in the report (default: the model's config)")
    e.add_argument("--tokenizer", type=Path, help="tokenizer folder to decode example images with")
    e.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="bad input policy")
    e.add_argument("--device", default="cpu", help="torch device (default cpu)")
    e.set_defaults(handler=_run_evaluate)
