"""One sample-grid PNG per evaluated generation task, from an evaluation report's examples (their code grids
decoded by the tokenizer): plain samples (unconditional), each caption under its sample (text-to-image), each
condition mask beside its sample (semantic synthesis), each original beside its completion with the given top
part marked (completion)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lgvq_downstream.tasks.generation.sampling import decode_images

__all__ = ["save_task_figures"]


def _class_names(mask_classes: int) -> list[str] | None:
    try:
        from lgvq_data.sources.synthetic import SHAPES
    except ImportError:  # pragma: no cover - lgvq_data is a dependency
        return None
    names = ["background", *SHAPES]
    return names if len(names) == mask_classes else None


def save_task_figures(
    report: dict[str, Any],
    folder: str | os.PathLike[str],
    decoder: nn.Module,
    *,
    real_by_id: Mapping[str, Tensor] | None = None,
    mask_classes: int | None = None,
) -> dict[str, Path]:
    """``<folder>/<task>.png`` for every task of ``report`` (``evaluate``'s output) with examples; returns
    task → path. ``real_by_id``: uint8 source images by row id (the completion grid shows them)."""
    from lgvq_downstream.figures.samples import (
        save_completion_grid,
        save_image_grid,
        save_semantic_grid,
        save_text_to_image_grid,
    )

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for task, result in (report.get("tasks") or {}).items():
        examples = result.get("examples") or []
        if not examples:
            continue
        images = decode_images(decoder, torch.tensor([e["indices"] for e in examples], dtype=torch.long))
        path = out / f"{task}.png"
        if task == "unconditional":
            paths[task] = save_image_grid(images, path, columns=4, title="unconditional samples")
        elif task == "text_to_image":
            paths[task] = save_text_to_image_grid(
                images, [e["caption"] for e in examples], path, columns=4, title="text-to-image samples"
            )
        elif task == "semantic":
            masks = torch.tensor([e["mask"] for e in examples], dtype=torch.long)
            names = _class_names(mask_classes or int(masks.max()) + 1)
            paths[task] = save_semantic_grid(
                images, masks, path, columns=4, class_names=names, title="semantic synthesis: mask → sample"
            )
        elif task == "completion":
            if real_by_id is None:
                continue
            originals = torch.stack([real_by_id[e["id"]] for e in examples])
            given = float(examples[0]["given_rows"]) / len(examples[0]["indices"])
            paths[task] = save_completion_grid(
                images, originals, path, given=given, columns=4, title="completion: top half given"
            )
    return paths
