"""``lgvq-downstream``: one subcommand per downstream step.

    lgvq-downstream codes --tokenizer DIR --shards DIR --out DIR [--batch-size N] [--device cpu]

A subcommand is a function ``add_<name>(subparsers)`` that adds its parser and sets ``handler`` (a function
``(args) -> exit code``); list it in :data:`COMMANDS`. Bad input ends the command with exit code 1 and one
line ``lgvq-downstream <command>: error: <message>`` on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lgvq_data.shards import ShardError
from lgvq_downstream.codes.errors import CodeShardError
from lgvq_downstream.tasks.captioning.cli import add_caption
from lgvq_downstream.tasks.generation.cli import add_generation
from lgvq_downstream.tasks.grounding.cli import add_ground
from lgvq_downstream.tasks.retrieval.cli import add_retrieve
from lgvq_downstream.tasks.vqa.cli import add_vqa

PROG = "lgvq-downstream"

# Errors that mean bad input (reported on one line); anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (CodeShardError, ShardError, OSError, ValueError)


def _run_codes(args: argparse.Namespace) -> int:
    from lgvq_downstream.codes.writer import encode_shards

    manifest = encode_shards(
        args.tokenizer,
        args.shards,
        args.out,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.no_progress,
    )
    logging.getLogger(PROG).info(
        "%s: %d rows in %d code shards (%s, grid %d×%d, %d codes)",
        args.out,
        manifest.total_rows,
        len(manifest.shards),
        manifest.tokenizer.base,
        *manifest.grid,
        manifest.codebook_size,
    )
    return 0


def add_codes(subparsers: argparse._SubParsersAction) -> None:
    """``codes``: a frozen tokenizer turns lgvq-data shards into code shards (resumable)."""
    p = subparsers.add_parser(
        "codes",
        help="encode lgvq-data shards into code shards with a frozen tokenizer",
        description="Encode every image of an lgvq-data shard directory with a frozen tokenizer; annotations "
        "are carried over. Re-running skips finished shards.",
    )
    p.add_argument(
        "--tokenizer",
        type=Path,
        required=True,
        help="save_pretrained folder, pipeline run folder or LG folder (tokenizer in base/)",
    )
    p.add_argument(
        "--shards", type=Path, required=True, help="lgvq-data shard directory (with manifest.json)"
    )
    p.add_argument("--out", type=Path, required=True, help="output code-shard directory")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_codes)


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_codes,
    add_caption,
    add_vqa,
    add_ground,
    add_retrieve,
    add_generation,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``lgvq-downstream`` parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog=PROG, description="Downstream tasks on LG-VQ tokenizer codes.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; returns the exit code (0 ok, 1 bad input, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except USER_ERRORS as err:
        sys.stderr.write(f"{PROG} {args.command}: error: {_one_line(err)}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
