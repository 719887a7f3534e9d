"""Fashion-MNIST scenes: real garment images tinted, scaled and placed into captioned scenes.

Reads the IDX files of Fashion-MNIST (Debian package ``dataset-fashion-mnist`` installs them in
:data:`DEFAULT_ROOT`; any folder with the same file names works, gzipped or not)::

    ROOT/train-images-idx3-ubyte.gz  ROOT/train-labels-idx1-ubyte.gz
    ROOT/t10k-images-idx3-ubyte.gz   ROOT/t10k-labels-idx1-ubyte.gz    (optional: test scenes use them)

Each scene holds 1–3 garments (colour tint, small/large, non-overlapping) on a shaded background, with the
same captions/boxes/class mask/QA/refs as the synthetic scenes (mask class = 1 + Fashion-MNIST label). When
the files are absent, :func:`records` raises :class:`SourceLayoutError` with the install hint;
:func:`available` tells first.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lgvq_data.build import build_shards
from lgvq_data.sources.common import SourceLayoutError
from lgvq_data.sources.scenes import (
    ALLOWED_COLOURS,
    BACKGROUND_COLOURS,
    PatternCache,
    SceneObject,
    assign_splits,
    place_boxes,
    scene_row,
)

SOURCE_NAME = "fashion-mnist"
DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
GARMENTS: tuple[str, ...] = (
    "t-shirt",
    "pair of trousers",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
GARMENT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("t-shirt", "top"),
    "pair of trousers": ("pair of trousers", "pair of pants"),
    "pullover": ("pullover", "sweater"),
    "dress": ("dress",),
    "coat": ("coat", "jacket"),
    "sandal": ("sandal",),
    "shirt": ("shirt",),
    "sneaker": ("sneaker", "trainer"),
    "bag": ("bag", "handbag"),
    "ankle boot": ("ankle boot", "boot"),
}
CLASS_NAMES: tuple[str, ...] = ("background",) + GARMENTS
_SIZE_RANGES = {"small": (0.3, 0.38), "large": (0.45, 0.55)}


def read_idx(path: Path) -> np.ndarray:
    """Array from an IDX file (``.gz`` or raw); ``ValueError`` naming the file when malformed."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, expected {expected} for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(root: Path, name: str) -> Path | None:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    return None


def available(root: str | os.PathLike[str] = DEFAULT_ROOT) -> bool:
    """Whether the train IDX files are present under ``root``."""
    root = Path(root)
    return (
        _find(root, "train-images-idx3-ubyte") is not None
        and _find(root, "train-labels-idx1-ubyte") is not None
    )


def load_split(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(images N×28×28 uint8, labels N) for ``train`` or ``t10k``; None when absent."""
    images, labels = _find(root, f"{prefix}-images-idx3-ubyte"), _find(root, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        return None
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{images}: shape {x.shape} does not match labels {y.shape}")
    if int(y.max()) >= len(GARMENTS):
        raise ValueError(f"{labels}: label {int(y.max())} outside 0..{len(GARMENTS) - 1}")
    return x, y


def records(
    n: int,
    image_size: int = 64,
    seed: int = 0,
    root: str | os.PathLike[str] = DEFAULT_ROOT,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Iterator[dict[str, Any]]:
    """Yield ``n`` scene rows built from Fashion-MNIST garments (test scenes use t10k when present)."""
    root = Path(root)
    train = load_split(root, "train")
    if train is None:
        raise SourceLayoutError(
            f"{root}: Fashion-MNIST IDX files not found "
            "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]); "
            "install the Debian package dataset-fashion-mnist or pass the folder that holds them"
        )
    test = load_split(root, "t10k") or train
    splits = assign_splits(n, seed, val_fraction, test_fraction)
    patterns = PatternCache()
    backgrounds = tuple(BACKGROUND_COLOURS)
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        images, labels = test if splits[index] == "test" else train
        background = backgrounds[int(rng.integers(len(backgrounds)))]
        colours = ALLOWED_COLOURS[background]
        count = 1 + int(rng.integers(3))
        picks = []
        for _ in range(count):
            k = int(rng.integers(len(images)))
            size_word = "small" if rng.random() < 0.5 else "large"
            low, high = _SIZE_RANGES[size_word]
            side = max(6, int(round(image_size * rng.uniform(low, high))))
            picks.append((k, size_word, side, colours[int(rng.integers(len(colours)))]))
        corners = place_boxes(rng, image_size, [p[2] for p in picks])
        objects = []
        for (k, size_word, side, colour), corner in zip(picks, corners, strict=False):
            if corner is None:
                continue
            sprite = Image.fromarray(images[k]).resize((side, side), Image.BILINEAR)
            noun = GARMENTS[int(labels[k])]
            objects.append(
                SceneObject(
                    noun=noun,
                    synonyms=GARMENT_SYNONYMS[noun],
                    colour=colour,
                    size=size_word,
                    pattern="plain",
                    class_id=1 + int(labels[k]),
                    alpha=np.asarray(sprite, dtype=np.float32) / 255.0,
                    x=corner[0],
                    y=corner[1],
                )
            )
        gradient = "vertical" if rng.random() < 0.5 else "horizontal"
        yield scene_row(
            f"{SOURCE_NAME}-{seed}-{index:07d}",
            str(splits[index]),
            SOURCE_NAME,
            objects,
            background,
            image_size,
            gradient,
            patterns,
            rng,
            GARMENTS,
            kind="items",
        )


def build(
    out_dir: str | os.PathLike[str],
    n: int = 4000,
    image_size: int = 64,
    seed: int = 0,
    root: str | os.PathLike[str] = DEFAULT_ROOT,
    rows_per_shard: int = 4096,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    on_error: str = "fail",
    progress: bool = False,
) -> Path:
    """Write ``n`` Fashion-MNIST scenes as shards at ``out_dir``."""
    return build_shards(
        records(n, image_size, seed, root, val_fraction, test_fraction),
        out_dir,
        source=SOURCE_NAME,
        rows_per_shard=rows_per_shard,
        on_error=on_error,
        progress=progress,
        total=n,
        metadata={
            "n": n,
            "image_size": image_size,
            "seed": seed,
            "root": str(root),
            "class_names": list(CLASS_NAMES),
        },
    )
