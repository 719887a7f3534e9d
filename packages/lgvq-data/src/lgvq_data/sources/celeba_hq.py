"""MM-CelebA-HQ (TediGAN captions, 10 per image), with CelebAMask-HQ face-part masks when present.

Layout (as downloaded)::

    ROOT/CelebA-HQ-img/<id>.jpg      (or ROOT/images/<id>.jpg, the LG-VQ loader's name)
    ROOT/celeba-caption/<id>.txt     one caption per line
    ROOT/train/filenames.pickle      list of ids of the train split (24,000)
    ROOT/test/filenames.pickle       list of ids of the test split (6,000)
    MASKS/<id // 2000>/<id:05d>_<part>.png   CelebAMask-HQ-mask-anno (optional; ``mask_root``)

The split pickles are plain lists and are read with :func:`lgvq_data.sources.common.load_data_pickle`
(no code runs). Without them the split is a stable hash of the id. Part masks (512²) are merged into one
class-id mask in :data:`MASK_CLASSES` order (later parts win) and resized (nearest) to the image size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lgvq_data.build import Rejected, build_shards
from lgvq_data.sources.common import (
    SourceLayoutError,
    hashed_split,
    image_row,
    load_data_pickle,
    read_caption_lines,
    stem,
)
from lgvq_data.sources.scenes import encode_png

SOURCE_NAME = "celeba-hq"
MASK_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)


def _image_folder(root: Path) -> Path:
    for name in ("CelebA-HQ-img", "images"):
        if (root / name).is_dir():
            return root / name
    raise SourceLayoutError(f"{root}: no image folder (CelebA-HQ-img or images)")


def _splits(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for split, folder in (("train", "train"), ("test", "test")):
        path = root / folder / "filenames.pickle"
        if path.is_file():
            for name in load_data_pickle(path):
                out[stem(name)] = split
    return out


def merge_part_masks(mask_root: Path, image_id: int, size: tuple[int, int]) -> bytes | None:
    """Class-id PNG from the CelebAMask-HQ part masks of one image, resized to ``size`` (w, h); or None."""
    folder = mask_root / str(image_id // 2000)
    merged: np.ndarray | None = None
    for class_id, part in enumerate(MASK_CLASSES[1:], start=1):
        path = folder / f"{image_id:05d}_{part}.png"
        if not path.is_file():
            continue
        with Image.open(path) as part_image:
            part_mask = np.asarray(part_image.convert("L")) > 127
        if merged is None:
            merged = np.zeros(part_mask.shape, dtype=np.uint8)
        merged[part_mask] = class_id
    if merged is None:
        return None
    if merged.shape[::-1] != size:
        merged = np.asarray(Image.fromarray(merged).resize(size, Image.NEAREST))
    return encode_png(merged)


def records(
    root: str | os.PathLike[str],
    mask_root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.0,
    test_fraction: float = 0.2,
) -> Iterator[dict[str, Any] | Rejected]:
    """Rows of MM-CelebA-HQ (split from filenames.pickle when present, else hashed with the fractions)."""
    root = Path(root)
    images = _image_folder(root)
    captions_dir = root / "celeba-caption"
    if not captions_dir.is_dir():
        raise SourceLayoutError(f"{captions_dir}: missing caption folder")
    masks = Path(mask_root) if mask_root else None
    if masks is None and (root / "CelebAMask-HQ-mask-anno").is_dir():
        masks = root / "CelebAMask-HQ-mask-anno"
    splits = _splits(root)
    paths = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for path in sorted(paths, key=lambda p: (len(p.stem), p.stem)):
        row_id = f"celeba-hq-{path.stem}"
        caption_file = captions_dir / f"{path.stem}.txt"
        if not caption_file.is_file():
            yield Rejected(str(caption_file), row_id, "caption file is missing")
            continue
        try:
            captions = read_caption_lines(caption_file)
        except ValueError as err:
            yield Rejected(str(caption_file), row_id, str(err))
            continue
        split = splits.get(path.stem) or hashed_split(path.stem, val_fraction, test_fraction)
        row = image_row(row_id, split, SOURCE_NAME, path, captions, origin=str(caption_file))
        if isinstance(row, dict) and masks is not None and path.stem.isdigit():
            row["mask"] = merge_part_masks(masks, int(path.stem), (row["width"], row["height"]))
        yield row


def build(
    out_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    mask_root: str | os.PathLike[str] | None = None,
    rows_per_shard: int = 4096,
    on_error: str = "fail",
    progress: bool = False,
) -> Path:
    """Convert MM-CelebA-HQ (+ CelebAMask-HQ) into shards at ``out_dir``."""
    return build_shards(
        records(root, mask_root),
        out_dir,
        source=SOURCE_NAME,
        rows_per_shard=rows_per_shard,
        on_error=on_error,
        progress=progress,
        metadata={"root": str(root), "mask_classes": list(MASK_CLASSES)},
    )
