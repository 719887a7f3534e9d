"""``lgvq-downstream ground train|evaluate``.

    lgvq-downstream ground train    --codes DIR --out DIR [--config grounding.json] [--steps N] ...
    lgvq-downstream ground evaluate --codes DIR --model DIR --out DIR [--split test] [--tokenizer DIR]

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

# CLI flag → (section, key) of GroundingConfig.
_OVERRIDES: dict[str, tuple[str | None, str]] = {
    "steps": ("train", "steps"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "seed": ("train", "seed"),
    "device": ("train", "device"),
    "on_error": ("train", "on_error"),
    "width": (None, "width"),
    "layers": (None, "layers"),
    "heads": (None, "heads"),
    "max_text_tokens": (None, "max_text_tokens"),
}


def _config(args: argparse.Namespace) -> Any:
    from lgvq_downstream.tasks.grounding.config import GroundingConfig

    data: dict[str, Any] = {}
    if args.config is not None:
        try:
            data = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{args.config}: invalid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{args.config}: expected a JSON object of GroundingConfig fields")
    for flag, (section, key) in _OVERRIDES.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        target = data.setdefault(section, {}) if section else data
        target[key] = value
    if args.no_codebook_init:
        data["init_from_codebook"] = False
    return GroundingConfig.from_dict(data, fill_defaults=True, path="grounding")


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=True), encoding="utf-8")


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
    p = subparsers.add_parser(
        "ground",
        help="visual grounding (referring expression → box) on code shards",
        description="TransVG-like grounding: a bidirectional transformer over [REG] | image codes | "
        "expression tokens regresses the box. Needs code shards with refs and boxes.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    t = actions.add_parser("train", help="train a grounding model", description="Train and save a model.")
    t.add_argument("--codes", type=Path, required=True, help="code-shard directory (lgvq-downstream codes)")
    t.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    t.add_argument("--split", default="train", help="training split (default train)")
    t.add_argument("--config", type=Path, help="JSON object of GroundingConfig fields (others default)")
    t.add_argument("--steps", type=int, help="optimiser steps")
    t.add_argument("--batch-size", type=int, help="expressions per step")
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--seed", type=int, help="data order and initialisation seed")
    t.add_argument("--width", type=int, help="transformer width")
    t.add_argument("--layers", type=int, help="transformer blocks")
    t.add_argument("--heads", type=int, help="attention heads")
    t.add_argument("--max-text-tokens", type=int, help="longest expression ([CLS]/[SEP] included)")
    t.add_argument("--device", help="torch device")
    t.add_argument("--on-error", choices=("raise", "skip"), help="bad input: stop (default) or skip+count")
    t.add_argument(
        "--no-codebook-init", action="store_true", help="learn image embeddings from scratch (no codebook)"
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(handler=_run_train)

    e = actions.add_parser(
        "evaluate", help="evaluate a grounding model", description="Acc@0.5, mean IoU and baselines."
    )
    e.add_argument("--codes", type=Path, required=True, help="code-shard directory")
    e.add_argument("--model", type=Path, required=True, help="checkpoint directory (ground train --out)")
    e.add_argument("--out", type=Path, required=True, help="directory for metrics.json and examples.png")
    e.add_argument("--split", default="test", help="evaluation split (default test)")
    e.add_argument("--batch-size", type=int, default=64, help="expressions per forward pass")
    e.add_argument("--seed", type=int, default=0, help="seed of the shuffled-codes control and examples")
    e.add_argument("--examples", type=int, help="examples in the report (default: the model's config)")
    e.add_argument("--tokenizer", type=Path, help="tokenizer folder to decode example images with")
    e.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="bad input policy")
    e.add_argument("--device", default="cpu", help="torch device (default cpu)")
    e.set_defaults(handler=_run_evaluate)
