"""Figure of grounding examples: each panel is the image decoded from its codes (when a tokenizer is given)
or the code grid in false colours, with the true box (green) and the predicted box (red) drawn on it and the
expression and IoU beneath. Drawn with Pillow (imported on use)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["save_grounding_png"]

TRUE_COLOUR = (40, 200, 60)
PRED_COLOUR = (230, 40, 40)


def _pictures(examples: Sequence[dict[str, Any]], tokenizer: nn.Module | None) -> list[np.ndarray]:
    """H×W×3 uint8 per example: decoded pixels, or the h×w code grid through a fixed random palette."""
    grids = torch.stack([torch.as_tensor(e["indices"], dtype=torch.long) for e in examples])
    if tokenizer is not None:
        with torch.no_grad():
            images = tokenizer.decode(grids.to(next(tokenizer.parameters()).device)).float().cpu()
        return [((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy() for img in images]
    palette = np.random.default_rng(0).integers(40, 216, size=(int(grids.max()) + 1, 3), dtype=np.uint8)
    return [palette[g.numpy()] for g in grids]


def save_grounding_png(
    examples: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    *,
    tokenizer: nn.Module | None = None,
    tile: int = 160,
    columns: int = 4,
    wrap: int = 26,
) -> Path:
    """Write a PNG grid of ``examples`` (each with ``indices`` h×w, ``true_box``/``pred_box`` normalised
    corners, ``expression``, ``iou``). ``tokenizer`` (a ``VQTokenizer``) decodes the codes to pixels.

    Raises ``ImportError`` with the install command when Pillow is missing.
    """
    if not examples:
        raise ValueError("no examples to plot")
    try:
        from PIL import Image, ImageDraw
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("grounding figures need Pillow: pip install pillow") from err
    text_height = 14 * 4  # three lines of expression + the IoU
    cols = min(columns, len(examples))
    rows = (len(examples) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (tile + 8) + 8, rows * (tile + text_height + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (example, picture) in enumerate(zip(examples, _pictures(examples, tokenizer), strict=True)):
        x, y = 8 + (k % cols) * (tile + 8), 8 + (k // cols) * (tile + text_height + 8)
        sheet.paste(Image.fromarray(picture).resize((tile, tile), Image.NEAREST), (x, y))
        for key, colour in (("true_box", TRUE_COLOUR), ("pred_box", PRED_COLOUR)):
            x0, y0, x1, y1 = (float(v) * tile for v in example[key])
            draw.rectangle(
                [x + x0, y + y0, x + max(x0, x1 - 1), y + max(y0, y1 - 1)], outline=colour, width=2
            )
        lines = textwrap.wrap(str(example.get("expression", "")), wrap)[:3]
        lines.append(f"IoU {float(example.get('iou', float('nan'))):.2f}")
        draw.multiline_text((x, y + tile + 2), "\n".join(lines), fill="black", spacing=2)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target)
    return target
