"""TextCaps (about 5 captions per image), from either published layout.

Official annotations (preferred)::

    ROOT/TextCaps_0.1_train.json, ROOT/TextCaps_0.1_val.json   {"data": [{"image_id", "caption_str", ...}]}
    ROOT/train_images/<image_id>.jpg                             (TextVQA images; val images live here too)

LG-VQ's loader layout (used when the JSON files are absent)::

    ROOT/train_images/<id>.jpg, ROOT/text/<id>.txt (one caption per line),
    ROOT/train_filenames.pickle, ROOT/valid_filenames.pickle     (plain lists, read without running code)
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lgvq_data.build import Rejected, build_shards
from lgvq_data.sources.common import (
    SourceLayoutError,
    image_row,
    load_data_pickle,
    read_caption_lines,
    require_file,
    stem,
)

SOURCE_NAME = "textcaps"
_JSON_SPLITS = {"train": "TextCaps_0.1_train.json", "val": "TextCaps_0.1_val.json"}
_PICKLE_SPLITS = {"train": "train_filenames.pickle", "val": "valid_filenames.pickle"}


def _json_records(root: Path) -> Iterator[dict[str, Any] | Rejected]:
    for split, name in _JSON_SPLITS.items():
        path = root / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))["data"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError) as err:
            raise SourceLayoutError(f"{path}: not a TextCaps annotation file ({err})") from None
        captions: dict[str, list[str]] = defaultdict(list)
        for entry in data:
            captions[str(entry["image_id"])].append(str(entry.get("caption_str", "")))
        for image_id, texts in captions.items():
            yield image_row(
                f"textcaps-{image_id}",
                split,
                SOURCE_NAME,
                root / "train_images" / f"{image_id}.jpg",
                texts,
                origin=f"{path} (image {image_id})",
            )


def _text_records(root: Path) -> Iterator[dict[str, Any] | Rejected]:
    for split, name in _PICKLE_SPLITS.items():
        path = root / name
        if not path.is_file():
            continue
        for raw_name in load_data_pickle(path):
            image_id = stem(raw_name)
            caption_file = root / "text" / f"{image_id}.txt"
            if not caption_file.is_file():
                yield Rejected(str(caption_file), f"textcaps-{image_id}", "caption file is missing")
                continue
            try:
                texts = read_caption_lines(caption_file)
            except ValueError as err:
                yield Rejected(str(caption_file), f"textcaps-{image_id}", str(err))
                continue
            yield image_row(
                f"textcaps-{image_id}",
                split,
                SOURCE_NAME,
                root / "train_images" / f"{image_id}.jpg",
                texts,
                origin=str(caption_file),
            )


def records(root: str | os.PathLike[str]) -> Iterator[dict[str, Any] | Rejected]:
    """Rows of TextCaps train/val (official JSON when present, else the LG-VQ text layout)."""
    root = Path(root)
    if any((root / name).is_file() for name in _JSON_SPLITS.values()):
        yield from _json_records(root)
    elif any((root / name).is_file() for name in _PICKLE_SPLITS.values()):
        yield from _text_records(root)
    else:
        require_file(root / _JSON_SPLITS["train"], "TextCaps annotations (or train_filenames.pickle + text/)")


def build(
    out_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    rows_per_shard: int = 4096,
    on_error: str = "fail",
    progress: bool = False,
) -> Path:
    """Convert TextCaps into shards at ``out_dir``."""
    return build_shards(
        records(root),
        out_dir,
        source=SOURCE_NAME,
        rows_per_shard=rows_per_shard,
        on_error=on_error,
        progress=progress,
        metadata={"root": str(root)},
    )
