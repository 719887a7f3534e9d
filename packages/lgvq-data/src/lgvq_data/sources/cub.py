"""CUB-200-2011 with the captions of Reed et al. (2016): 10 per image.

Layout (as downloaded)::

    ROOT/images.txt               "<image id> <class folder>/<file>.jpg"
    ROOT/train_test_split.txt     "<image id> <1 = train, 0 = test>"   (official 5,994 / 5,794 split)
    ROOT/images/<class folder>/<file>.jpg
    ROOT/bounding_boxes.txt       "<image id> <x> <y> <width> <height>"   (optional → one box per image)
    CAPTIONS/<class folder>/<file>.txt   one caption per line (Reed ``text_c10``; LG-VQ's ``birds/text``)

``captions_root`` defaults to ``ROOT/text_c10`` or ``ROOT/../birds/text`` or ``ROOT/text``, whichever exists.
The class name (``"Black footed Albatross"``) becomes the row label and box label.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lgvq_data.build import Rejected, build_shards
from lgvq_data.sources.common import SourceLayoutError, image_row, read_caption_lines, require_file

SOURCE_NAME = "cub"


def _table(path: Path, columns: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != columns:
            raise SourceLayoutError(f"{path}: line {number} has {len(parts)} fields, expected {columns}")
        out[parts[0]] = parts[1:]
    return out


def _class_name(folder: str) -> str:
    return folder.split(".", 1)[-1].replace("_", " ")


def _default_captions_root(root: Path) -> Path:
    for candidate in (root / "text_c10", root.parent / "birds" / "text", root / "text"):
        if candidate.is_dir():
            return candidate
    raise SourceLayoutError(
        f"{root}: no caption folder (text_c10, ../birds/text or text); pass captions_root"
    )


def records(
    root: str | os.PathLike[str], captions_root: str | os.PathLike[str] | None = None
) -> Iterator[dict[str, Any] | Rejected]:
    """Rows of CUB-200-2011 (official train/test split; no val split)."""
    root = Path(root)
    text_root = Path(captions_root) if captions_root else _default_captions_root(root)
    images = _table(require_file(root / "images.txt", "CUB images.txt"), 2)
    is_train = _table(require_file(root / "train_test_split.txt", "CUB train_test_split.txt"), 2)
    boxes = _table(root / "bounding_boxes.txt", 5) if (root / "bounding_boxes.txt").is_file() else {}
    for image_id, (relative,) in images.items():
        relative_path = Path(relative)
        caption_file = text_root / relative_path.with_suffix(".txt")
        row_id = f"cub-{relative_path.stem}"
        if image_id not in is_train:
            yield Rejected(str(root / "train_test_split.txt"), row_id, f"image id {image_id} has no split")
            continue
        if not caption_file.is_file():
            yield Rejected(str(caption_file), row_id, "caption file is missing")
            continue
        try:
            captions = read_caption_lines(caption_file)
        except ValueError as err:
            yield Rejected(str(caption_file), row_id, str(err))
            continue
        label = _class_name(relative_path.parent.name)
        box = None
        if image_id in boxes:
            x, y, w, h = (float(v) for v in boxes[image_id])
            box = [{"label": label, "x0": x, "y0": y, "x1": x + w, "y1": y + h}]
        row = image_row(
            row_id,
            "train" if is_train[image_id][0] == "1" else "test",
            SOURCE_NAME,
            root / "images" / relative_path,
            captions,
            origin=str(caption_file),
            labels=[label],
            boxes=box,
        )
        if isinstance(row, dict) and box:
            box[0]["x1"] = min(box[0]["x1"], float(row["width"]))
            box[0]["y1"] = min(box[0]["y1"], float(row["height"]))
        yield row


def build(
    out_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    captions_root: str | os.PathLike[str] | None = None,
    rows_per_shard: int = 4096,
    on_error: str = "fail",
    progress: bool = False,
) -> Path:
    """Convert CUB-200-2011 + Reed captions into shards at ``out_dir``."""
    return build_shards(
        records(root, captions_root),
        out_dir,
        source=SOURCE_NAME,
        rows_per_shard=rows_per_shard,
        on_error=on_error,
        progress=progress,
        metadata={"root": str(root)},
    )
