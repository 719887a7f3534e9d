"""Generic image folder + captions file: ``captions.jsonl`` / ``captions.csv``, or the Hugging Face
``imagefolder`` convention ``metadata.jsonl`` / ``metadata.csv``.

JSONL: one JSON object per line with an image key, the first present of ``file_name`` (HF ``imagefolder``),
``file`` or ``image``, and a caption key, the first present of ``captions``, ``caption`` or ``text`` (a string
or a list of strings); optional ``"id"`` and ``"split"`` (train/val/test). For example
``{"file_name": "cats/01.jpg", "text": "..."}`` or ``{"file": "cats/01.jpg", "captions": ["...", ...]}``.
CSV: a header with an image column and a caption column under the same names (one row per caption; rows of
the same file are merged), optional ``id`` and ``split``. Image paths are relative to the folder. Rows
without a split get a stable hash-based split. A bad line is rejected with its file, line number and the
expected keys.

The LG diagnostics of lgvq-core (``lgvq_core.guidance.diagnostics.read_captions_jsonl``) read the same JSONL
keys; the two packages do not import each other, so the key lists are kept equal by hand.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lgvq_data.build import Rejected, build_shards
from lgvq_data.sources.common import SourceLayoutError, hashed_split, image_row, require_file

SOURCE_NAME = "folder"


CAPTION_FILES = ("captions.jsonl", "captions.csv", "metadata.jsonl", "metadata.csv")
"""Caption files looked up (in this order) in a folder given without ``captions``."""
IMAGE_KEYS = ("file_name", "file", "image")
"""Keys naming the image (relative path), the first present wins."""
CAPTION_KEYS = ("captions", "caption", "text")
"""Keys holding the caption(s), a string or a list of strings; the first present wins."""
EXPECTED_KEYS = (
    "expected an image key (file_name, file or image) and a caption key (text, caption or captions)"
)


def _find_captions_file(root: Path, captions: str | os.PathLike[str] | None) -> Path:
    if captions is not None:
        path = Path(captions)
        return require_file(path if path.is_absolute() else root / path, "captions file")
    for name in CAPTION_FILES:
        if (root / name).is_file():
            return root / name
    raise SourceLayoutError(f"{root}: missing caption file ({', '.join(CAPTION_FILES)})")


def _first_key(entry: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((key for key in keys if key in entry), None)


def _jsonl_entries(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, ``{"file", "captions", ...}``) per non-blank line, or (line number, reason)."""
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            yield number, f"not valid UTF-8 ({err.reason} at byte {err.start})"
            continue
        except json.JSONDecodeError as err:
            yield number, f"not valid JSON ({err.msg})"
            continue
        image_key = _first_key(entry, IMAGE_KEYS) if isinstance(entry, dict) else None
        caption_key = _first_key(entry, CAPTION_KEYS) if isinstance(entry, dict) else None
        if image_key is None or caption_key is None:
            found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            yield number, f"{EXPECTED_KEYS}; found {found}"
            continue
        file, captions = entry[image_key], entry[caption_key]
        if isinstance(captions, str):
            captions = [captions]
        if not isinstance(file, str) or not file:
            yield number, f"{image_key!r} must be a non-empty string (the image path)"
            continue
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            yield number, f"{caption_key!r} must be a string or a list of strings"
            continue
        yield number, {**entry, "file": file, "captions": captions}


def _csv_entries(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        yield line, f"not valid UTF-8 ({err.reason})"
        return
    reader = csv.DictReader(io.StringIO(text))
    header = {name: None for name in reader.fieldnames or ()}
    image_key, caption_key = _first_key(header, IMAGE_KEYS), _first_key(header, CAPTION_KEYS)
    if image_key is None or caption_key is None:
        raise SourceLayoutError(
            f"{path}: CSV header {list(header)}: expected an image column (file_name, file or image) and a "
            "caption column (text, caption or captions)"
        )
    merged: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    for record in reader:
        key = record[image_key] or ""
        entry = merged.setdefault(
            key, {"file": key, "captions": [], "id": record.get("id"), "split": record.get("split")}
        )
        first_line.setdefault(key, reader.line_num)
        entry["captions"].append(record[caption_key] or "")
    for key, entry in merged.items():
        if not key:
            yield first_line[key], f"empty {image_key!r} (the image path)"
            continue
        yield first_line[key], entry


def records(
    root: str | os.PathLike[str],
    captions: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Iterator[dict[str, Any] | Rejected]:
    """Rows of an image folder with a captions file (see module doc); bad lines come as :class:`Rejected`."""
    root = Path(root)
    path = _find_captions_file(root, captions)
    entries = _csv_entries(path) if path.suffix.lower() == ".csv" else _jsonl_entries(path)
    for line, entry in entries:
        if isinstance(entry, str):
            yield Rejected(str(path), f"line {line}", entry)
            continue
        row_id = str(entry["id"]) if entry.get("id") else Path(entry["file"]).with_suffix("").as_posix()
        split = entry.get("split") or hashed_split(row_id, val_fraction, test_fraction)
        yield image_row(
            row_id, split, SOURCE_NAME, root / entry["file"], entry["captions"], origin=f"{path}:{line}"
        )


def build(
    out_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    captions: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    rows_per_shard: int = 4096,
    on_error: str = "fail",
    progress: bool = False,
) -> Path:
    """Convert an image folder + captions file into shards at ``out_dir``."""
    return build_shards(
        records(root, captions, val_fraction, test_fraction),
        out_dir,
        source=SOURCE_NAME,
        rows_per_shard=rows_per_shard,
        on_error=on_error,
        progress=progress,
        metadata={"root": str(root), "captions": str(captions) if captions else None},
    )
