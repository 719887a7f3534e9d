"""Arrow schema v1 of the caption/image shards, and the keys of the batch dict.

One row per image. Required columns: ``id`` (unique string), ``split`` (train/val/test), ``image`` (PNG or
JPEG bytes), ``width``/``height`` (int32 pixels of the stored image), ``captions`` (list<string>, at least
one), ``source`` (string). Optional columns (null when a source does not provide them): ``labels``
(list<string>), ``boxes`` (list<struct<label, x0, y0, x1, y1>>, float32 pixel coordinates of the stored
image), ``mask`` (PNG bytes, single channel, class ids, same size as the image), ``qa`` (list<struct<question,
answer>>) and ``refs`` (list<struct<expression, box_index int32>>, an index into ``boxes``).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1

# Column names.
COL_ID = "id"
COL_SPLIT = "split"
COL_IMAGE = "image"
COL_WIDTH = "width"
COL_HEIGHT = "height"
COL_CAPTIONS = "captions"
COL_SOURCE = "source"
COL_LABELS = "labels"
COL_BOXES = "boxes"
COL_MASK = "mask"
COL_QA = "qa"
COL_REFS = "refs"

REQUIRED_COLUMNS: tuple[str, ...] = (
    COL_ID,
    COL_SPLIT,
    COL_IMAGE,
    COL_WIDTH,
    COL_HEIGHT,
    COL_CAPTIONS,
    COL_SOURCE,
)
OPTIONAL_COLUMNS: tuple[str, ...] = (COL_LABELS, COL_BOXES, COL_MASK, COL_QA, COL_REFS)

SPLITS: tuple[str, ...] = ("train", "val", "test")

BOX_TYPE = pa.struct(
    [
        pa.field("label", pa.string()),
        pa.field("x0", pa.float32()),
        pa.field("y0", pa.float32()),
        pa.field("x1", pa.float32()),
        pa.field("y1", pa.float32()),
    ]
)
QA_TYPE = pa.struct([pa.field("question", pa.string()), pa.field("answer", pa.string())])
REF_TYPE = pa.struct([pa.field("expression", pa.string()), pa.field("box_index", pa.int32())])

SCHEMA = pa.schema(
    [
        pa.field(COL_ID, pa.string(), nullable=False),
        pa.field(COL_SPLIT, pa.string(), nullable=False),
        pa.field(COL_IMAGE, pa.binary(), nullable=False),
        pa.field(COL_WIDTH, pa.int32(), nullable=False),
        pa.field(COL_HEIGHT, pa.int32(), nullable=False),
        pa.field(COL_CAPTIONS, pa.list_(pa.string()), nullable=False),
        pa.field(COL_SOURCE, pa.string(), nullable=False),
        pa.field(COL_LABELS, pa.list_(pa.string())),
        pa.field(COL_BOXES, pa.list_(BOX_TYPE)),
        pa.field(COL_MASK, pa.binary()),
        pa.field(COL_QA, pa.list_(QA_TYPE)),
        pa.field(COL_REFS, pa.list_(REF_TYPE)),
    ],
    metadata={b"lgvq.schema_version": str(SCHEMA_VERSION).encode()},
)

# Keys of the batch dict produced by lgvq_data.dataset.collate (consumed by lgvq_core as plain strings).
BATCH_IMAGES = "images"  # float32 B×3×H×W in [-1, 1]
BATCH_CAPTIONS = "captions"  # list[str], one caption per image, chosen per (seed, epoch, index)
BATCH_IDS = "ids"  # list[str]
BATCH_ALL_CAPTIONS = "all_captions"  # list[list[str]]
BATCH_BOXES = "boxes"  # list[Tensor n_i×4 float32 (x0, y0, x1, y1)] in pixels of the transformed image
BATCH_BOX_LABELS = "box_labels"  # list[list[str]]
BATCH_MASKS = "masks"  # int64 B×H×W class ids
BATCH_QA = "qa"  # list[list[tuple[str, str]]]
BATCH_REFS = "refs"  # list[list[tuple[str, int]]] (expression, box index)


class RowError(ValueError):
    """A row that does not fit schema v1; the message names the row and the field."""

    def __init__(self, row_id: str, field: str, reason: str) -> None:
        super().__init__(f"row {row_id!r}, field {field!r}: {reason}")
        self.row_id = row_id
        self.field = field
        self.reason = reason


def _check_str_list(row_id: str, field: str, value: Any, allow_empty_items: bool = False) -> None:
    if not isinstance(value, (list, tuple)):
        raise RowError(row_id, field, f"expected a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise RowError(row_id, f"{field}[{i}]", f"expected a string, got {type(item).__name__}")
        if not allow_empty_items and not item.strip():
            raise RowError(row_id, f"{field}[{i}]", "empty string")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as err:
            raise RowError(row_id, f"{field}[{i}]", f"not valid UTF-8 ({err.reason})") from None


def check_row(row: dict[str, Any]) -> None:
    """Raise :class:`RowError` (naming the field) when ``row`` does not fit schema v1.

    Checks presence and Python types of every column, splits, non-empty UTF-8 captions, box and ref structure.
    It does not decode images (the validator does).
    """
    row_id = str(row.get(COL_ID, "<no id>"))
    unknown = set(row) - set(SCHEMA.names)
    if unknown:
        raise RowError(row_id, sorted(unknown)[0], "unknown column (schema v1)")
    for name in REQUIRED_COLUMNS:
        if row.get(name) is None:
            raise RowError(row_id, name, "missing required column")
    if not isinstance(row[COL_ID], str) or not row[COL_ID]:
        raise RowError(row_id, COL_ID, "expected a non-empty string")
    if row[COL_SPLIT] not in SPLITS:
        raise RowError(row_id, COL_SPLIT, f"{row[COL_SPLIT]!r} not in {SPLITS}")
    if not isinstance(row[COL_IMAGE], (bytes, bytearray, memoryview)):
        raise RowError(row_id, COL_IMAGE, f"expected bytes, got {type(row[COL_IMAGE]).__name__}")
    for name in (COL_WIDTH, COL_HEIGHT):
        value = row[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise RowError(row_id, name, f"expected a positive int, got {value!r}")
    if not isinstance(row[COL_SOURCE], str):
        raise RowError(row_id, COL_SOURCE, "expected a string")
    _check_str_list(row_id, COL_CAPTIONS, row[COL_CAPTIONS])
    if not row[COL_CAPTIONS]:
        raise RowError(row_id, COL_CAPTIONS, "at least one caption is required")
    if row.get(COL_LABELS) is not None:
        _check_str_list(row_id, COL_LABELS, row[COL_LABELS])
    boxes = row.get(COL_BOXES)
    if boxes is not None:
        for i, box in enumerate(boxes):
            if not isinstance(box, dict) or set(box) != {"label", "x0", "y0", "x1", "y1"}:
                raise RowError(row_id, f"{COL_BOXES}[{i}]", "expected a dict with label, x0, y0, x1, y1")
            if not all(isinstance(box[k], (int, float)) for k in ("x0", "y0", "x1", "y1")):
                raise RowError(row_id, f"{COL_BOXES}[{i}]", "coordinates must be numbers")
    if row.get(COL_MASK) is not None and not isinstance(row[COL_MASK], (bytes, bytearray, memoryview)):
        raise RowError(row_id, COL_MASK, "expected PNG bytes")
    for i, qa in enumerate(row.get(COL_QA) or []):
        if (
            not isinstance(qa, dict)
            or not isinstance(qa.get("question"), str)
            or not isinstance(qa.get("answer"), str)
        ):
            raise RowError(row_id, f"{COL_QA}[{i}]", "expected a dict with string question and answer")
    n_boxes = len(boxes) if boxes is not None else 0
    for i, ref in enumerate(row.get(COL_REFS) or []):
        if not isinstance(ref, dict) or not isinstance(ref.get("expression"), str):
            raise RowError(
                row_id, f"{COL_REFS}[{i}]", "expected a dict with a string expression and box_index"
            )
        index = ref.get("box_index")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_boxes:
            raise RowError(
                row_id, f"{COL_REFS}[{i}].box_index", f"{index!r} is not an index into {n_boxes} boxes"
            )


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Convert row dicts (missing optional columns → null) into a table with :data:`SCHEMA`."""
    columns = {name: [row.get(name) for row in rows] for name in SCHEMA.names}
    return pa.Table.from_pydict(columns, schema=SCHEMA)
