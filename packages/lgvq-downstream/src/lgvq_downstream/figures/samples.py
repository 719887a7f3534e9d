"""PNG sample grids of the generation tasks (matplotlib, imported on use; Agg backend).

* :func:`save_image_grid`: plain grid, optionally one title per row (unconditional samples, or one row per
  model / temperature).
* :func:`save_text_to_image_grid`: each sample with its caption, wrapped, underneath.
* :func:`save_semantic_grid`: each condition mask (colour-mapped, with a class legend) beside its sample.
* :func:`save_completion_grid`: each original beside its completion; a line marks the bottom of the given
  top part on both.

Images: B×3×H×W uint8, or float in ``value_range`` (default [-1, 1], what the tokenizers decode to). Pixels
are shown unsmoothed (nearest). Every figure is written to a temporary file in the target folder and renamed
into place; the functions return the path.
"""

from __future__ import annotations

import math
import os
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from lgvq_downstream.metrics.image_input import DEFAULT_RANGE, to_unit_images

__all__ = ["save_completion_grid", "save_image_grid", "save_semantic_grid", "save_text_to_image_grid"]

CELL_INCHES = 1.15  # side of one image panel
BOUNDARY_COLOUR = "#00e5ff"
# Background dark grey, then distinct colours for the classes (shapes of the synthetic scenes first).
MASK_PALETTE: tuple[str, ...] = (
    "#303030", "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0",
    "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000",
)  # fmt: skip


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("sample figures need matplotlib: pip install matplotlib") from err
    return plt


def _panels(images: Tensor, value_range: tuple[float, float], what: str = "images") -> np.ndarray:
    """B×3×H×W → B×H×W×3 float in [0, 1]."""
    return to_unit_images(images, value_range, what=what).permute(0, 2, 3, 1).cpu().numpy()


