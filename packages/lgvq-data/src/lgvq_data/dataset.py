"""PyTorch datasets over shard directories and the collate that builds the batch dict.

- :class:`ShardDataset`: map-style, random access over memory-mapped shards (one split).
- :class:`ShardIterableDataset`: streams one split; every epoch a (seed, epoch) permutation of the split's
  rows is dealt round-robin to the ``world_size × num_workers`` consumers (``torch.distributed`` rank ×
  DataLoader worker), so the consumers together see every row exactly once (no duplicates, no gaps). Rows, not
  whole shards, are dealt: memory-mapped random access makes that cheap and balances consumers to ±1 row.
- :func:`collate`: list of samples → batch dict (keys in :mod:`lgvq_data.schema`).

Per-sample randomness is a pure function of (seed, epoch, row): the caption index comes from a 64-bit mix of
the three numbers, random crop/flip from ``numpy.random.default_rng([seed, epoch, row])``, so it is identical
whichever worker or rank loads the row. Samples hold decoded, transformed PIL images; :func:`collate` converts
the batch to float [-1, 1] in one vectorised op (it runs inside DataLoader workers, so only tensors cross
processes). Call ``set_epoch(epoch)`` before each epoch (with ``persistent_workers=False``, the default,
DataLoader workers pick it up).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from lgvq_data.schema import (
    BATCH_ALL_CAPTIONS,
    BATCH_BOX_LABELS,
    BATCH_BOXES,
    BATCH_CAPTIONS,
    BATCH_IDS,
    BATCH_IMAGES,
    BATCH_MASKS,
    BATCH_QA,
    BATCH_REFS,
    COL_BOXES,
    COL_CAPTIONS,
    COL_ID,
    COL_IMAGE,
    COL_MASK,
    COL_QA,
    COL_REFS,
)
from lgvq_data.shards import ShardSet
from lgvq_data.transforms import ImageTransform, decode_image, images_to_batch

Sample = dict[str, Any]
_MASK64 = (1 << 64) - 1


def mix64(*values: int) -> int:
    """Deterministic 64-bit hash of integers (splitmix64 steps); cheap per-sample randomness."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        state = (state ^ (state >> 31)) * 0x94D049BB133111EB & _MASK64
        state ^= state >> 29
    return state


