"""Stage ``vqa@<run>``: VQA (bidirectional transformer over [codes | question] → answer class); accuracy,
per question type, and WUPS vs the majority answer per type and the shuffled-codes control.

See :mod:`pipelines.downstream.task` for the arguments and outputs.
"""

from __future__ import annotations

from pipelines.downstream.task import run_stage, stage_params

TASK = "vqa"
PARAMS = stage_params(TASK)


def main(argv: list[str] | None = None) -> int:
    return run_stage(TASK, argv)


if __name__ == "__main__":
    raise SystemExit(main())
