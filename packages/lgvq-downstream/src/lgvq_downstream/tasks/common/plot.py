"""Example figures: one panel per example — the image decoded from its codes (when a tokenizer is given) or
the code grid itself — with lines of text beneath. Needs matplotlib (optional; imported on use)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["save_examples_png"]


def _panels(examples: Sequence[dict[str, Any]], tokenizer: nn.Module | None) -> list[Any]:
    """H×W×3 float images in [0, 1] (decoded) or h×w code grids (no tokenizer)."""
    grids = torch.stack([torch.as_tensor(e["indices"], dtype=torch.long) for e in examples])
    if tokenizer is None:
        return [g.numpy() for g in grids]
    with torch.no_grad():
        images = tokenizer.decode(grids.to(next(tokenizer.parameters()).device)).float().cpu()
    return [((img.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy() for img in images]


def save_examples_png(
    examples: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    lines: Callable[[dict[str, Any]], list[str]],
    *,
    tokenizer: nn.Module | None = None,
    columns: int = 4,
    wrap: int = 34,
) -> Path:
    """Write a PNG grid of ``examples`` (each with ``indices``, h×w) captioned by ``lines(example)``.

    ``tokenizer`` (a ``VQTokenizer``) decodes the codes to pixels; without it the code grid is shown.
    Raises ``ImportError`` with the install command when matplotlib is missing.
    """
    if not examples:
        raise ValueError("no examples to plot")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("example figures need matplotlib: pip install matplotlib") from err
    panels = _panels(examples, tokenizer)
    texts = ["\n".join(textwrap.fill(line, wrap) for line in lines(example)) for example in examples]
    cols = min(columns, len(examples))
    rows = (len(examples) + cols - 1) // cols
    # Each row of images gets a text band below it as tall as its longest text, so no text runs into the
    # next row's titles.
    line_height = 0.14  # inches per 7-pt line
    bands = [
        line_height * (1 + max(t.count("\n") + 1 for t in texts[r * cols : (r + 1) * cols])) for r in range(rows)
    ]
    image_height = 3.0
    ratios = [h for band in bands for h in (image_height, band)]
    fig, axes = plt.subplots(
        2 * rows,
        cols,
        figsize=(3.2 * cols, sum(ratios) + 0.3 * rows),
        squeeze=False,
        gridspec_kw={"height_ratios": ratios},
    )
    for ax in axes.flat:
        ax.axis("off")
    for index, (example, panel, text) in enumerate(zip(examples, panels, texts, strict=True)):
        r, c = divmod(index, cols)
        image_ax, text_ax = axes[2 * r, c], axes[2 * r + 1, c]
        image_ax.imshow(panel, interpolation="nearest", cmap=None if panel.ndim == 3 else "viridis")
        image_ax.set_title(str(example.get("id", "")), fontsize=8)
        text_ax.text(0.0, 1.0, text, transform=text_ax.transAxes, va="top", ha="left", fontsize=7)
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
