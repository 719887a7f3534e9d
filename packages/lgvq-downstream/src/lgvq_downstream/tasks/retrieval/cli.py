"""``lgvq-downstream retrieve``.

    lgvq-downstream retrieve --codes DIR --model DIR [--out DIR] [--split test] [--probe-steps 60] ...

``--model`` holds LG heads (pipeline run folder or ``LanguageGuided.save_pretrained`` folder) or only a
tokenizer, which then gets probe heads fitted on ``--train-split`` first (``--save-probe DIR`` keeps them).
Writes ``retrieval.json`` (metrics, chance levels, data report, examples) and ``examples.png`` (images
decoded from their codes, own caption, rank and best captions) into ``--out``, or prints the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_retrieve"]

logger = logging.getLogger("lgvq-downstream.retrieve")


def _lines(example: dict[str, Any]) -> list[str]:
    """Figure text of one example: its own caption, its rank and the three best captions."""
    top = [f"{i + 1}. {t['caption']}" for i, t in enumerate(example["top"][:3])]
    return [f"own (rank {example['rank']}): {example['caption']}", *top]


def _run_retrieve(args: argparse.Namespace) -> int:
    from lgvq_downstream.tasks.common.plot import save_examples_png
    from lgvq_downstream.tasks.retrieval.config import RetrievalConfig
    from lgvq_downstream.tasks.retrieval.data import RetrievalDataset
    from lgvq_downstream.tasks.retrieval.evaluate import evaluate
    from lgvq_downstream.tasks.retrieval.model import build
    from lgvq_downstream.tasks.retrieval.train import train

    config = RetrievalConfig(
        ks=tuple(args.ks),
        seed=args.seed,
        batch_size=args.batch_size,
        text_encoder=args.text_encoder or "minilm",
        probe_steps=args.probe_steps,
        probe_batch_size=args.probe_batch_size,
        probe_lr=args.probe_lr,
        num_examples=args.examples,
        on_error=args.on_error,
    )
    model = build(args.model, config, text_encoder=args.text_encoder).to(args.device)
    history = None
    if not model.trained:
        limit = config.probe_steps * config.probe_batch_size
        train_set = RetrievalDataset(
            args.codes, args.train_split, seed=config.seed, limit=limit, on_error=config.on_error
        )
        history = train(model, train_set, config)
        if args.save_probe is not None:
            model.save_pretrained(args.save_probe)
    test_set = RetrievalDataset(args.codes, args.split, seed=config.seed, on_error=config.on_error)
    result = evaluate(model, test_set, config)
    result["model"] = str(args.model)
    result["probe_history"] = history
    examples = result["examples"]
    if args.out is not None and examples:
        result["figure"] = str(
            save_examples_png(examples, args.out / "examples.png", _lines, tokenizer=model.lg.base)
        )
    result["examples"] = [{k: v for k, v in e.items() if k != "indices"} for e in examples]
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out is None:
        sys.stdout.write(text + "\n")
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "retrieval.json").write_text(text, encoding="utf-8")
        logger.info("%s: written", args.out / "retrieval.json")
    return 0


def add_retrieve(subparsers: argparse._SubParsersAction) -> None:
    """``retrieve``: image→text retrieval R@k and median rank with LG (or probe) heads on code shards."""
    p = subparsers.add_parser(
        "retrieve",
        help="image→text retrieval with LG heads (or a probe) on code shards",
        description="Rank the split's captions (one per image, chosen by --seed) for every image with the LG "
        "heads of --model; a tokenizer without LG heads gets probe heads fitted first.",
    )
    p.add_argument("--codes", type=Path, required=True, help="code-shard directory (lgvq-downstream codes)")
    p.add_argument("--model", type=Path, required=True, help="LG/run folder, or a tokenizer folder (probe)")
    p.add_argument("--out", type=Path, help="directory for retrieval.json (default: print the JSON)")
    p.add_argument("--split", default="test", help="evaluation split (default test)")
    p.add_argument("--train-split", default="train", help="split the probe is fitted on (default train)")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10], help="R@k to report (default 1 5 10)")
    p.add_argument("--seed", type=int, default=0, help="caption choice and examples (default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--text-encoder", help="override the text encoder (default: the model's, or minilm)")
    p.add_argument("--probe-steps", type=int, default=60, help="probe optimiser steps (default 60)")
    p.add_argument("--probe-batch-size", type=int, default=32, help="probe batch size (default 32)")
    p.add_argument("--probe-lr", type=float, default=1e-3, help="probe learning rate (default 1e-3)")
    p.add_argument("--save-probe", type=Path, help="save the fitted probe heads here")
    p.add_argument("--examples", type=int, default=8, help="examples in the report (default 8)")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="bad input policy")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.set_defaults(handler=_run_retrieve)
