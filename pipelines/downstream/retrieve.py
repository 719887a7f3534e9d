"""Stage ``retrieve@<run>``: image→text retrieval (f_vt [CLS] vs the sentence embedding: the run's own LG
heads, or a probe fitted on a run without LG); R@1/5/10 and median rank vs chance.

See :mod:`pipelines.downstream.task` for the arguments and outputs.
"""

from __future__ import annotations

from pipelines.downstream.task import run_stage, stage_params

TASK = "retrieve"
PARAMS = stage_params(TASK)


def main(argv: list[str] | None = None) -> int:
    return run_stage(TASK, argv)


if __name__ == "__main__":
    raise SystemExit(main())
