"""What a synthetic scene holds, as judge targets: the (colour, shape) pairs of a row's objects and their
multi-hot attribute vector.

Vocabulary (``ATTRIBUTE_NAMES``, length ``NUM_ATTRIBUTES`` = 87): the 7 shapes (``SHAPES`` of the synthetic
source), the 10 object colours (``OBJECT_COLOURS``), then the 70 (colour, shape) pairs, shape-major
(``pair_index``). A row's objects come from its ``boxes`` (label = shape noun) and ``refs``: the expression
``"the {size} {colour} {noun}"`` with ``box_index`` names the colour of box ``box_index``.

For dense training a row also has an *object map* (:func:`object_map`): per pixel 0 = background or
``1 + shape·10 + colour`` (so the shape class of the mask is ``1 + (v − 1) // 10`` and the colour class
``1 + (v − 1) % 10``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lgvq_data.sources.scenes import OBJECT_COLOURS, SIZES
from lgvq_data.sources.synthetic import SHAPES
from lgvq_data.transforms import decode_image

__all__ = [
    "ATTRIBUTE_NAMES",
    "COLOURS",
    "NUM_ATTRIBUTES",
    "NUM_PAIRS",
    "PAIR_OFFSET",
    "SHAPES",
    "COLOUR_OFFSET",
    "attribute_targets",
    "attribute_target_matrix",
    "object_map",
    "pair_index",
    "scene_objects",
]

COLOURS: tuple[str, ...] = tuple(OBJECT_COLOURS)
COLOUR_OFFSET = len(SHAPES)
PAIR_OFFSET = len(SHAPES) + len(COLOURS)
NUM_PAIRS = len(SHAPES) * len(COLOURS)
NUM_ATTRIBUTES = PAIR_OFFSET + NUM_PAIRS
ATTRIBUTE_NAMES: tuple[str, ...] = (
    tuple(f"shape:{s}" for s in SHAPES)
    + tuple(f"colour:{c}" for c in COLOURS)
    + tuple(f"pair:{c} {s}" for s in SHAPES for c in COLOURS)
)


def pair_index(colour: str, shape: str) -> int:
    """Index of the (colour, shape) pair in the attribute vector (``PAIR_OFFSET`` + shape·10 + colour)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; known: {COLOURS}")
    return PAIR_OFFSET + SHAPES.index(shape) * len(COLOURS) + COLOURS.index(colour)


def _parse_ref(expression: str) -> tuple[str, str] | None:
    """``"the {size} {colour} {noun}"`` → (colour, noun); ``None`` for any other expression."""
    words = expression.split()
    if len(words) < 4 or words[0] != "the" or words[1] not in SIZES or words[2] not in COLOURS:
        return None
    return words[2], " ".join(words[3:])


def scene_objects(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(colour, shape) of each object of a synthetic-scene row (a shard row dict: ``boxes`` and ``refs``),
    in box order.

    Raises ``ValueError`` naming the row id when a box label is not a synthetic shape or no
    ``"the {size} {colour} {label}"`` reference names the colour of a box.
    """
    row_id = row.get("id", "<row>")
    boxes = row.get("boxes")
    refs = row.get("refs")
    if not boxes or refs is None:
        raise ValueError(f"row {row_id}: needs 'boxes' and 'refs' to know its objects")
    colours: dict[int, str] = {}
    for ref in refs:
        expression, index = (ref["expression"], ref["box_index"]) if isinstance(ref, Mapping) else ref
        parsed = _parse_ref(str(expression))
        index = int(index)
        if parsed is None or not 0 <= index < len(boxes):
            continue
        colour, noun = parsed
        label = boxes[index]["label"] if isinstance(boxes[index], Mapping) else None
        if noun == label and index not in colours:
            colours[index] = colour
    objects = []
    for index, box in enumerate(boxes):
        label = box["label"] if isinstance(box, Mapping) else str(box)
        if label not in SHAPES:
            raise ValueError(f"row {row_id}: box {index} label {label!r} is not a synthetic shape {SHAPES}")
        if index not in colours:
            raise ValueError(
                f"row {row_id}: no reference 'the <size> <colour> {label}' names the colour of box {index}"
            )
        objects.append((colours[index], label))
    return objects


def attribute_targets(row: Mapping[str, Any]) -> Tensor:
    """Multi-hot float32 (``NUM_ATTRIBUTES``,) vector of a row: its shapes, colours, (colour, shape) pairs."""
    target = torch.zeros(NUM_ATTRIBUTES, dtype=torch.float32)
    for colour, shape in scene_objects(row):
        target[SHAPES.index(shape)] = 1.0
        target[COLOUR_OFFSET + COLOURS.index(colour)] = 1.0
        target[pair_index(colour, shape)] = 1.0
    return target


def attribute_target_matrix(rows: Sequence[Mapping[str, Any]] | Tensor) -> Tensor:
    """N×``NUM_ATTRIBUTES`` float32 targets of rows; a tensor is checked (shape, 0/1 values) and returned."""
    if isinstance(rows, Tensor):
        if rows.ndim != 2 or rows.shape[1] != NUM_ATTRIBUTES:
            raise ValueError(f"targets must be N×{NUM_ATTRIBUTES}, got shape {tuple(rows.shape)}")
        bad = rows[(rows != 0) & (rows != 1)]
        if bad.numel():
            raise ValueError(f"targets must be 0/1 multi-hot, found value {float(bad[0])}")
        return rows.to(torch.float32)
    if len(rows) == 0:
        return torch.zeros(0, NUM_ATTRIBUTES)
    return torch.stack([attribute_targets(row) for row in rows])


def object_map(row: Mapping[str, Any], mask: np.ndarray | Tensor | None = None) -> Tensor:
    """int64 H×W map of a row: 0 = background, ``1 + shape_index·10 + colour_index`` on each object's pixels.

    The pixels of object ``i`` are those of its box whose class id in the mask (``mask`` if given, else the
    row's decoded ``mask`` PNG) is ``1 + SHAPES.index(shape)``; synthetic objects never overlap.
    """
    if mask is None:
        if row.get("mask") is None:
            raise ValueError(f"row {row.get('id', '<row>')}: has no mask")
        mask = np.asarray(decode_image(row["mask"], mode="L"))
    classes = mask.long() if isinstance(mask, Tensor) else torch.from_numpy(np.array(mask, dtype=np.int64))
    if classes.ndim != 2:
        raise ValueError(f"row {row.get('id', '<row>')}: mask must be H×W, got shape {tuple(classes.shape)}")
    out = torch.zeros_like(classes)
    height, width = classes.shape
    for (colour, shape), box in zip(scene_objects(row), row["boxes"], strict=True):
        x0, y0 = max(0, int(box["x0"])), max(0, int(box["y0"]))
        x1, y1 = min(width, int(np.ceil(box["x1"]))), min(height, int(np.ceil(box["y1"])))
        region = classes[y0:y1, x0:x1] == 1 + SHAPES.index(shape)
        out[y0:y1, x0:x1][region] = 1 + pair_index(colour, shape) - PAIR_OFFSET
    return out
