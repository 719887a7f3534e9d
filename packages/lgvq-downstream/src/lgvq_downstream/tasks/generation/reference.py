"""The real images a generation evaluation compares with: the source rows of the evaluated code rows, decoded
and resized as the tokenizer saw them (the code manifest's preprocessing)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lgvq_data.shards import ShardSet
from lgvq_data.transforms import ImageTransform, decode_image
from lgvq_downstream.codes.reader import CodeShardSet

__all__ = ["reference_images"]


def reference_images(
    codes: CodeShardSet, ids: Sequence[str], shards_dir: str | os.PathLike[str] | None = None
) -> Tensor:
    """uint8 N×3×S×S images of the rows ``ids`` (in that order) from the lgvq-data shards the codes were made
    from (``shards_dir``, default the folder the code manifest records), preprocessed like the encoder's
    input. ``ValueError`` naming the id and the folder when a row is missing."""
    root = Path(shards_dir) if shards_dir is not None else Path(codes.manifest.source["dir"])
    prep = codes.manifest.preprocessing
    transform = ImageTransform(
        size=int(prep.get("size") or prep["image_size"]),
        resize=prep.get("resize", "shorter"),
        crop=prep.get("crop", "center"),
    )
    shards = ShardSet.open(root)
    wanted = {row_id: i for i, row_id in enumerate(ids)}
    out: list[np.ndarray | None] = [None] * len(ids)
    for index in range(len(shards)):
        shard, row = shards.locate(index)
        row_id = str(shards.value(shard, row, "id"))
        position = wanted.get(row_id)
        if position is None:
            continue
        image = transform(decode_image(shards.value(shard, row, "image"))).image
        out[position] = np.asarray(image, dtype=np.uint8)
    missing = [row_id for row_id, image in zip(ids, out) if image is None]
    if missing:
        raise ValueError(
            f"{root}: no source row with id {missing[0]!r} ({len(missing)} of {len(ids)} missing)"
        )
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()  # type: ignore[arg-type]
