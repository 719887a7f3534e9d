"""Stage ``judges``: the two scene judges the generation tasks are scored with — an attribute classifier
(which (colour, shape) objects an image shows) and a segmenter (class map) — trained on the real images of
the train split of the pipeline's synthetic shards and scored on the held-out split beside a shuffled control.

``python -m pipelines.downstream.judges --shards data/shards --out models/judges
--metrics reports/downstream/judges.json`` (``lgvq_downstream.metrics.scene_judges.fit_scene_judges``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import progress
from pipelines.params import StageParams
from pipelines.stage import parser, setup_logging, write_json

PARAMS = ("downstream.judges",)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgesParams:
    """``downstream.judges``: each judge's optimiser steps, batch size and learning rate, the seed, the
    held-out split it is scored on and the torch threads (0 = torch's default)."""

    steps: int
    batch_size: int
    lr: float
    seed: int = 0
    eval_split: str = "test"
    threads: int = 1


def _mean(scores: dict[str, Any], *path: str) -> float | None:
    node: Any = scores
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node = node.get("mean")
    return float(node) if isinstance(node, (int, float)) else None


def headline(metrics: dict[str, Any]) -> str:
    """``objects found 97.1 % (shuffled 8.0 %), mIoU 88.2 % (shuffled 30.1 %)`` on the held-out real images."""
    a, s = metrics.get("attribute", {}), metrics.get("segmenter", {})
    values = (
        _mean(a, "held_out", "real", "object_recall"),
        _mean(a, "held_out", "shuffled", "object_recall"),
        _mean(s, "held_out", "real", "miou"),
        _mean(s, "held_out", "shuffled", "miou"),
    )
    if any(v is None for v in values):
        return "judges trained"
    r, rs, m, ms = (100 * v for v in values)  # type: ignore[operator]
    return f"objects found {r:.1f} % (shuffled {rs:.1f} %), mIoU {m:.1f} % (shuffled {ms:.1f} %)"


SCENE_SOURCES = ("synthetic", "fashion-mnist")  # sources whose rows come from lgvq_data.sources.scenes


def scene_sources(shards: Path) -> list[str] | None:
    """None when every row of ``shards`` is a scene of :data:`SCENE_SOURCES` (boxes, refs, class masks);
    else the sources found."""
    from lgvq_data.shards import ShardSet

    shard_set = ShardSet.open(shards)
    found = sorted({str(row["source"]) for row in shard_set.iter_rows(("source",))})
    return None if set(found) <= set(SCENE_SOURCES) else found


def no_judges(out: Path, metrics: Path, sources: list[str], started: float) -> int:
    """Data without scene annotations: an ``out`` folder saying so (the generate stages then report the
    Fréchet distances alone) and the reason as the metrics."""
    import shutil

    from lgvq_downstream.tasks.generation.scoring import NO_JUDGES

    reason = (
        f"no scene judges: the shards hold {sources}, the judges need scenes of {list(SCENE_SOURCES)} "
        "(per-object colour and shape, class masks)"
    )
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_json(tmp / NO_JUDGES, {"reason": reason})
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    write_json(metrics, {"judges": None, "reason": reason, "stage_seconds": time.perf_counter() - started})
    logger.info("judges: %s", reason)
    progress.headline("no judges (data without scene annotations)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--shards", type=Path, required=True, help="lgvq-data shard directory (synthetic scenes)")
    p.add_argument("--out", type=Path, required=True, help="judges folder to write")
    p.add_argument("--metrics", type=Path, required=True, help="held-out scores (JSON) to write")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    params = StageParams(args.params, PARAMS).section("downstream.judges", JudgesParams)
    from lgvq_downstream.metrics.scene_judges import fit_scene_judges
    from pipelines.models import torch_threads

    if params.threads > 0:
        torch_threads(params.threads)
    started = time.perf_counter()
    sources = scene_sources(args.shards)
    if sources is not None:
        return no_judges(args.out, args.metrics, sources, started)
    parts = progress.Parts("train", "judges", ["attribute + segmenter"])
    parts.begin("attribute + segmenter")
    metrics = fit_scene_judges(
        args.shards,
        args.out,
        split_train="train",
        split_eval=params.eval_split,
        steps=params.steps,
        seed=params.seed,
        batch_size=params.batch_size,
        lr=params.lr,
    )
    parts.finish()
    metrics["stage_seconds"] = time.perf_counter() - started
    write_json(args.metrics, metrics)
    text = headline(metrics)
    logger.info("judges: %s (%.0f s) -> %s", text, metrics["stage_seconds"], args.metrics)
    progress.headline(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
