"""Where each downstream task's numbers sit in its stage report (``reports/downstream/<task>-<run>.json``) and
how they are named: table columns, the headline number per task, the trivial baselines, the reader of a stage
report, and the console headline of a task stage. Shared by the task stages (their headline) and the report
(``pipelines.downstream.report``), so a change to the report's prose does not re-run a task stage."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DASH = "—"
BASE_NAMES = {"vqvae": "VQ-VAE", "vqgan": "VQ-GAN", "cvq": "CVQ", "vqct": "VQCT"}
TASK_TITLES = {
    "caption": "Image captioning",
    "vqa": "Visual question answering",
    "ground": "Visual grounding",
    "retrieve": "Image→text retrieval",
}


@dataclass(frozen=True)
class Column:
    """A table column: header, key below a row's prefix (one key, or a tuple of nested keys: keys such as
    ``accuracy@0.5``, ``WUPS@0.9`` or the question type ``yes/no`` hold dots and slashes), scale and
    decimals."""

    header: str
    key: str | tuple[str, ...]
    scale: float = 1.0
    digits: int = 2


CAPTION_COLUMNS = (
    Column("BLEU-4 ↑", "BLEU-4", 100.0),
    Column("METEOR ↑", "METEOR", 100.0),
    Column("ROUGE-L ↑", "ROUGE-L", 100.0),
    Column("CIDEr-D ↑", "CIDEr-D", 100.0),
    Column("distinct captions %", "distinct_caption_ratio", 100.0, 1),
)
GROUND_COLUMNS = (Column("Acc@0.5 % ↑", "accuracy@0.5", 100.0, 1), Column("mean IoU ↑", "mean_iou", 1.0, 3))
RETRIEVE_COLUMNS = (
    Column("R@1 % ↑", "recall@1", 100.0, 1),
    Column("R@5 % ↑", "recall@5", 100.0, 1),
    Column("R@10 % ↑", "recall@10", 100.0, 1),
    Column("median rank ↓", "median_rank", 1.0, 1),
)

# The one number per task of the overview table, the verdicts and the console: its column, and its name and
# unit in a sentence.
HEADLINE = {
    "caption": Column("captioning CIDEr-D ↑", "CIDEr-D", 100.0),
    "vqa": Column("VQA accuracy % ↑", "accuracy", 100.0, 1),
    "ground": Column("grounding Acc@0.5 % ↑", "accuracy@0.5", 100.0, 1),
    "retrieve": Column("retrieval R@1 % ↑", "recall@1", 100.0, 1),
}
HEADLINE_NAME = {
    "caption": ("CIDEr-D", ""),
    "vqa": ("accuracy", " %"),
    "ground": ("Acc@0.5", " %"),
    "retrieve": ("R@1", " %"),
}

# Where a row's numbers sit in a stage report, per task: the model, its shuffled-codes control and the
# trivial baselines (label, prefix).
MODEL_PREFIX = {"caption": "metrics", "vqa": "metrics", "ground": "model", "retrieve": ""}
SHUFFLED_PREFIX = {
    "caption": "shuffled_codes/metrics",
    "vqa": "shuffled_codes/metrics",
    "ground": "baselines/shuffled_codes",
}
BASELINES: dict[str, tuple[tuple[str, str], ...]] = {
    "caption": (("trivial baseline: most frequent training caption", "baseline/metrics"),),
    "vqa": (("trivial baseline: majority training answer per question type", "baseline/metrics"),),
    "ground": (
        ("trivial baseline: mean training box", "baselines/mean_train_box"),
        ("trivial baseline: centre box of mean size", "baselines/centre_box"),
    ),
    "retrieve": (("chance: a uniformly random ranking", "chance"),),
}


def model_label(base: str, lg: bool) -> str:
    return BASE_NAMES.get(base, base) + ("+LG" if lg else "")


def lookup(report: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    """A finite number of ``report`` by its keys (``("metrics", "per_type", "yes/no", "accuracy")``), or
    None."""
    node: Any = report or {}
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        return None
    return float(node)


def _join(prefix: str, key: str | tuple[str, ...]) -> tuple[str, ...]:
    """The keys of ``key`` below ``prefix`` (a "/"-separated path of this module's own section names)."""
    return tuple(p for p in prefix.split("/") if p) + (key if isinstance(key, tuple) else (key,))


def _name(key: str | tuple[str, ...]) -> str:
    return ".".join(key) if isinstance(key, tuple) else key


def read_report(path: Path | None) -> dict[str, Any] | None:
    """A stage report with its path recorded under ``pipeline.path``; None when missing or unreadable (with
    a warning)."""
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        logger.warning("skipping %s: %s", path, err)
        return None
    if not isinstance(data, dict):
        return None
    data.setdefault("pipeline", {})["path"] = str(path)
    return data


def _values(reports: list[dict[str, Any]], path: tuple[str, ...]) -> list[float]:
    return [v for v in (lookup(r, path) for r in reports) if v is not None]


def best_baseline(task: str, reports: list[dict[str, Any]]) -> tuple[str, float] | None:
    """(label, value) of the task's strongest trivial baseline on its headline number (higher is better for
    every headline), from the first report that has it."""
    column = HEADLINE[task]
    found = []
    for label, prefix in BASELINES[task]:
        values = _values(reports, _join(prefix, column.key))
        if values:
            found.append((label.split(": ", 1)[-1], values[0]))
    return max(found, key=lambda item: item[1]) if found else None


def headline_numbers(task: str, report: dict[str, Any]) -> str:
    """``"CIDEr-D 41.20 (baseline 30.10, shuffled 20.33)"`` for one stage report (the console headline)."""
    column = HEADLINE[task]
    name = HEADLINE_NAME[task][0]
    value = lookup(report, _join(MODEL_PREFIX[task], column.key))
    best = best_baseline(task, [report])
    parts = [f"{name} {_fmt(value, column)}", f"baseline {_fmt(best[1] if best else None, column)}"]
    if task in SHUFFLED_PREFIX:
        parts.append(
            f"shuffled codes {_fmt(lookup(report, _join(SHUFFLED_PREFIX[task], column.key)), column)}"
        )
    return f"{parts[0]} ({', '.join(parts[1:])})"


def _fmt(value: float | None, column: Column) -> str:
    return DASH if value is None else f"{value * column.scale:.{column.digits}f}"
