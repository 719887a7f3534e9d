"""Atomic Arrow IPC shard writer, ``manifest.json``, and memory-mapped readers.

Layout of a shard directory::

    DIR/manifest.json        {"schema_version": 1, "shards": [{"name", "rows", "bytes", "sha256", "splits"}],
    ...}
    DIR/shard-00000.arrow    Arrow IPC file (one record batch, schema v1)

:class:`ShardWriter` builds the whole directory under a hidden staging directory beside ``DIR`` and renames it
into place on :meth:`ShardWriter.close`; every file inside is itself written to a temporary name and renamed.
A killed or failed run therefore never leaves a partial ``DIR`` (only a ``.DIR.partial-*`` staging folder,
which the next writer for ``DIR`` removes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lgvq_data.schema import (
    COL_CAPTIONS,
    COL_IMAGE,
    COL_MASK,
    COL_SPLIT,
    SCHEMA,
    SCHEMA_VERSION,
    rows_to_table,
)

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
SHARD_PATTERN = "shard-{index:05d}.arrow"
DEFAULT_ROWS_PER_SHARD = 4096
DEFAULT_MAX_SHARD_BYTES = 256 * 1024 * 1024


def _package_version() -> str:
    from lgvq_data import __version__

    return __version__


class ShardError(RuntimeError):
    """A shard directory, manifest or shard file that cannot be used; the message names the file."""


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write JSON to ``path`` (parent folders created) through a temporary file in the same folder and
    ``os.replace``; the temporary file is removed if writing fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _row_nbytes(row: dict[str, Any]) -> int:
    size = len(row.get(COL_IMAGE) or b"") + len(row.get(COL_MASK) or b"") + 64
    size += sum(len(c) for c in row.get(COL_CAPTIONS) or [])
    return size


class ShardWriter:
    """Write schema-v1 rows into bounded Arrow IPC shards plus a manifest, atomically.

    Args:
        out_dir: final shard directory; it appears only when :meth:`close` succeeds.
        rows_per_shard: most rows in one shard.
        max_shard_bytes: a shard is closed once its buffered image/mask/caption bytes reach this size.
        overwrite: replace an existing ``out_dir`` (atomically swapped) instead of raising.
        metadata: extra JSON-able facts stored under ``"metadata"`` in the manifest (source, seed, ...).

    Use as a context manager: an exception inside the ``with`` block aborts and removes the staging folder.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        overwrite: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
        self.out_dir = Path(out_dir).absolute()
        if self.out_dir.exists() and not overwrite:
            raise FileExistsError(f"{self.out_dir} already exists (pass overwrite=True to replace it)")
        self.rows_per_shard = rows_per_shard
        self.max_shard_bytes = max_shard_bytes
        self.overwrite = overwrite
        self.metadata = dict(metadata or {})
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.parent.glob(f".{self.out_dir.name}.partial-*"):
            logger.warning("removing stale staging folder %s", stale)
            shutil.rmtree(stale, ignore_errors=True)
        self.staging_dir = self.out_dir.parent / f".{self.out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
        self.staging_dir.mkdir()
        self._buffer: list[dict[str, Any]] = []
        self._buffer_bytes = 0
        self._shards: list[dict[str, Any]] = []
        self._closed = False

    @property
    def rows_written(self) -> int:
        """Rows written so far, buffered rows included."""
        return sum(s["rows"] for s in self._shards) + len(self._buffer)

    def write(self, row: dict[str, Any]) -> None:
        """Buffer one row dict (keys = schema column names); flushes a shard when a bound is reached."""
        if self._closed:
            raise RuntimeError("ShardWriter is closed")
        self._buffer.append(row)
        self._buffer_bytes += _row_nbytes(row)
        if len(self._buffer) >= self.rows_per_shard or self._buffer_bytes >= self.max_shard_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = rows_to_table(self._buffer)
        name = SHARD_PATTERN.format(index=len(self._shards))
        final = self.staging_dir / name
        tmp = self.staging_dir / f".{name}.tmp"
        with pa.OSFile(str(tmp), "wb") as sink:
            with pa.ipc.new_file(sink, SCHEMA) as writer:
                writer.write_table(table, max_chunksize=len(self._buffer))
        os.replace(tmp, final)
        splits = Counter(row["split"] for row in self._buffer)
        self._shards.append(
            {
                "name": name,
                "rows": table.num_rows,
                "bytes": final.stat().st_size,
                "sha256": sha256_file(final),
                "splits": dict(sorted(splits.items())),
            }
        )
        logger.debug("wrote %s (%d rows)", name, table.num_rows)
        self._buffer = []
        self._buffer_bytes = 0

    def write_sidecar_json(self, name: str, payload: Any) -> None:
        """Write an extra JSON file (e.g. a rejects report) into the directory, atomically."""
        write_json_atomic(self.staging_dir / name, payload)

    def close(self) -> Path:
        """Flush, write ``manifest.json`` and move the finished directory to ``out_dir`` (returned)."""
        if self._closed:
            return self.out_dir
        self._flush()
        splits: Counter[str] = Counter()
        for shard in self._shards:
            splits.update(shard["splits"])
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "format": "arrow-ipc-file",
            "created_by": f"lgvq-data {_package_version()}",
            "total_rows": sum(s["rows"] for s in self._shards),
            "splits": dict(sorted(splits.items())),
            "shards": self._shards,
            "metadata": self.metadata,
        }
        write_json_atomic(self.staging_dir / MANIFEST_NAME, manifest)
        old = None
        if self.out_dir.exists():
            old = self.out_dir.parent / f".{self.out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.out_dir, old)
        os.replace(self.staging_dir, self.out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._closed = True
        logger.info(
            "wrote %d rows in %d shards to %s", manifest["total_rows"], len(self._shards), self.out_dir
        )
        return self.out_dir

    def abort(self) -> None:
        """Drop everything written so far; ``out_dir`` is left as it was."""
        if not self._closed:
            shutil.rmtree(self.staging_dir, ignore_errors=True)
            self._closed = True

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_manifest(shard_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and sanity-check ``manifest.json`` of a shard directory."""
    path = Path(shard_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ShardError(f"{path}: missing manifest (not a finished shard directory)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ShardError(f"{path}: not valid JSON ({err})") from None
    for key in ("schema_version", "shards"):
        if key not in manifest:
            raise ShardError(f"{path}: missing key {key!r}")
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise ShardError(f"{path}: schema_version {manifest['schema_version']} != supported {SCHEMA_VERSION}")
    return manifest


def read_shard(path: str | os.PathLike[str]) -> pa.Table:
    """Memory-map one Arrow IPC shard (zero copy); :class:`ShardError` naming the file if unreadable."""
    try:
        source = pa.memory_map(str(path), "r")
        return pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as err:
        raise ShardError(f"{path}: cannot read Arrow shard ({err})") from None


@dataclass
class ManifestProblem:
    """One mismatch between the manifest and the files on disk."""

    shard: str
    check: str
    reason: str


def verify_manifest(shard_dir: str | os.PathLike[str], check_hashes: bool = True) -> list[ManifestProblem]:
    """Compare every shard to its manifest entry: present, readable, schema, row count, sha256.

    Returns the problems found (empty list = consistent).
    """
    shard_dir = Path(shard_dir)
    manifest = read_manifest(shard_dir)
    problems: list[ManifestProblem] = []
    for entry in manifest["shards"]:
        path = shard_dir / entry["name"]
        if not path.is_file():
            problems.append(ManifestProblem(entry["name"], "shard_exists", f"{path} is missing"))
            continue
        if check_hashes:
            digest = sha256_file(path)
            if digest != entry.get("sha256"):
                problems.append(
                    ManifestProblem(
                        entry["name"], "sha256_matches", f"sha256 {digest} != manifest {entry.get('sha256')}"
                    )
                )
        try:
            table = read_shard(path)
        except ShardError as err:
            problems.append(ManifestProblem(entry["name"], "shard_readable", str(err)))
            continue
        if table.num_rows != entry.get("rows"):
            problems.append(
                ManifestProblem(
                    entry["name"],
                    "row_count_matches",
                    f"{table.num_rows} rows != manifest {entry.get('rows')}",
                )
            )
        if not table.schema.equals(SCHEMA, check_metadata=False):
            problems.append(
                ManifestProblem(entry["name"], "schema_matches", f"schema differs from v1: {table.schema}")
            )
    return problems


@dataclass
class ShardSet:
    """All shards of a directory, memory-mapped, with global row addressing.

    ``tables[k]`` is shard ``k``; ``offsets[k]`` is the global index of its first row.
    """

    root: Path
    manifest: dict[str, Any]
    tables: list[pa.Table] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)

    @classmethod
    def open(cls, shard_dir: str | os.PathLike[str], verify: bool = False) -> ShardSet:
        """Open a shard directory; ``verify=True`` checks row counts and sha256 first (raises on mismatch)."""
        root = Path(shard_dir)
        manifest = read_manifest(root)
        if verify:
            problems = verify_manifest(root)
            if problems:
                raise ShardError("; ".join(f"{root / p.shard}: {p.reason}" for p in problems))
        tables, offsets, total = [], [], 0
        for entry in manifest["shards"]:
            table = read_shard(root / entry["name"])
            if table.num_rows != entry["rows"]:
                raise ShardError(f"{root / entry['name']}: {table.num_rows} rows != manifest {entry['rows']}")
            tables.append(table)
            offsets.append(total)
            total += table.num_rows
        return cls(root=root, manifest=manifest, tables=tables, offsets=offsets)

    def __len__(self) -> int:
        return sum(t.num_rows for t in self.tables)

    def locate(self, index: int) -> tuple[int, int]:
        """Global row index → (shard index, row inside the shard)."""
        import bisect

        if not 0 <= index < len(self):
            raise IndexError(f"row {index} out of range [0, {len(self)})")
        shard = bisect.bisect_right(self.offsets, index) - 1
        return shard, index - self.offsets[shard]

    def value(self, shard: int, row: int, column: str) -> Any:
        """One cell as a Python object (binary columns → bytes)."""
        return self.tables[shard].column(column)[row].as_py()

    def row(self, index: int, columns: tuple[str, ...] | None = None) -> dict[str, Any]:
        """One row as a dict (all columns unless ``columns`` is given)."""
        shard, local = self.locate(index)
        names = columns or tuple(SCHEMA.names)
        return {name: self.value(shard, local, name) for name in names}

    def split_indices(self, split: str | None, val_from_train: float = 0.0, split_seed: int = 0) -> list[int]:
        """Global indices of the rows of ``split`` (all rows when ``None``), in storage order.

        ``val_from_train`` > 0 carves a validation split out of ``train`` for data that has none (CUB-200,
        MM-CelebA-HQ ship train/test only): a seeded (``split_seed``) random ``round(fraction · n_train)`` of
        the train rows becomes ``"val"`` and leaves ``"train"``; ``"test"`` is untouched. Asking for it when
        the shards already hold a ``val`` split is an error (the two would overlap).
        """
        if split is None:
            return list(range(len(self)))
        if val_from_train > 0 and split in ("train", "val"):
            if not 0.0 < val_from_train < 1.0:
                raise ValueError(f"val_from_train must be in (0, 1), got {val_from_train}")
            if self._rows_of("val"):
                raise ValueError(f"{self.root}: the shards already have a 'val' split; do not carve another")
            train = np.asarray(self._rows_of("train"), dtype=np.int64)
            count = int(round(val_from_train * len(train)))
            chosen = np.random.default_rng([int(split_seed), 0x7A1]).permutation(len(train))[:count]
            is_val = np.zeros(len(train), dtype=bool)
            is_val[chosen] = True
            return train[is_val if split == "val" else ~is_val].tolist()
        return self._rows_of(split)

    def _rows_of(self, split: str) -> list[int]:
        out: list[int] = []
        for offset, table in zip(self.offsets, self.tables, strict=False):
            column = table.column(COL_SPLIT).to_pylist()
            out.extend(offset + i for i, value in enumerate(column) if value == split)
        return out

    def iter_rows(self, columns: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
        """All rows in storage order."""
        for table in self.tables:
            names = columns or tuple(SCHEMA.names)
            for batch in table.select(list(names)).to_batches(max_chunksize=256):
                yield from batch.to_pylist()
