"""Arrow layout of a code shard: the source row's columns (all but ``image``) plus the token grid.

Code columns:

- ``indices``: list<int16|int32|int64>, the h×w token grid flattened row-major (int16 when the codebook size
  is at most 32767, int32 up to 2^31−1, int64 beyond, e.g. VQCT's packed A^k·N tokens at paper size);
- ``grid_h``, ``grid_w``: int32, the grid shape;
- VQCT only: ``adjective_0`` … ``adjective_{k-1}`` (nearest first) and ``noun``, the unpacked word ids of
  each token, flat h×w lists like ``indices``.

Every other column of the lgvq-data schema (``id``, ``split``, ``width``, ``height``, ``captions``,
``source``, ``labels``, ``boxes``, ``mask``, ``qa``, ``refs``) is copied unchanged, with its Arrow type.
"""

from __future__ import annotations

import pyarrow as pa

from lgvq_data.schema import COL_IMAGE

CODE_FORMAT = "lgvq-code-shards"
CODE_FORMAT_VERSION = 1

COL_INDICES = "indices"
COL_GRID_H = "grid_h"
COL_GRID_W = "grid_w"
COL_NOUN = "noun"
ADJECTIVE_PREFIX = "adjective_"
DROPPED_COLUMNS: tuple[str, ...] = (COL_IMAGE,)

_INT16_MAX = 2**15 - 1
_INT32_MAX = 2**31 - 1


def adjective_columns(topk: int) -> list[str]:
    """Names of the VQCT adjective-id columns, nearest first."""
    return [f"{ADJECTIVE_PREFIX}{j}" for j in range(topk)]


def index_type(num_values: int) -> pa.DataType:
    """Smallest signed Arrow integer type for ids in ``[0, num_values)``: int16 when ``num_values`` ≤ 32767,
    int32 up to 2^31−1, else int64."""
    if num_values <= _INT16_MAX:
        return pa.int16()
    if num_values <= _INT32_MAX:
        return pa.int32()
    return pa.int64()


def code_schema(
    source_schema: pa.Schema,
    codebook_size: int,
    vqct_sizes: tuple[int, int, int] | None = None,
) -> pa.Schema:
    """Schema of a code shard made from a source shard with ``source_schema``.

    Args:
        codebook_size: number of tokens (``indices`` type from :func:`index_type`).
        vqct_sizes: (num_adjectives, num_nouns, topk) for VQCT, else None.
    """
    fields = [f for f in source_schema if f.name not in DROPPED_COLUMNS]
    fields += [
        pa.field(COL_INDICES, pa.list_(index_type(codebook_size)), nullable=False),
        pa.field(COL_GRID_H, pa.int32(), nullable=False),
        pa.field(COL_GRID_W, pa.int32(), nullable=False),
    ]
    if vqct_sizes is not None:
        num_adjectives, num_nouns, topk = vqct_sizes
        fields += [
            pa.field(name, pa.list_(index_type(num_adjectives)), nullable=False)
            for name in adjective_columns(topk)
        ]
        fields.append(pa.field(COL_NOUN, pa.list_(index_type(num_nouns)), nullable=False))
    metadata = {b"lgvq.code_format": CODE_FORMAT.encode(), b"lgvq.code_format_version": b"1"}
    return pa.schema(fields, metadata=metadata)
