"""Turn a stream of source rows into a shard directory, with a bad-input policy.

Sources yield schema-v1 row dicts, or :class:`Rejected` markers for inputs they could not read. A row may
carry an ``"_origin"`` key (the file it came from) used only in error messages. :func:`build_shards` checks
every row (:func:`lgvq_data.schema.check_row`, unique ids) and then, by ``on_error``:

- ``"fail"``: raises :class:`BadInputError` (file, row, reason) at the first bad input; nothing is written.
- ``"skip"``: drops bad rows, logs each one and writes ``rejects.json`` (file, row, reason) beside the
  manifest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lgvq_data.schema import COL_ID, RowError, check_row
from lgvq_data.shards import DEFAULT_MAX_SHARD_BYTES, ShardWriter

logger = logging.getLogger(__name__)

REJECTS_NAME = "rejects.json"
ON_ERROR_CHOICES = ("fail", "skip")
ORIGIN_KEY = "_origin"


@dataclass(frozen=True)
class Rejected:
    """An input a source could not turn into a row: which file, which row/record, and why."""

    file: str
    row: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}, row {self.row}: {self.reason}"


class BadInputError(ValueError):
    """Raised under ``on_error="fail"``; ``.rejected`` holds the file, row and reason."""

    def __init__(self, rejected: Rejected) -> None:
        super().__init__(str(rejected))
        self.rejected = rejected


def build_shards(
    rows: Iterable[dict[str, Any] | Rejected],
    out_dir: str | os.PathLike[str],
    source: str,
    rows_per_shard: int = 4096,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    on_error: str = "fail",
    overwrite: bool = True,
    metadata: dict[str, Any] | None = None,
    total: int | None = None,
    progress: bool = False,
) -> Path:
    """Write ``rows`` to ``out_dir`` atomically (see module doc for ``on_error``). Returns ``out_dir``."""
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    rejects: list[Rejected] = []

    def reject(item: Rejected) -> None:
        if on_error == "fail":
            raise BadInputError(item)
        logger.warning("skipping %s", item)
        rejects.append(item)

    seen: dict[str, int] = {}
    meta = {"source": source, **(metadata or {})}
    with ShardWriter(
        out_dir,
        rows_per_shard=rows_per_shard,
        max_shard_bytes=max_shard_bytes,
        overwrite=overwrite,
        metadata=meta,
    ) as writer:
        for position, item in enumerate(
            tqdm(rows, total=total, disable=not progress, desc=f"build {source}")
        ):
            if isinstance(item, Rejected):
                reject(item)
                continue
            origin = str(item.pop(ORIGIN_KEY, source))
            try:
                check_row(item)
            except RowError as err:
                reject(
                    Rejected(origin, str(item.get(COL_ID, position)), f"field {err.field!r}: {err.reason}")
                )
                continue
            row_id = item[COL_ID]
            if row_id in seen:
                reject(Rejected(origin, row_id, f"duplicate id (first seen at input {seen[row_id]})"))
                continue
            seen[row_id] = position
            writer.write(item)
        if writer.rows_written == 0:
            raise BadInputError(Rejected(source, "-", f"no valid rows ({len(rejects)} rejected)"))
        writer.metadata["rejected_rows"] = len(rejects)
        if rejects:
            writer.write_sidecar_json(
                REJECTS_NAME, {"count": len(rejects), "rejects": [asdict(r) for r in rejects]}
            )
    return Path(out_dir)
