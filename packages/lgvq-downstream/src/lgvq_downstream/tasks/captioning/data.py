"""Captioning data from a code-shard set: per image its codes and reference captions
(:func:`collect_images`), and the (image, caption) pairs of teacher forcing (:class:`CaptionPairs`).

Bad input, under the ``on_error`` policy of a :class:`SkipReport`: a set without a ``captions`` column is
always an error; a row without captions, an empty caption, or (for training) a caption longer than
``max_caption_tokens`` model tokens raises ``TaskDataError`` naming the shard file, row and field — or, with
``"skip"``, that caption (a row left without captions: that row) is dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lgvq_data.schema import COL_CAPTIONS
from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.tasks.common.rows import RowRef, SkipReport, iter_rows, require_column
from lgvq_downstream.tasks.common.text import TextVocab, pad_sequences

__all__ = ["CaptionBatchCollator", "CaptionImages", "CaptionPairs", "collect_images"]


@dataclass
class CaptionImages:
    """The usable images of a split: ``codes`` N×h×w int64, and per image its id, location and captions
    (original item index, text)."""

    codes: Tensor
    ids: list[str] = field(default_factory=list)
    rows: list[RowRef] = field(default_factory=list)
    captions: list[list[tuple[int, str]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def references(self) -> list[list[str]]:
        return [[text for _, text in caps] for caps in self.captions]


def collect_images(dataset: CodeShardSet, skips: SkipReport) -> CaptionImages:
    """Codes and non-empty captions of every row of ``dataset`` (see module docstring for bad input)."""
    require_column(dataset, COL_CAPTIONS, "captioning")
    codes: list[Tensor] = []
    out = CaptionImages(codes=torch.empty(0, *dataset.grid, dtype=torch.long))
    for ref, sample in iter_rows(dataset):
        captions = sample.get(COL_CAPTIONS)
        if not captions:
            skips.handle(ref.error(COL_CAPTIONS, "no captions (null or empty list)"))
            continue
        kept = []
        for j, text in enumerate(captions):
            if not isinstance(text, str) or not text.strip():
                skips.handle(ref.error(f"{COL_CAPTIONS}[{j}]", "empty caption"))
                continue
            kept.append((j, text))
        if not kept:
            continue
        codes.append(sample["indices"])
        out.ids.append(ref.row_id)
        out.rows.append(ref)
        out.captions.append(kept)
    if codes:
        out.codes = torch.stack(codes)
    return out


class CaptionPairs(Dataset[dict[str, Any]]):
    """Every (image, caption) pair, tokenized: item → ``{"codes": h×w int64, "tokens": [BOS … EOS]}``."""

    def __init__(self, images: CaptionImages, vocab: TextVocab, max_tokens: int, skips: SkipReport) -> None:
        self.codes = images.codes
        self.pairs: list[tuple[int, list[int]]] = []
        for i, (ref, captions) in enumerate(zip(images.rows, images.captions, strict=True)):
            for j, text in captions:
                tokens = vocab.encode(text)
                if len(tokens) > max_tokens:
                    skips.handle(
                        ref.error(
                            f"{COL_CAPTIONS}[{j}]",
                            f"{len(tokens)} tokens (BOS/EOS included) > max_caption_tokens {max_tokens}",
                        )
                    )
                    continue
                if len(tokens) <= 2:
                    skips.handle(ref.error(f"{COL_CAPTIONS}[{j}]", "no text tokens"))
                    continue
                self.pairs.append((i, tokens))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, tokens = self.pairs[index]
        return {"codes": self.codes[image], "tokens": tokens}


class CaptionBatchCollator:
    """Items → ``{"codes": B×h×w, "tokens": B×T, "mask": B×T bool}`` (right-padded with ``pad_id``)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Tensor]:
        tokens, mask = pad_sequences([item["tokens"] for item in items], self.pad_id)
        return {"codes": torch.stack([item["codes"] for item in items]), "tokens": tokens, "mask": mask}
