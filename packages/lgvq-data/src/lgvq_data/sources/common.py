"""Helpers shared by the real-data sources: image files, caption files, safe pickles, split assignment."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

from PIL import Image

from lgvq_data.build import ORIGIN_KEY, Rejected


class SourceLayoutError(FileNotFoundError):
    """A file the source layout requires is missing (a whole caption file, an annotation file ...)."""


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` or raise :class:`SourceLayoutError` naming it and what it should be."""
    if not path.is_file():
        raise SourceLayoutError(f"{path}: missing {what}")
    return path


def read_image(path: Path) -> tuple[bytes, int, int]:
    """(original bytes, width, height) of an image after a full decode; ``ValueError`` with the reason."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read image ({err.strerror or err})") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
            if image.format not in ("PNG", "JPEG") or image.mode not in ("RGB", "L", "RGBA", "P"):
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="PNG", compress_level=1)
                data = buffer.getvalue()
    except Exception as err:  # noqa: BLE001 - every decoder failure is reported the same way
        raise ValueError(f"image does not decode ({type(err).__name__}: {err})") from None
    return data, width, height


def read_caption_lines(path: Path) -> list[str]:
    """Non-blank lines of a UTF-8 caption file; ``ValueError`` naming the line when not UTF-8."""
    raw = path.read_bytes()
    captions = []
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise ValueError(f"line {number} is not valid UTF-8 ({err.reason} at byte {err.start})") from None
        if text:
            captions.append(text)
    return captions


def image_row(
    row_id: str,
    split: str,
    source: str,
    image_path: Path,
    captions: list[str],
    origin: str | None = None,
    **optional: Any,
) -> dict[str, Any] | Rejected:
    """A schema-v1 row for an image file, or a :class:`Rejected` naming the file, row and reason."""
    origin = origin or str(image_path)
    if not image_path.is_file():
        return Rejected(str(image_path), row_id, "image file is missing")
    try:
        data, width, height = read_image(image_path)
    except ValueError as err:
        return Rejected(str(image_path), row_id, str(err))
    if not captions:
        return Rejected(origin, row_id, "no captions")
    for i, caption in enumerate(captions):
        if not isinstance(caption, str) or not caption.strip():
            return Rejected(origin, row_id, f"caption {i} is empty")
    row = {
        "id": row_id,
        "split": split,
        "image": data,
        "width": width,
        "height": height,
        "captions": [c.strip() for c in captions],
        "source": source,
        ORIGIN_KEY: origin,
    }
    row.update({k: v for k, v in optional.items() if v is not None})
    return row


def hashed_split(key: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a key by its sha1 (stable across runs and machines)."""
    u = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < val_fraction:
        return "val"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: only lists, dicts, strings, numbers, tuples, None, bools."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is allowed")


def load_data_pickle(path: Path) -> Any:
    """Load a pickle that holds plain data only (no classes or functions are ever imported).

    Some public releases ship their split lists or annotations only as Python pickles (MM-CelebA-HQ and
    TextCaps ``filenames.pickle``, RefCOCO ``refs(unc).p``). They contain plain lists/dicts, so they are read
    with an unpickler that rejects every global reference: a file that tries to construct an object fails
    instead of running code. Python-2 byte strings are decoded as latin-1.
    """
    with open(path, "rb") as handle:
        try:
            return _DataOnlyUnpickler(handle, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise ValueError(f"{path}: not a plain-data pickle ({err})") from None


def as_text(value: Any) -> str:
    """bytes (Python-2 pickles) or str → str."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def stem(name: Any) -> str:
    """File name without folder and extension (``'a/b/c.jpg'`` → ``'c'``)."""
    return os.path.splitext(os.path.basename(as_text(name)))[0]