def _blank(ax: Any) -> None:
    """No ticks, no frame, but (unlike ``axis('off')``) room for an x label."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _save(fig: Any, path: str | os.PathLike[str], dpi: int) -> Path:
    """Write ``fig`` as PNG through a temporary file in the target folder, then close it."""
    plt = _pyplot()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            fig.savefig(stream, format="png", dpi=dpi)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return target


def _grid_shape(count: int, columns: int) -> tuple[int, int]:
    if count < 1:
        raise ValueError("no images to plot")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    cols = min(columns, count)
    return math.ceil(count / cols), cols


def save_image_grid(
    images: Tensor,
    path: str | os.PathLike[str],
    *,
    columns: int = 8,
    row_titles: Sequence[str] | None = None,
    title: str | None = None,
    value_range: tuple[float, float] = DEFAULT_RANGE,
    dpi: int = 100,
) -> Path:
    """Grid of ``images`` (row-major, ``columns`` per row); ``row_titles``: one title above each row."""
    plt = _pyplot()
    panels = _panels(images, value_range)
    rows, cols = _grid_shape(len(panels), columns)
    if row_titles is not None and len(row_titles) != rows:
        raise ValueError(
            f"{len(row_titles)} row titles for {rows} rows ({len(panels)} images, {cols} per row)"
        )
    title_space = 0.22 if row_titles is not None else 0.0
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(CELL_INCHES * cols, (CELL_INCHES + title_space) * rows + (0.35 if title else 0.0)),
        squeeze=False,
        layout="constrained",
    )
    if title:
        fig.suptitle(title, fontsize=10)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(panels):
            ax.imshow(panels[index], interpolation="nearest")
    for r, row_title in enumerate(row_titles or ()):
        # left-aligned over the row's first image; the text may run on over its neighbours' empty title space
        axes[r, 0].set_title(row_title, fontsize=8, loc="left")
    return _save(fig, path, dpi)


def save_text_to_image_grid(
    images: Tensor,
    captions: Sequence[str],
    path: str | os.PathLike[str],
    *,
    columns: int = 4,
    wrap: int = 26,
    title: str | None = None,
    value_range: tuple[float, float] = DEFAULT_RANGE,
    dpi: int = 100,
) -> Path:
    """Each sample with its caption (wrapped at ``wrap`` characters) underneath."""
    plt = _pyplot()
    panels = _panels(images, value_range)
    if len(captions) != len(panels):
        raise ValueError(f"{len(captions)} captions for {len(panels)} images")
    rows, cols = _grid_shape(len(panels), columns)
    texts = [textwrap.fill(str(c), wrap) for c in captions]
    lines = max(t.count("\n") + 1 for t in texts)
    cell_w = max(CELL_INCHES * 1.5, wrap * 0.075)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cell_w * cols, (CELL_INCHES * 1.5 + 0.14 * lines + 0.1) * rows + (0.35 if title else 0.0)),
        squeeze=False,
        layout="constrained",
    )
    if title:
        fig.suptitle(title, fontsize=10)
    for index, ax in enumerate(axes.flat):
        if index >= len(panels):
            ax.axis("off")
            continue
        _blank(ax)
        ax.imshow(panels[index], interpolation="nearest")
        ax.set_xlabel(texts[index], fontsize=7, loc="left", labelpad=3, linespacing=1.1)
    return _save(fig, path, dpi)


def _paired_axes(plt: Any, rows: int, cols: int, extra_height: float) -> tuple[Any, np.ndarray]:
    """A figure with ``cols`` pairs of image axes per row, a narrow empty column between pairs; returns the
    figure and the rows×cols×2 array of axes (left, right of each pair)."""
    ratios = ([1.0, 1.0, 0.18] * cols)[:-1]
    fig, grid = plt.subplots(
        rows,
        len(ratios),
        figsize=(CELL_INCHES * (2 * cols + 0.18 * (cols - 1)), (CELL_INCHES + 0.25) * rows + extra_height),
        squeeze=False,
        layout="constrained",
        gridspec_kw={"width_ratios": ratios},
    )
    for ax in grid.flat:
        ax.axis("off")
    pairs = np.empty((rows, cols, 2), dtype=object)
    for c in range(cols):
        pairs[:, c, 0] = grid[:, 3 * c]
        pairs[:, c, 1] = grid[:, 3 * c + 1]
    return fig, pairs


def _legend(fig: Any, class_names: Sequence[str], present: set[int]) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=MASK_PALETTE[c % len(MASK_PALETTE)], edgecolor="#808080", label=class_names[c])
        for c in sorted(present)
        if c < len(class_names)
    ]
    if handles:
        fig.legend(
            handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=7, frameon=False
        )


def save_semantic_grid(
    images: Tensor,
    masks: Tensor,
    path: str | os.PathLike[str],
    *,
    columns: int = 4,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    value_range: tuple[float, float] = DEFAULT_RANGE,
    dpi: int = 100,
) -> Path:
    """Each condition mask (B×h×w class ids, colour-mapped) beside its sample; ``columns`` pairs per row;
    ``class_names`` adds a legend of the classes shown."""
    plt = _pyplot()
    from matplotlib.colors import BoundaryNorm, ListedColormap

    panels = _panels(images, value_range)
    if masks.ndim != 3 or masks.shape[0] != len(panels):
        raise ValueError(f"masks must be B×h×w with B = {len(panels)} images, got shape {tuple(masks.shape)}")
    classes = masks.long().cpu().numpy()
    if classes.min() < 0 or classes.max() >= len(MASK_PALETTE):
        raise ValueError(
            f"mask class ids must be in 0..{len(MASK_PALETTE) - 1}, found {classes.min()}..{classes.max()}"
        )
    cmap = ListedColormap(MASK_PALETTE)
    norm = BoundaryNorm(np.arange(len(MASK_PALETTE) + 1) - 0.5, len(MASK_PALETTE))
    rows, cols = _grid_shape(len(panels), columns)
    fig, axes = _paired_axes(plt, rows, cols, (0.35 if title else 0.0) + (0.3 if class_names else 0.0))
    if title:
        fig.suptitle(title, fontsize=10)
    for index in range(len(panels)):
        r, c = divmod(index, cols)
        mask_ax, image_ax = axes[r, c]
        mask_ax.imshow(classes[index], cmap=cmap, norm=norm, interpolation="nearest")
        image_ax.imshow(panels[index], interpolation="nearest")
        if r == 0:
            mask_ax.set_title("condition", fontsize=8)
            image_ax.set_title("sample", fontsize=8)
    if class_names:
        _legend(fig, class_names, {int(v) for v in np.unique(classes)})
    return _save(fig, path, dpi)


def save_completion_grid(
    completions: Tensor,
    originals: Tensor,
    path: str | os.PathLike[str],
    *,
    given: int | float,
    columns: int = 4,
    title: str | None = None,
    value_range: tuple[float, float] = DEFAULT_RANGE,
    dpi: int = 100,
) -> Path:
    """Each original beside its completion; a coloured line marks the bottom of the given top part.

    ``given``: the given rows, in pixels of the images (int) or as a fraction of their height (float in
    (0, 1)); e.g. 16 or 0.5 for the top half of 32-pixel images.
    """
    plt = _pyplot()
    done = _panels(completions, value_range, "completions")
    real = _panels(originals, value_range, "originals")
    if done.shape != real.shape:
        raise ValueError(f"completions {done.shape} and originals {real.shape} differ in shape")
    height = done.shape[1]
    rows_given = given * height if isinstance(given, float) else given
    if not 0 < rows_given < height:
        raise ValueError(f"given must be inside the image (0 < rows < {height}), got {given!r}")
    rows, cols = _grid_shape(len(done), columns)
    fig, axes = _paired_axes(plt, rows, cols, 0.3 + (0.35 if title else 0.0))
    if title:
        fig.suptitle(title, fontsize=10)
    for index in range(len(done)):
        r, c = divmod(index, cols)
        for k, (ax, panel) in enumerate(((axes[r, c, 0], real[index]), (axes[r, c, 1], done[index]))):
            ax.imshow(panel, interpolation="nearest")
            ax.axhline(rows_given - 0.5, color=BOUNDARY_COLOUR, linewidth=1.5)
            if r == 0:
                ax.set_title("original" if k == 0 else "completion", fontsize=8)
    fig.supxlabel(
        f"above the line: given ({rows_given:g} of {height} pixel rows)", fontsize=7, color="#404040"
    )
    return _save(fig, path, dpi)