class ShardDataset(Dataset[Sample]):
    """Map-style dataset over one split of a shard directory.

    Args:
        root: shard directory (with ``manifest.json``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` for all rows.
        image_size: output side when ``transform`` is not given (resize shorter side + center crop).
        transform: an :class:`ImageTransform`.
        seed: seed of the per-(epoch, row) caption choice and augmentation.
        annotations: which optional columns to load when present: ``True`` (all of ``"boxes"``, ``"mask"``,
            ``"qa"``, ``"refs"``), ``False`` (none: fastest, image + captions only) or a subset.
        verify: check manifest row counts and sha256 on open.
        val_from_train, split_seed: carve a seeded validation split out of ``train`` for data without one
            (:meth:`lgvq_data.shards.ShardSet.split_indices`); 0 = the stored splits as they are.

    A sample is a dict: ``image`` (RGB PIL image, size×size; :func:`collate` makes the float batch),
    ``caption`` (str, chosen per seed/epoch/row), ``captions`` (all), ``id``; with annotations: ``boxes``
    (n×4 float32 pixels of the output image), ``box_labels``, ``mask`` (int64 H×W, when the row has one),
    ``qa`` and ``refs`` (lists of tuples).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = "train",
        image_size: int = 64,
        transform: ImageTransform | None = None,
        seed: int = 0,
        annotations: bool | Collection[str] = True,
        verify: bool = False,
        val_from_train: float = 0.0,
        split_seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform or ImageTransform(size=image_size)
        self.seed = seed
        self.annotations = _annotation_set(annotations)
        self.epoch = 0
        self._shards: ShardSet | None = ShardSet.open(self.root, verify=verify)
        self.indices = np.asarray(
            self._shards.split_indices(split, val_from_train=val_from_train, split_seed=split_seed),
            dtype=np.int64,
        )
        self._locations = self._build_locations(self._shards, self.indices)
        self._columns: list[dict[str, Any]] | None = None

    @staticmethod
    def _build_locations(shards: ShardSet, indices: np.ndarray) -> np.ndarray:
        offsets = np.asarray(shards.offsets, dtype=np.int64)
        shard_ids = np.searchsorted(offsets, indices, side="right") - 1
        return (
            np.stack([shard_ids, indices - offsets[shard_ids]], axis=1)
            if len(indices)
            else np.zeros((0, 2), np.int64)
        )

    @property
    def shards(self) -> ShardSet:
        """The memory-mapped shards (re-opened lazily after pickling into a worker process)."""
        if self._shards is None:
            self._shards = ShardSet.open(self.root)
        return self._shards

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_shards"] = None  # never pickle memory-mapped tables; workers re-open the files
        state["_columns"] = None
        return state

    def _column_arrays(self) -> list[dict[str, Any]]:
        """Per shard, its columns as single contiguous Arrow arrays (zero-copy over the mapped file)."""
        if self._columns is None:
            self._columns = [
                {
                    name: (column.chunk(0) if column.num_chunks == 1 else column.combine_chunks())
                    for name, column in zip(table.column_names, table.columns, strict=False)
                }
                for table in self.shards.tables
            ]
        return self._columns

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose caption choices and augmentations are used."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> Sample:
        try:
            shard_id, row = self._locations[position].tolist()
        except IndexError:
            raise IndexError(f"index {position} out of range for {len(self)} rows") from None
        columns = self._column_arrays()[shard_id]
        global_row = int(self.indices[position])
        captions: list[str] = columns[COL_CAPTIONS][row].as_py()
        caption = captions[mix64(self.seed, self.epoch, global_row) % len(captions)]
        transform = self.transform
        rng = (
            np.random.default_rng([self.seed, self.epoch, global_row])
            if transform.crop == "random" or transform.hflip
            else None
        )
        image = decode_image(columns[COL_IMAGE][row].as_py())
        sample: Sample = {"id": columns[COL_ID][row].as_py(), "caption": caption, "captions": captions}
        if not self.annotations:
            sample["image"] = transform(image, rng).image
            return sample
        wanted = self.annotations
        boxes = columns[COL_BOXES][row].as_py() if "boxes" in wanted else None
        mask_bytes = columns[COL_MASK][row].as_py() if "mask" in wanted else None
        mask = decode_image(mask_bytes, mode="L") if mask_bytes is not None else None
        box_array = (
            np.asarray([[b["x0"], b["y0"], b["x1"], b["y1"]] for b in boxes], dtype=np.float32).reshape(-1, 4)
            if boxes is not None
            else None
        )
        out = transform(image, rng, mask=mask, boxes=box_array)
        sample["image"] = out.image
        if out.mask is not None:
            sample["mask"] = out.mask
        if boxes is not None:
            sample["boxes"] = out.boxes
            sample["box_labels"] = [b["label"] for b in boxes]
        qa = columns[COL_QA][row].as_py() if "qa" in wanted else None
        if qa is not None:
            sample["qa"] = [(q["question"], q["answer"]) for q in qa]
        refs = columns[COL_REFS][row].as_py() if "refs" in wanted else None
        if refs is not None:
            sample["refs"] = [(r["expression"], int(r["box_index"])) for r in refs]
        return sample


ANNOTATIONS: frozenset[str] = frozenset({"boxes", "mask", "qa", "refs"})


def _annotation_set(annotations: bool | Collection[str]) -> frozenset[str]:
    if annotations is True:
        return ANNOTATIONS
    if annotations is False:
        return frozenset()
    chosen = frozenset(annotations)
    unknown = chosen - ANNOTATIONS
    if unknown:
        raise ValueError(f"unknown annotations {sorted(unknown)}; choose from {sorted(ANNOTATIONS)}")
    if "refs" in chosen and "boxes" not in chosen:
        raise ValueError("annotations: 'refs' index into 'boxes'; request both")
    return chosen


def _distributed_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardIterableDataset(IterableDataset[Sample]):
    """Streaming variant of :class:`ShardDataset` for distributed training (see module doc).

    Args (besides those of :class:`ShardDataset`):
        shuffle: permute rows per (seed, epoch); otherwise storage order.
        rank, world_size: override the ``torch.distributed`` values (default: read them when initialised).
        even: drop the last ``len % world_size`` rows of the epoch's order so every rank yields the same
            number of rows (DDP needs equal step counts); ``False`` keeps every row.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = "train",
        image_size: int = 64,
        transform: ImageTransform | None = None,
        seed: int = 0,
        annotations: bool | Collection[str] = True,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        even: bool = False,
        val_from_train: float = 0.0,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        self.base = ShardDataset(
            root,
            split,
            image_size,
            transform,
            seed,
            annotations,
            val_from_train=val_from_train,
            split_seed=split_seed,
        )
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.even = even
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: its permutation, caption choices and augmentations."""
        self.epoch = int(epoch)
        self.base.set_epoch(epoch)

    def epoch_order(self) -> np.ndarray:
        """Positions (into the split) in this epoch's order, before dealing to consumers."""
        n = len(self.base)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 0x5EED]).permutation(n)
        else:
            order = np.arange(n)
        return order

    def assigned_positions(self, worker_id: int | None = None, num_workers: int | None = None) -> np.ndarray:
        """Positions this consumer (rank, worker) yields this epoch."""
        rank, world = _distributed_rank_world()
        rank = self.rank if self.rank is not None else rank
        world = self.world_size if self.world_size is not None else world
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} not in [0, {world})")
        if worker_id is None or num_workers is None:
            info = get_worker_info()
            worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        order = self.epoch_order()
        if self.even:
            order = order[: len(order) - len(order) % world]
        per_rank = order[rank::world]
        return per_rank[worker_id::num_workers]

    def __len__(self) -> int:
        """Rows this rank yields per epoch (all its workers together)."""
        rank, world = _distributed_rank_world()
        rank = self.rank if self.rank is not None else rank
        world = self.world_size if self.world_size is not None else world
        n = len(self.base) - (len(self.base) % world if self.even else 0)
        return len(range(rank, n, world))

    def __iter__(self) -> Iterator[Sample]:
        for position in self.assigned_positions():
            yield self.base[int(position)]


