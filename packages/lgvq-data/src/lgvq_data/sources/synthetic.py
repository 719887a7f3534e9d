"""Synthetic captioned scenes: the offline default data set (ARCHITECTURE.md §7).

Each image holds 1–3 non-overlapping objects on a shaded background. An object has a shape (7 kinds), a colour
(10), a size (small/large) and a pattern (plain/striped/dotted). Rows carry ≥5 captions, per-object boxes, a
class-id mask (0 = background, ``1 + SHAPES.index(shape)``), QA pairs and referring expressions. Row ``i``
depends only on ``(seed, i)`` (and the image size), so any subset can be regenerated exactly.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lgvq_data.sources.scenes import (
    ALLOWED_COLOURS,
    BACKGROUND_COLOURS,
    PATTERNS,
    PatternCache,
    SceneObject,
    assign_splits,
    place_boxes,
    scene_row,
)

SOURCE_NAME = "synthetic"
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross", "hexagon")
SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round shape"),
    "square": ("square", "block"),
    "triangle": ("triangle",),
    "diamond": ("diamond", "rhombus"),
    "star": ("star",),
    "cross": ("cross", "plus sign"),
    "hexagon": ("hexagon",),
}
CLASS_NAMES: tuple[str, ...] = ("background",) + SHAPES
_SIZE_RANGES = {"small": (0.18, 0.26), "large": (0.32, 0.42)}
_PATTERN_CUMULATIVE = np.array([0.5, 0.75])  # plain 50 %, striped 25 %, dotted 25 %
_COUNT_CUMULATIVE = np.array([0.3, 0.7])  # 1, 2 or 3 objects: 30 / 40 / 30 %


@functools.lru_cache(maxsize=4096)
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean side×side mask of ``shape`` (read-only, cached)."""
    coords = (np.arange(side, dtype=np.float32) + 0.5) / side * 2.0 - 1.0
    v, u = np.meshgrid(coords, coords, indexing="ij")
    if shape == "circle":
        mask = u * u + v * v <= 1.0
    elif shape == "square":
        mask = (np.abs(u) <= 0.9) & (np.abs(v) <= 0.9)
    elif shape == "triangle":
        mask = (v <= 0.9) & (np.abs(u) <= (v + 1.0) / 2.0)
    elif shape == "diamond":
        mask = np.abs(u) + np.abs(v) <= 1.0
    elif shape == "star":
        radius = np.hypot(u, v)
        angle = np.arctan2(u, -v)
        mask = radius <= 0.42 + 0.58 * (0.5 + 0.5 * np.cos(5.0 * angle)) ** 2
    elif shape == "cross":
        mask = ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95))
    elif shape == "hexagon":
        mask = (np.abs(v) <= 0.87) & (np.abs(u) * 0.87 + np.abs(v) * 0.5 <= 0.87)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    mask.setflags(write=False)
    return mask


class SceneGenerator:
    """Deterministic generator of synthetic scene rows for one (seed, image size)."""

    def __init__(self, image_size: int = 64, seed: int = 0) -> None:
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
        self.image_size = image_size
        self.seed = seed
        self._patterns = PatternCache()
        self._backgrounds = tuple(BACKGROUND_COLOURS)

    def row(self, index: int, split: str) -> dict[str, Any]:
        """Row ``index`` (depends only on seed, image size and index)."""
        rng = np.random.default_rng([self.seed, index])
        size = self.image_size
        background = self._backgrounds[int(rng.integers(len(self._backgrounds)))]
        colours = ALLOWED_COLOURS[background]
        count = 1 + int(np.searchsorted(_COUNT_CUMULATIVE, rng.random(), side="right"))
        specs = []
        used: set[tuple[str, str, str]] = set()
        for _ in range(count):
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            colour = colours[int(rng.integers(len(colours)))]
            size_word = "small" if rng.random() < 0.5 else "large"
            if (shape, colour, size_word) in used:
                continue
            used.add((shape, colour, size_word))
            low, high = _SIZE_RANGES[size_word]
            side = max(4, int(round(size * rng.uniform(low, high))))
            pattern = PATTERNS[int(np.searchsorted(_PATTERN_CUMULATIVE, rng.random(), side="right"))]
            specs.append((shape, colour, size_word, side, pattern))
        corners = place_boxes(rng, size, [s[3] for s in specs])
        objects = [
            SceneObject(
                noun=shape,
                synonyms=SHAPE_SYNONYMS[shape],
                colour=colour,
                size=size_word,
                pattern=pattern,
                class_id=1 + SHAPES.index(shape),
                alpha=shape_mask(shape, side),
                x=corner[0],
                y=corner[1],
            )
            for (shape, colour, size_word, side, pattern), corner in zip(specs, corners, strict=False)
            if corner is not None
        ]
        gradient = "vertical" if rng.random() < 0.5 else "horizontal"
        return scene_row(
            row_id=f"{SOURCE_NAME}-{self.seed}-{index:07d}",
            split=split,
            source=SOURCE_NAME,
            objects=objects,
            background=background,
            image_size=size,
            gradient=gradient,
            patterns=self._patterns,
            rng=rng,
            all_nouns=SHAPES,
            kind="shapes",
        )


def records(
    n: int,
    image_size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield schema-v1 rows ``start..stop`` of an ``n``-image synthetic data set.

    Splits are exact: ``round(n·val_fraction)`` val and ``round(n·test_fraction)`` test rows, chosen by a
    seeded permutation; every other row is train.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    splits = assign_splits(n, seed, val_fraction, test_fraction)
    generator = SceneGenerator(image_size=image_size, seed=seed)
    for index in range(start, n if stop is None else min(stop, n)):
        yield generator.row(index, str(splits[index]))


def build(
    out_dir: str | os.PathLike[str],
    n: int = 4000,
    image_size: int = 64,
    seed: int = 0,
    rows_per_shard: int = 4096,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    overwrite: bool = True,
    progress: bool = False,
) -> Path:
    """Write ``n`` synthetic scenes as a validated-layout shard directory; returns ``out_dir``."""
    from lgvq_data.build import build_shards

    return build_shards(
        records(n, image_size=image_size, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction),
        out_dir,
        source=SOURCE_NAME,
        rows_per_shard=rows_per_shard,
        overwrite=overwrite,
        metadata={
            "source": SOURCE_NAME,
            "n": n,
            "image_size": image_size,
            "seed": seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "class_names": list(CLASS_NAMES),
        },
        total=n,
        progress=progress,
    )
