"""PNG figures of the evaluate and report stages (matplotlib, Agg backend, atomic writes).

Images passed in are float tensors in [-1, 1] (B×3×H×W), as the lgvq batch dict holds them.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (temp file in the same folder, then rename); closes it."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


def tile(images: Tensor, columns: int, pad: int = 1) -> np.ndarray:
    """N×3×H×W in [-1, 1] → one H'×W'×3 uint8 mosaic of ``columns`` columns (white padding of ``pad`` px)."""
    n, _, h, w = images.shape
    rows = max(1, math.ceil(n / columns))
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, dtype=np.uint8)
    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top : top + h, left : left + w] = pixels[i]
    return canvas


def reconstruction_grid(originals: Tensor, reconstructions: Tensor, path: str | os.PathLike[str]) -> Path:
    """Originals (top row) over their reconstructions (bottom row); both N×3×H×W in [-1, 1]."""
    if originals.shape != reconstructions.shape:
        raise ValueError(f"shapes differ: {tuple(originals.shape)} vs {tuple(reconstructions.shape)}")
    n = originals.shape[0]
    mosaic = tile(torch.cat([originals, reconstructions]), columns=n)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(3.0, 1.1 * n), 2.6), constrained_layout=True)
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([mosaic.shape[0] * 0.25, mosaic.shape[0] * 0.75], ["original", "reconstruction"])
    ax.set_xticks([])
    return save_figure(fig, path)


def usage_histogram(counts: Sequence[float], path: str | os.PathLike[str], title: str = "") -> Path:
    """Code counts over the evaluation set, sorted in decreasing order (a bar per code, log y)."""
    values = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    used = int((values > 0).sum())
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3), constrained_layout=True)
    ax.bar(np.arange(len(values)), np.maximum(values, 0.5), width=1.0, color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xlabel("code rank (most used first)")
    ax.set_ylabel("selections (log)")
    ax.set_title(f"{title} codebook usage: {used}/{len(values)} codes used".strip(), fontsize=9)
    return save_figure(fig, path)


def codebook_tiles(patches: Tensor, path: str | os.PathLike[str], title: str = "") -> Path:
    """K decoded code patches (K×3×p×p in [-1, 1]) tiled in a ⌈√K⌉-wide square, code 0 top left."""
    k = patches.shape[0]
    mosaic = tile(patches, columns=max(1, math.ceil(math.sqrt(k))), pad=0)
    plt = _pyplot()
    side = min(12.0, max(5.0, mosaic.shape[1] / 50))
    fig, ax = plt.subplots(
        figsize=(side, side * mosaic.shape[0] / mosaic.shape[1] + 0.4), constrained_layout=True
    )
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{title} codebook: each of the {k} codes decoded".strip(), fontsize=9)
    return save_figure(fig, path)


def training_curves(
    curves: Mapping[str, Mapping[bool, tuple[Sequence[float], Sequence[float]]]],
    path: str | os.PathLike[str],
    ylabel: str = "reconstruction loss",
) -> Path:
    """One subplot per base, an LG-off and an LG-on curve each: ``curves[base][lg] = (steps, values)``.

    A base without any curve still gets its (empty, labelled) subplot so the figure's layout is fixed.
    """
    plt = _pyplot()
    names = list(curves)
    columns = min(4, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.4 * columns, 2.8 * rows), squeeze=False, constrained_layout=True
    )
    for ax in axes.flat[len(names) :]:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, names, strict=False):
        for lg, (steps, values) in sorted(curves[name].items()):
            ax.plot(steps, values, label="+LG" if lg else "base", color="tab:orange" if lg else "tab:blue")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel, fontsize=8)
        if curves[name]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, color="gray")
    return save_figure(fig, path)
