"""Read a code-shard directory: :class:`CodeShardSet`, a map-style torch Dataset, and :func:`collate_codes`.

A sample is a dict: ``indices`` (int64 h×w token grid), for VQCT also ``adjectives`` (int64 h×w×k, nearest
first) and ``nouns`` (int64 h×w); plus every carried-over column of the source row as a Python value
(``id``, ``split``, ``width``, ``height``, ``captions``, ``source``, ``labels``, ``boxes`` in pixels of the
stored image, ``mask`` PNG bytes, ``qa``, ``refs``; None where the source had none).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from torch.utils.data import Dataset

from lgvq_core.checksum import file_sha256
from lgvq_data.schema import COL_SPLIT
from lgvq_data.shards import ShardError, read_shard
from lgvq_downstream.codes.errors import CodeShardError
from lgvq_downstream.codes.manifest import CodeManifest, load_code_manifest
from lgvq_downstream.codes.schema import (
    COL_GRID_H,
    COL_GRID_W,
    COL_INDICES,
    COL_NOUN,
    adjective_columns,
)
from lgvq_downstream.codes.tokenizer_folder import TokenizerInfo

SAMPLE_INDICES = "indices"
SAMPLE_ADJECTIVES = "adjectives"
SAMPLE_NOUNS = "nouns"

CodeSample = dict[str, Any]


class CodeShardSet(Dataset[CodeSample]):
    """All rows (or one split) of a finished code-shard directory, memory-mapped.

    Args:
        root: code-shard directory (with a complete ``manifest.json``).
        split: ``"train"``, ``"val"``, ``"test"`` or None for every row (storage order).
        verify: check each shard's sha256 against the manifest on open.
        columns: carried-over columns to return (default: all of them).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = None,
        verify: bool = False,
        columns: Collection[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.manifest: CodeManifest = load_code_manifest(self.root, require_complete=True)
        if verify:
            for entry in self.manifest.shards:
                digest = file_sha256(self._path(entry.name))
                if digest != entry.sha256:
                    raise CodeShardError(
                        f"{self._path(entry.name)}: sha256 {digest} != manifest {entry.sha256}"
                    )
        vqct = self.manifest.tokenizer.vqct
        self._adjective_columns = adjective_columns(int(vqct["topk"])) if vqct else []
        self._code_columns = {COL_INDICES, COL_GRID_H, COL_GRID_W, COL_NOUN, *self._adjective_columns}
        self._tables: list[pa.Table] | None = None
        self._cache: dict[int, dict[str, Any]] = {}
        tables = self.tables
        available = [n for n in tables[0].column_names if n not in self._code_columns] if tables else []
        if columns is not None:
            unknown = sorted(set(columns) - set(available))
            if unknown:
                raise ValueError(f"{self.root}: unknown columns {unknown}; available: {available}")
        self.columns = list(columns) if columns is not None else available
        locations = []
        for shard_id, table in enumerate(tables):
            splits = table.column(COL_SPLIT).to_pylist()
            locations += [(shard_id, row) for row, s in enumerate(splits) if split is None or s == split]
        self._locations = np.asarray(locations, dtype=np.int64).reshape(-1, 2)

    def _path(self, name: str) -> Path:
        return self.root / name

    @property
    def tables(self) -> list[pa.Table]:
        """Memory-mapped code shards in manifest order (re-opened lazily after pickling)."""
        if self._tables is None:
            tables = []
            for entry in self.manifest.shards:
                try:
                    table = read_shard(self._path(entry.name))
                except ShardError as err:
                    raise CodeShardError(str(err)) from None
                if table.num_rows != entry.rows:
                    raise CodeShardError(
                        f"{self._path(entry.name)}: {table.num_rows} rows != manifest {entry.rows}"
                    )
                tables.append(table)
            self._tables = tables
        return self._tables

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tables"] = None  # never pickle memory-mapped tables; workers re-open the files
        state["_cache"] = {}
        return state

    @property
    def tokenizer(self) -> TokenizerInfo:
        """Fingerprint of the tokenizer the codes were made with."""
        return self.manifest.tokenizer

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) token grid."""
        return self.manifest.tokenizer.grid

    @property
    def codebook_size(self) -> int:
        return self.manifest.tokenizer.codebook_size

    def assert_matches(self, tokenizer: nn.Module | str | os.PathLike[str]) -> None:
        """Refuse a tokenizer the codes were not made with (see :meth:`CodeManifest.assert_matches`)."""
        self.manifest.assert_matches(tokenizer)

    def _shard_arrays(self, shard_id: int) -> dict[str, Any]:
        """Per shard: code columns as int64 numpy n×h×w (adjectives n×h×w×k), the others as Arrow arrays."""
        cached = self._cache.get(shard_id)
        if cached is not None:
            return cached
        table = self.tables[shard_id]
        path = self._path(self.manifest.shards[shard_id].name)
        h, w = self.grid
        n = table.num_rows
        for name, expected in ((COL_GRID_H, h), (COL_GRID_W, w)):
            values = table.column(name).to_numpy()
            if n and not np.all(values == expected):
                raise CodeShardError(f"{path}: column {name!r} differs from the manifest grid {h}×{w}")

        def grid_of(name: str) -> np.ndarray:
            flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
            if flat.size != n * h * w:
                raise CodeShardError(
                    f"{path}: column {name!r} holds {flat.size} values, expected {n}×{h}×{w}"
                )
            return flat.astype(np.int64).reshape(n, h, w)

        arrays: dict[str, Any] = {SAMPLE_INDICES: grid_of(COL_INDICES)}
        if self._adjective_columns:
            arrays[SAMPLE_ADJECTIVES] = np.stack([grid_of(c) for c in self._adjective_columns], axis=-1)
            arrays[SAMPLE_NOUNS] = grid_of(COL_NOUN)
        for name in self.columns:
            arrays[name] = table.column(name).combine_chunks()
        self._cache[shard_id] = arrays
        return arrays

    def __len__(self) -> int:
        return len(self._locations)

    def __getitem__(self, position: int) -> CodeSample:
        if not -len(self) <= position < len(self):
            raise IndexError(f"index {position} out of range for {len(self)} rows")
        shard_id, row = self._locations[position].tolist()
        arrays = self._shard_arrays(shard_id)
        sample: CodeSample = {SAMPLE_INDICES: torch.from_numpy(arrays[SAMPLE_INDICES][row].copy())}
        if self._adjective_columns:
            sample[SAMPLE_ADJECTIVES] = torch.from_numpy(arrays[SAMPLE_ADJECTIVES][row].copy())
            sample[SAMPLE_NOUNS] = torch.from_numpy(arrays[SAMPLE_NOUNS][row].copy())
        for name in self.columns:
            sample[name] = arrays[name][row].as_py()
        return sample


def collate_codes(samples: list[CodeSample]) -> dict[str, Any]:
    """Samples → batch: tensors stacked (``indices`` B×h×w, ``adjectives`` B×h×w×k, ``nouns`` B×h×w), every
    other field as a list of B values."""
    if not samples:
        raise ValueError("collate_codes got an empty list of samples")
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