def collate(samples: list[Sample], images_dtype: str = "float32") -> dict[str, Any]:
    """Samples → batch dict: ``images`` float32 B×3×H×W in [-1, 1] (uint8 sample images are rescaled),
    ``captions`` (one per image), ``ids``,
    ``all_captions``; when every sample has them: ``boxes`` (list of n_i×4), ``box_labels``, ``masks``
    (int64 B×H×W), ``qa`` and ``refs``.

    ``images_dtype="uint8"`` (e.g. ``functools.partial(collate, images_dtype="uint8")``) keeps 0..255 uint8
    images for conversion on the accelerator with :func:`lgvq_data.transforms.to_unit_range` — 4× less data to
    move and no float work in the loader; the default gives the documented float32 [-1, 1] batch."""
    if not samples:
        raise ValueError("collate got an empty list of samples")
    batch: dict[str, Any] = {
        BATCH_IMAGES: images_to_batch([s["image"] for s in samples], dtype=images_dtype),
        BATCH_CAPTIONS: [s["caption"] for s in samples],
        BATCH_IDS: [s["id"] for s in samples],
        BATCH_ALL_CAPTIONS: [s["captions"] for s in samples],
    }
    if all("boxes" in s for s in samples):
        batch[BATCH_BOXES] = [s["boxes"] for s in samples]
        batch[BATCH_BOX_LABELS] = [s["box_labels"] for s in samples]
    if all("mask" in s for s in samples):
        batch[BATCH_MASKS] = torch.stack([s["mask"] for s in samples])
    if all("qa" in s for s in samples):
        batch[BATCH_QA] = [s["qa"] for s in samples]
    if all("refs" in s for s in samples):
        batch[BATCH_REFS] = [s["refs"] for s in samples]
    return batch
