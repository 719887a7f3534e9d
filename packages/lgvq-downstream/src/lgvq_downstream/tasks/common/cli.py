"""Command-line pieces every task subcommand shares: ``train`` / ``evaluate`` arguments, the task config
from a JSON file plus ``--set key=value`` overrides and shortcut flags, and report writing."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, TypeVar

from lgvq_data.shards import write_json_atomic

__all__ = [
    "add_evaluate_arguments",
    "add_train_arguments",
    "config_from_args",
    "figure_tokenizer",
    "write_report",
]

T = TypeVar("T")
logger = logging.getLogger(__name__)

# Shortcut flag → key in the task config's ``train`` section.
_TRAIN_SHORTCUTS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "device": "device",
    "seed": "seed",
    "on_error": "on_error",
}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """``--codes --out --split --config --set`` and the training shortcuts."""
    p.add_argument("--codes", type=Path, required=True, help="code-shard directory (lgvq-downstream codes)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--split", default="train", help="split to train on (default train)")
    p.add_argument("--config", type=Path, help="task config JSON (missing keys take their defaults)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set width=128 --set train.lr=1e-3 (VALUE parsed as JSON)",
    )
    p.add_argument("--steps", type=int, help="train.steps")
    p.add_argument("--batch-size", type=int, help="train.batch_size")
    p.add_argument("--lr", type=float, help="train.lr")
    p.add_argument("--device", help="train.device (e.g. cpu, cuda)")
    p.add_argument("--seed", type=int, help="train.seed")
    p.add_argument("--on-error", choices=("raise", "skip"), help="train.on_error: stop at or skip bad rows")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    """``--codes --out --model --split --on-error --figure --tokenizer``."""
    p.add_argument("--codes", type=Path, required=True, help="code-shard directory to evaluate on")
    p.add_argument("--out", type=Path, required=True, help="folder for eval-<split>.json (and the figure)")
    p.add_argument("--model", type=Path, help="checkpoint folder (default: --out)")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--on-error", choices=("raise", "skip"), help="stop at or skip bad rows")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--figure", action="store_true", help="also write eval-<split>-examples.png (matplotlib)")
    p.add_argument(
        "--tokenizer", type=Path, help="tokenizer folder to decode the figure's images (default: the codes')"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValueError(f"--set {dotted}: {key!r} is not a section")
        node = child
    node[leaf] = value


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """``cls.from_dict`` (defaults filled) of ``--config``, then every ``--set``, then the shortcut flags."""
    data: dict[str, Any] = {}
    if args.config is not None:
        try:
            data = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{args.config}: invalid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{args.config}: expected a JSON object")
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        _set(data, key.strip(), _parse_value(value))
    for flag, key in _TRAIN_SHORTCUTS.items():
        value = getattr(args, flag, None)
        if value is not None:
            _set(data, f"train.{key}", value)
    return cls.from_dict(data, fill_defaults=True)  # type: ignore[attr-defined]


def figure_tokenizer(args: argparse.Namespace, recorded_path: str | None) -> Any:
    """The tokenizer model that decodes a figure's images: ``--tokenizer``, else the folder the codes record
    (None — the figure shows code grids — when neither loads)."""
    from lgvq_downstream.codes.errors import CodeShardError
    from lgvq_downstream.codes.tokenizer_folder import load_tokenizer

    folder = args.tokenizer or recorded_path
    if folder is None:
        return None
    try:
        return load_tokenizer(folder).model
    except (CodeShardError, OSError, ValueError) as err:
        logger.warning("figure shows code grids: cannot load the tokenizer %s (%s)", folder, err)
        return None


def write_report(path: Path, report: dict[str, Any]) -> Path:
    """Write ``report`` as JSON atomically."""
    write_json_atomic(path, report)
    return path
