"""Training and evaluation examples of the generation tasks: each row's code grid, its captions and its
class-id mask (decoded from the row's PNG), checked once when the examples are collected."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from lgvq_downstream.codes.reader import SAMPLE_INDICES, CodeShardSet
from lgvq_downstream.tasks.common.rows import SkipReport, iter_rows, require_column

__all__ = ["GenerationExamples", "collate_generation", "collect_examples", "decode_mask"]


def decode_mask(data: bytes) -> np.ndarray:
    """PNG bytes of a class-id mask → H×W uint8 array (``ValueError`` when it is not a one-channel PNG)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"a class-id mask must be a one-channel PNG, got mode {image.mode!r}")
        array = np.asarray(image)
    if array.ndim != 2:
        raise ValueError(f"a class-id mask must be H×W, got shape {array.shape}")
    return array.astype(np.uint8)


@dataclass
class GenerationExamples(Dataset[dict[str, Any]]):
    """Rows usable for generation, in dataset order: ``codes`` N×h×w int64, ``captions`` (per row), ``masks``
    N×H×W uint8 (or None without the mask condition), ``ids`` and ``positions`` (rows of the code set)."""

    codes: Tensor
    captions: list[list[str]]
    masks: Tensor | None
    ids: list[str]
    positions: list[int]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"codes": self.codes[index], "captions": self.captions[index]}
        if self.masks is not None:
            item["mask"] = self.masks[index]
        return item

    @property
    def mask_classes(self) -> int:
        """1 + the largest class id of the masks (0 without masks)."""
        return int(self.masks.max()) + 1 if self.masks is not None and len(self.masks) else 0


def collect_examples(
    dataset: CodeShardSet,
    skips: SkipReport,
    *,
    need_text: bool,
    need_mask: bool,
    mask_classes: int | None = None,
    limit: int | None = None,
) -> GenerationExamples:
    """The usable rows of ``dataset`` (at most ``limit``). A row lacking a caption (``need_text``) or with a
    missing, undecodable, wrongly sized or out-of-range mask (``need_mask``; ids must be < ``mask_classes``
    when given) is a ``TaskDataError`` naming the file, row and field — raised or skipped per ``skips``."""
    if need_text:
        require_column(dataset, "captions", "text-to-image")
    if need_mask:
        require_column(dataset, "mask", "semantic synthesis")
    h, w = dataset.grid
    codes: list[Tensor] = []
    captions: list[list[str]] = []
    masks: list[np.ndarray] = []
    ids: list[str] = []
    positions: list[int] = []
    mask_shape: tuple[int, int] | None = None
    for ref, sample in iter_rows(dataset):
        if limit is not None and len(ids) >= limit:
            break
        texts = [c for c in (sample.get("captions") or []) if isinstance(c, str) and c.strip()]
        if need_text and not texts:
            skips.handle(ref.error("captions", "no non-empty caption"))
            continue
        mask = None
        if need_mask:
            raw = sample.get("mask")
            if raw is None:
                skips.handle(ref.error("mask", "missing (semantic synthesis needs a class-id mask)"))
                continue
            try:
                mask = decode_mask(raw)
            except (OSError, ValueError) as err:
                skips.handle(ref.error("mask", f"cannot decode: {err}"))
                continue
            if mask.shape[0] % h or mask.shape[1] % w:
                skips.handle(
                    ref.error(
                        "mask",
                        f"size {mask.shape[0]}×{mask.shape[1]} is not a multiple of the code grid {h}×{w}",
                    )
                )
                continue
            if mask_shape is not None and mask.shape != mask_shape:
                skips.handle(
                    ref.error("mask", f"size {mask.shape} differs from the first row's {mask_shape}")
                )
                continue
            if mask_classes is not None and int(mask.max()) >= mask_classes:
                skips.handle(
                    ref.error(
                        "mask", f"class id {int(mask.max())} outside the trained range 0..{mask_classes - 1}"
                    )
                )
                continue
            mask_shape = mask.shape
            masks.append(mask)
        codes.append(sample[SAMPLE_INDICES])
        captions.append(texts)
        ids.append(ref.row_id)
        positions.append(ref.position)
    stacked = torch.stack(codes) if codes else torch.zeros(0, h, w, dtype=torch.long)
    mask_tensor = torch.from_numpy(np.stack(masks)).long() if need_mask and masks else None
    return GenerationExamples(stacked, captions, mask_tensor, ids, positions)


def collate_generation(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Examples → ``{"codes": B×h×w, "captions": B strings (one drawn per row from torch's RNG, so a
    seeded or resumed run draws the same), "masks": B×H×W or absent}``."""
    picks = [int(torch.randint(len(item["captions"]), ())) if item["captions"] else -1 for item in items]
    batch: dict[str, Any] = {
        "codes": torch.stack([item["codes"] for item in items]),
        "captions": [item["captions"][p] if p >= 0 else "" for item, p in zip(items, picks)],
    }
    if "mask" in items[0]:
        batch["masks"] = torch.stack([item["mask"] for item in items])
    return batch
