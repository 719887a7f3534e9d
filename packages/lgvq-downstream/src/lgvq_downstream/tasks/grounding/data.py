"""Grounding examples of a code-shard split: one per referring expression (``refs[i]``), with its image's
codes and its box in the preprocessed frame (normalised ``x0, y0, x1, y1``; see :mod:`.boxes`).

Bad input — the shards lack ``refs``/``boxes``/``width``/``height``, an expression is empty or longer than
``max_text_tokens``, ``box_index`` points nowhere, a box is empty or lies outside the stored image — raises a
``TaskDataError`` naming shard file, row and field, or (``on_error="skip"``) drops that expression and counts
it in :meth:`GroundingDataset.report`. Rows without ``refs`` and boxes that the center crop cuts away entirely
are not errors; they are counted too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lgvq_data.schema import COL_BOXES, COL_HEIGHT, COL_REFS, COL_WIDTH
from lgvq_downstream.codes.errors import CodeShardError
from lgvq_downstream.codes.reader import SAMPLE_INDICES, CodeShardSet
from lgvq_downstream.tasks.common.rows import OnError, RowRef, SkipReport, iter_rows, require_column
from lgvq_downstream.tasks.common.text import TextVocab
from lgvq_downstream.tasks.grounding.boxes import PreprocessedFrame, box_problem, xyxy_to_cxcywh

__all__ = ["GroundingDataset", "GroundingItem", "collate_grounding"]

logger = logging.getLogger(__name__)

TASK = "grounding"
REQUIRED_COLUMNS = (COL_WIDTH, COL_HEIGHT, COL_BOXES, COL_REFS)


@dataclass(frozen=True)
class GroundingItem:
    """One referring expression: where it comes from, its text and its target box (normalised corners)."""

    file: str
    row: int
    row_id: str
    ref: int
    expression: str
    box: tuple[float, float, float, float]
    image: int  # slot in GroundingDataset.images


class GroundingDataset(Dataset[dict[str, Any]]):
    """Referring expressions of one split of a code-shard directory.

    Args:
        codes: code-shard directory, or an open :class:`CodeShardSet` (then ``split`` must be None or equal
            its split).
        split: ``"train"``, ``"val"``, ``"test"`` or None (all rows).
        tokenizer: the text tokenizer (``tasks.common.text.load_text_tokenizer``); expressions are stored as
            its WordPiece ids and mapped to model ids by the model's :class:`TextVocab` when batched.
        max_text_tokens: longest expression, [CLS] and [SEP] included.
        on_error: ``"raise"`` or ``"skip"`` (see the module docstring).

    A sample is ``{"codes": h×w int64, "pieces": list[int] WordPiece ids, "box": 4 float32, "index": int}``.
    """

    def __init__(
        self,
        codes: str | os.PathLike[str] | CodeShardSet,
        split: str | None,
        tokenizer: Any,
        *,
        max_text_tokens: int = 40,
        on_error: OnError = "raise",
    ) -> None:
        if isinstance(codes, CodeShardSet):
            if split is not None and split != codes.split:
                raise ValueError(f"split {split!r} given for a CodeShardSet of split {codes.split!r}")
            self.codes = codes
        else:
            self.codes = CodeShardSet(codes, split)
        self.split = self.codes.split
        self.tokenizer = tokenizer
        self.max_text_tokens = max_text_tokens
        self.skips = SkipReport(on_error)
        for column in REQUIRED_COLUMNS:
            require_column(self.codes, column, TASK)
        self.items: list[GroundingItem] = []
        self._pieces: list[list[int]] = []
        images: list[Tensor] = []
        self.rows = self.rows_without_refs = self.cropped_out = 0
        preprocessing = self.codes.manifest.preprocessing
        for ref, sample in iter_rows(self.codes):
            self.rows += 1
            kept = self._read_row(ref, sample, preprocessing, len(images))
            if kept:
                images.append(sample[SAMPLE_INDICES])
        if not self.items:
            raise CodeShardError(
                f"{self.codes.root}: split {self.split!r} has no usable referring expressions in field "
                f"{COL_REFS!r} ({self.rows} rows, {self.rows_without_refs} without refs, "
                f"{self.skips.total} skipped, {self.cropped_out} boxes cropped away)"
            )
        self.images = torch.stack(images)  # n_images×h×w int64
        self.boxes = torch.tensor([item.box for item in self.items], dtype=torch.float32)  # N×4
        self.image_index = torch.tensor([item.image for item in self.items], dtype=torch.long)  # N
        if self.skips.total or self.cropped_out:
            logger.warning(
                "%s (%s): %d expressions skipped %s, %d boxes cropped away",
                self.codes.root,
                self.split,
                self.skips.total,
                dict(self.skips.counts),
                self.cropped_out,
            )

    def _read_row(self, ref: RowRef, sample: dict[str, Any], preprocessing: dict[str, Any], slot: int) -> int:
        """Append the row's usable expressions; returns how many."""
        refs = sample.get(COL_REFS)
        if not refs:
            self.rows_without_refs += 1
            return 0
        width, height = sample.get(COL_WIDTH), sample.get(COL_HEIGHT)
        for name, value in ((COL_WIDTH, width), (COL_HEIGHT, height)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self.skips.handle(ref.error(name, f"expected a positive int, got {value!r}"))
                return 0
        frame = PreprocessedFrame.of(width, height, preprocessing)
        boxes = sample.get(COL_BOXES) or []
        kept = 0
        for i, item in enumerate(refs):
            expression = item.get("expression") if isinstance(item, dict) else None
            field = f"{COL_REFS}[{i}]"
            if not isinstance(expression, str) or not expression.strip():
                self.skips.handle(ref.error(f"{field}.expression", f"empty expression {expression!r}"))
                continue
            pieces = TextVocab.wordpieces_of(self.tokenizer, expression)
            if not pieces:
                self.skips.handle(ref.error(f"{field}.expression", f"no tokens in {expression!r}"))
                continue
            if len(pieces) + 2 > self.max_text_tokens:
                self.skips.handle(
                    ref.error(
                        f"{field}.expression",
                        f"{len(pieces) + 2} tokens ([CLS]/[SEP] included) > max_text_tokens "
                        f"{self.max_text_tokens}",
                    )
                )
                continue
            index = item.get("box_index")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(boxes):
                self.skips.handle(
                    ref.error(f"{field}.box_index", f"{index!r} is not an index into {len(boxes)} boxes")
                )
                continue
            box = boxes[index] or {}
            corners = [box.get(k) for k in ("x0", "y0", "x1", "y1")]
            problem = box_problem(corners, width, height)
            if problem is not None:
                self.skips.handle(ref.error(f"{COL_BOXES}[{index}]", problem))
                continue
            target = frame.normalise(corners)  # type: ignore[arg-type]
            if target[2] <= target[0] or target[3] <= target[1]:
                self.cropped_out += 1
                logger.debug(
                    "%s row %d: box %d lies outside the center crop; dropped", ref.file, ref.row, index
                )
                continue
            self.items.append(GroundingItem(ref.file, ref.row, ref.row_id, i, expression, target, slot))
            self._pieces.append(pieces)
            kept += 1
        return kept

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        return {
            "codes": self.images[item.image],
            "pieces": self._pieces[index],
            "box": self.boxes[index],
            "index": index,
        }

    @property
    def expressions(self) -> list[str]:
        return [item.expression for item in self.items]

    def mean_box(self) -> Tensor:
        """Mean target (cx, cy, w, h), normalised: the mean-box baseline."""
        return xyxy_to_cxcywh(self.boxes).mean(dim=0)

    def report(self) -> dict[str, Any]:
        """Counts of rows, expressions, rows without refs, cropped-away boxes and skipped bad input."""
        return {
            "codes": str(self.codes.root),
            "split": self.split,
            "rows": self.rows,
            "images": int(self.images.shape[0]),
            "expressions": len(self.items),
            "rows_without_refs": self.rows_without_refs,
            "boxes_cropped_away": self.cropped_out,
            "bad_input": self.skips.to_dict(),
        }


def collate_grounding(samples: list[dict[str, Any]], vocab: TextVocab) -> dict[str, Any]:
    """Samples → ``{"codes": B×h×w, "tokens": B×T, "text_mask": B×T bool, "boxes": B×4, "index": B}``
    (tokens ``BOS … EOS`` in ``vocab``'s ids, right-padded)."""
    if not samples:
        raise ValueError("collate_grounding got no samples")
    tokens, mask = vocab.pad([vocab.from_wordpieces(s["pieces"]) for s in samples])
    return {
        "codes": torch.stack([s["codes"] for s in samples]),
        "tokens": tokens,
        "text_mask": mask,
        "boxes": torch.stack([s["box"] for s in samples]),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
    }
