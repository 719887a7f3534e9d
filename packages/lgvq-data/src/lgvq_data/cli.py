"""``lgvq-data``: build shards from a source, validate them, show what a shard directory holds.

lgvq-data build synthetic --n 4000 --image-size 64 --seed 0 --out data/shards
lgvq-data build folder --root DIR [--captions captions.jsonl|metadata.jsonl] --out DIR [--on-error skip|fail]
    (one {"file_name"|"file"|"image": path, "text"|"caption"|"captions": str or [str]} per line)
lgvq-data build cub|celeba-hq|coco|textcaps|fashion-mnist ... --out DIR
lgvq-data validate DIR --report report.json      (exit 1 when a check fails)
lgvq-data info DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from lgvq_data.build import ON_ERROR_CHOICES, BadInputError
from lgvq_data.shards import ShardError, ShardSet, read_manifest

logger = logging.getLogger(__name__)

# source name -> (add arguments to a subparser, build(args) -> Path)
SourceSpec = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Path]]


def _synthetic_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=4000, help="number of images")
    p.add_argument("--image-size", type=int, default=64, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.1)


def _synthetic_build(args: argparse.Namespace) -> Path:
    from lgvq_data.sources import synthetic

    return synthetic.build(
        args.out,
        n=args.n,
        image_size=args.image_size,
        seed=args.seed,
        rows_per_shard=args.rows_per_shard,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        progress=not args.quiet,
    )


def _sources() -> dict[str, SourceSpec]:
    from lgvq_data.sources import registry

    specs: dict[str, SourceSpec] = {"synthetic": (_synthetic_args, _synthetic_build)}
    specs.update(registry.CLI_SOURCES)
    return specs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgvq-data", description="Caption/image Arrow shards for LG-VQ.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="convert a source into a shard directory")
    sources = build.add_subparsers(dest="source", required=True)
    for name, (add_args, _) in _sources().items():
        sub = sources.add_parser(name, help=f"build shards from {name}")
        add_args(sub)
        sub.add_argument(
            "--out", type=Path, required=True, help="output shard directory (replaced atomically)"
        )
        sub.add_argument("--rows-per-shard", type=int, default=4096)
        sub.add_argument(
            "--on-error",
            choices=ON_ERROR_CHOICES,
            default="fail",
            help="bad input rows: fail the run (default) or skip them and write rejects.json",
        )
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
    validate = commands.add_parser("validate", help="run the great-expectations suite on a shard directory")
    validate.add_argument("shard_dir", type=Path)
    validate.add_argument("--report", type=Path, help="write the JSON report here")
    validate.add_argument("--max-caption-chars", type=int, default=1000)
    info = commands.add_parser("info", help="print the manifest summary of a shard directory")
    info.add_argument("shard_dir", type=Path)
    info.add_argument("--rows", type=int, default=1, help="also print this many example rows")
    return parser


def _info(shard_dir: Path, n_rows: int) -> int:
    manifest = read_manifest(shard_dir)
    summary = {k: manifest.get(k) for k in ("schema_version", "total_rows", "splits", "metadata")}
    summary["shards"] = [{k: s[k] for k in ("name", "rows", "bytes")} for s in manifest["shards"]]
    print(json.dumps(summary, indent=2))
    shards = ShardSet.open(shard_dir)
    for index in range(min(n_rows, len(shards))):
        row = shards.row(index)
        row["image"] = f"<{len(row['image'])} bytes>"
        if row.get("mask") is not None:
            row["mask"] = f"<{len(row['mask'])} bytes>"
        print(json.dumps(row, indent=2, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lgvq-data``; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "build":
            _, build = _sources()[args.source]
            out = build(args)
            manifest = read_manifest(out)
            print(
                f"wrote {manifest['total_rows']} rows in {len(manifest['shards'])} shards to {out} "
                f"(splits {manifest['splits']}, rejected {manifest['metadata'].get('rejected_rows', 0)})"
            )
            return 0
        if args.command == "validate":
            from lgvq_data.validate import validate_shards

            report = validate_shards(args.shard_dir, max_caption_chars=args.max_caption_chars)
            if args.report:
                args.report.parent.mkdir(parents=True, exist_ok=True)
                report.to_json(args.report)
            for check in report.checks:
                status = "ok  " if check.success else "FAIL"
                print(f"{status} {check.check} ({check.unexpected_count}/{check.element_count} unexpected)")
                for failure in check.failures[:5]:
                    print(
                        f"       shard={failure.shard} row={failure.row} column={failure.column}: "
                        f"{failure.reason}"
                    )
            print("validation " + ("passed" if report.success else "FAILED"))
            return 0 if report.success else 1
        return _info(args.shard_dir, args.rows)
    except (BadInputError, ShardError, FileNotFoundError, ValueError) as err:
        print(f"lgvq-data: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
