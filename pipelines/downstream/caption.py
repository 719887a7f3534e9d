"""Stage ``caption@<run>``: image captioning (ClipCap-style: code embeddings → mapping network → prefix →
caption); BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and the distinct-caption ratio vs the most frequent training
caption and the shuffled-codes control.

See :mod:`pipelines.downstream.task` for the arguments and outputs.
"""

from __future__ import annotations

from pipelines.downstream.task import run_stage, stage_params

TASK = "caption"
PARAMS = stage_params(TASK)


def main(argv: list[str] | None = None) -> int:
    return run_stage(TASK, argv)


if __name__ == "__main__":
    raise SystemExit(main())
