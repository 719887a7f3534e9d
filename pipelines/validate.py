"""Stage ``validate``: great-expectations checks of the shards; a JSON report, and a non-zero exit on failure.

``python -m pipelines.validate --shards data/shards --report reports/validation.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipelines import progress
from pipelines.params import StageParams
from pipelines.stage import parser, setup_logging

PARAMS = ("validate",)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidateParams:
    """Section ``validate``: the caption length bound and how many failing rows each check lists."""

    max_caption_chars: int
    max_examples: int


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--shards", type=Path, required=True)
    p.add_argument("--report", type=Path, required=True)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    params = StageParams(args.params, PARAMS).section("validate", ValidateParams)
    from lgvq_data.validate import validate_shards

    report = validate_shards(
        args.shards, max_caption_chars=params.max_caption_chars, max_examples=params.max_examples
    )
    report.to_json(args.report)
    if not report.success:
        for check in report.failed_checks:
            first = check.failures[0] if check.failures else None
            logger.error(
                "check %s failed on column %s: %d of %d rows%s",
                check.check,
                check.column,
                check.unexpected_count,
                check.element_count,
                f" (e.g. shard {first.shard}, row {first.row}: {first.reason})" if first else "",
            )
        logger.error("validation of %s failed; see %s", args.shards, args.report)
        return 1
    logger.info("validation of %s passed (%d rows); report %s", args.shards, report.total_rows, args.report)
    checks = len(report.checks)
    progress.headline(f"{checks}/{checks} checks passed on {report.total_rows} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
