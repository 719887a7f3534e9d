"""Figures of the downstream tasks (matplotlib, imported on use)."""

from lgvq_downstream.figures.samples import (
    save_completion_grid,
    save_image_grid,
    save_semantic_grid,
    save_text_to_image_grid,
)

__all__ = ["save_completion_grid", "save_image_grid", "save_semantic_grid", "save_text_to_image_grid"]
