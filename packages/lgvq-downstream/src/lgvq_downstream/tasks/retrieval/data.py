"""Retrieval samples of a code-shard split: each image's codes and one of its captions, chosen by seed.

The caption of the image at global row r (storage order over all shards) is
``captions[mix64(seed, 0, r) % len(captions)]`` — the choice ``lgvq_data.ShardDataset`` makes at epoch 0, so
the pipeline's evaluate stage ranks the same texts for the same images. A row without captions or whose chosen
caption is empty raises a ``TaskDataError`` naming shard file, row and field, or (``on_error="skip"``) is
dropped and counted in :meth:`RetrievalDataset.report`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from lgvq_data.dataset import mix64
from lgvq_data.schema import COL_CAPTIONS
from lgvq_downstream.codes.errors import CodeShardError
from lgvq_downstream.codes.reader import SAMPLE_INDICES, CodeShardSet
from lgvq_downstream.tasks.common.rows import OnError, SkipReport, iter_rows, require_column

__all__ = ["RetrievalDataset", "collate_retrieval"]

TASK = "retrieval"


class RetrievalDataset(Dataset[dict[str, Any]]):
    """Images of one split with one caption each (see the module docstring).

    Args:
        codes: code-shard directory or an open :class:`CodeShardSet` (then ``split`` must be None or its own).
        split: ``"train"``, ``"val"``, ``"test"`` or None (all rows).
        seed: the caption choice.
        limit: keep the first ``limit`` usable images (storage order); 0 keeps all.
        on_error: ``"raise"`` or ``"skip"``.

    A sample is ``{"indices": h×w int64, "caption": str, "index": int}``.
    """

    def __init__(
        self,
        codes: str | os.PathLike[str] | CodeShardSet,
        split: str | None,
        *,
        seed: int = 0,
        limit: int = 0,
        on_error: OnError = "raise",
    ) -> None:
        if isinstance(codes, CodeShardSet):
            if split is not None and split != codes.split:
                raise ValueError(f"split {split!r} given for a CodeShardSet of split {codes.split!r}")
            self.codes = codes
        else:
            self.codes = CodeShardSet(codes, split)
        self.split = self.codes.split
        self.seed = seed
        self.skips = SkipReport(on_error)
        require_column(self.codes, COL_CAPTIONS, TASK)
        offsets, total = {}, 0
        for entry in self.codes.manifest.shards:
            offsets[entry.name], total = total, total + entry.rows
        self.ids: list[str] = []
        self.captions: list[str] = []
        images = []
        self.rows = 0
        for ref, sample in iter_rows(self.codes):
            if limit and len(images) >= limit:
                break
            self.rows += 1
            captions = sample.get(COL_CAPTIONS)
            if not isinstance(captions, list) or not captions:
                self.skips.handle(ref.error(COL_CAPTIONS, f"expected at least one caption, got {captions!r}"))
                continue
            j = mix64(seed, 0, offsets[Path(ref.file).name] + ref.row) % len(captions)
            caption = captions[j]
            if not isinstance(caption, str) or not caption.strip():
                self.skips.handle(ref.error(f"{COL_CAPTIONS}[{j}]", f"empty caption {caption!r}"))
                continue
            self.ids.append(ref.row_id)
            self.captions.append(caption)
            images.append(sample[SAMPLE_INDICES])
        if not images:
            raise CodeShardError(
                f"{self.codes.root}: split {self.split!r} has no usable images with captions "
                f"({self.rows} rows, {self.skips.total} skipped)"
            )
        self.images = torch.stack(images)  # N×h×w int64

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"indices": self.images[index], "caption": self.captions[index], "index": index}

    def report(self) -> dict[str, Any]:
        """Rows read, images kept, distinct caption texts and skipped bad input."""
        return {
            "codes": str(self.codes.root),
            "split": self.split,
            "rows": self.rows,
            "images": len(self),
            "distinct_captions": len(set(self.captions)),
            "bad_input": self.skips.to_dict(),
        }


def collate_retrieval(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Samples → ``{"indices": B×h×w, "captions": list[str], "index": B}``."""
    if not samples:
        raise ValueError("collate_retrieval got no samples")
    return {
        "indices": torch.stack([s["indices"] for s in samples]),
        "captions": [s["caption"] for s in samples],
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
    }
