"""Walk the rows of a code-shard set with their location (shard file, row) and apply the bad-input policy.

``on_error="raise"`` stops at the first :class:`TaskDataError`; ``"skip"`` drops the offending row (or text
item), logs it and counts it in a :class:`SkipReport`, which training and evaluation reports include.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from lgvq_downstream.codes.errors import CodeShardError
from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.tasks.common.errors import TaskDataError

__all__ = ["OnError", "RowRef", "SkipReport", "iter_rows", "require_column"]

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
_MAX_LISTED = 10


@dataclass(frozen=True)
class RowRef:
    """Where a sample lives: its position in the dataset, the code-shard file, the row in it and its id."""

    position: int
    file: str
    row: int
    row_id: str

    def error(self, field: str, reason: str) -> TaskDataError:
        return TaskDataError(self.file, self.row, self.row_id, field, reason)


@dataclass
class SkipReport:
    """Bad inputs met under one policy: raised at once (``"raise"``) or counted (``"skip"``)."""

    on_error: OnError = "raise"
    counts: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")

    def handle(self, err: TaskDataError) -> None:
        """Raise ``err`` or record it (counted by field name without the item index)."""
        if self.on_error == "raise":
            raise err
        logger.warning("skipping: %s", err)
        self.counts[err.field.split("[")[0]] += 1
        if len(self.messages) < _MAX_LISTED:
            self.messages.append(str(err))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """``{"on_error", "skipped", "by_field", "first"}`` (the first few messages)."""
        return {
            "on_error": self.on_error,
            "skipped": self.total,
            "by_field": dict(sorted(self.counts.items())),
            "first": list(self.messages),
        }


def require_column(dataset: CodeShardSet, column: str, task: str) -> None:
    """``CodeShardError`` naming the directory and the field when the code shards lack ``column``."""
    if column not in dataset.columns:
        raise CodeShardError(
            f"{dataset.root}: the code shards have no column {column!r}, which the {task} task needs "
            f"(columns: {sorted(dataset.columns)})"
        )


def _locations(dataset: CodeShardSet) -> list[tuple[int, int]]:
    """(shard index, row) per dataset position (the reader's own row map)."""
    return [(int(s), int(r)) for s, r in dataset._locations.tolist()]


def iter_rows(dataset: CodeShardSet) -> Iterator[tuple[RowRef, dict[str, Any]]]:
    """Every sample of ``dataset`` with its :class:`RowRef`, in dataset order."""
    names = [entry.name for entry in dataset.manifest.shards]
    for position, (shard, row) in enumerate(_locations(dataset)):
        sample = dataset[position]
        file = str(dataset.root / names[shard])
        yield RowRef(position, file, row, str(sample.get("id", position))), sample
