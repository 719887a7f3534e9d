"""Generic image folder + captions file (``captions.jsonl`` or ``captions.csv``).

``captions.jsonl``: one JSON object per line, ``{"file": "cats/01.jpg", "captions": ["...", ...]}`` (or
``"caption": "..."``), optional ``"id"`` and ``"split"`` (train/val/test). ``captions.csv``: a header with
``file`` and ``caption`` columns (one row per caption; rows of the same file are merged), optional ``id`` and
``split``. Image paths are relative to the folder. Rows without a split get a stable hash-based split.
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


def _find_captions_file(root: Path, captions: str | os.PathLike[str] | None) -> Path:
    if captions is not None:
        path = Path(captions)
        return require_file(path if path.is_absolute() else root / path, "captions file")
    for name in ("captions.jsonl", "captions.csv"):
        if (root / name).is_file():
            return root / name
    raise SourceLayoutError(f"{root}: missing caption file (captions.jsonl or captions.csv)")


def _jsonl_entries(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
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
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            yield number, "expected an object with a string 'file'"
            continue
        captions = entry.get("captions", [entry["caption"]] if "caption" in entry else None)
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            yield number, "'captions' must be a list of strings (or 'caption' a string)"
            continue
        yield number, {**entry, "captions": captions}


def _csv_entries(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        yield line, f"not valid UTF-8 ({err.reason})"
        return
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"file", "caption"} <= set(reader.fieldnames):
        raise SourceLayoutError(f"{path}: CSV header must contain 'file' and 'caption'")
    merged: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    for record in reader:
        key = record["file"]
        entry = merged.setdefault(
            key, {"file": key, "captions": [], "id": record.get("id"), "split": record.get("split")}
        )
        first_line.setdefault(key, reader.line_num)
        entry["captions"].append(record["caption"] or "")
    for key, entry in merged.items():
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
