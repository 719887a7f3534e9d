"""Stage ``ground@<run>``: visual grounding (TransVG-like [REG] | codes | expression → box, L1 + GIoU);
Acc@0.5 and mean IoU vs the mean / centre box and the shuffled-codes control.

See :mod:`pipelines.downstream.task` for the arguments and outputs.
"""

from __future__ import annotations

from pipelines.downstream.task import run_stage, stage_params

TASK = "ground"
PARAMS = stage_params(TASK)


def main(argv: list[str] | None = None) -> int:
    return run_stage(TASK, argv)


if __name__ == "__main__":
    raise SystemExit(main())
