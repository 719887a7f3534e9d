"""One split of an lgvq-data shard directory of synthetic scenes, decoded into judge inputs: uint8 images,
class-id masks and multi-hot attribute targets."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lgvq_data.shards import ShardSet
from lgvq_data.transforms import decode_image
from lgvq_downstream.metrics.scene_targets import attribute_targets, object_map

__all__ = ["SceneSplit", "load_scene_split"]

logger = logging.getLogger(__name__)

_COLUMNS = ("id", "image", "mask", "boxes", "refs")


@dataclass
class SceneSplit:
    """``images`` uint8 N×3×S×S, ``masks`` int64 N×S×S class ids, ``object_maps`` int64 N×S×S
    (``scene_targets.object_map``), ``targets`` float32 N×87 multi-hot, ``ids`` the row ids, ``split`` its
    name."""

    images: Tensor
    masks: Tensor
    object_maps: Tensor
    targets: Tensor
    ids: list[str]
    split: str

    def __len__(self) -> int:
        return len(self.ids)


def load_scene_split(
    shards_dir: str | os.PathLike[str], split: str, image_size: int | None = None, limit: int | None = None
) -> SceneSplit:
    """Decode the rows of ``split`` (storage order, the first ``limit`` when given).

    ``image_size``: resize images (bilinear) and masks (nearest) to this side; default the first row's size
    (all rows must then share it). Raises ``ValueError`` naming the directory when the split is empty or a
    row lacks a mask, and the row id when its objects cannot be read (``scene_targets.scene_objects``).
    """
    shards = ShardSet.open(shards_dir)
    indices = shards.split_indices(split)
    if limit is not None:
        indices = indices[: int(limit)]
    if not indices:
        raise ValueError(f"{shards_dir}: split {split!r} has no rows")
    images, masks, objects, targets, ids = [], [], [], [], []
    for index in indices:
        row = shards.row(index, _COLUMNS)
        if row["mask"] is None:
            raise ValueError(f"{shards_dir}: row {row['id']} has no mask (the segmenter judge needs one)")
        image = decode_image(row["image"])
        mask = np.asarray(decode_image(row["mask"], mode="L"), dtype=np.uint8)
        objects_here = object_map(row, mask).numpy().astype(np.uint8)
        side = image_size or (images[0].shape[0] if images else None)
        if side is not None and image.size != (side, side):
            if image_size is None:
                raise ValueError(
                    f"{shards_dir}: row {row['id']} is {image.size[0]}×{image.size[1]} px, the first row "
                    f"{side}×{side}; pass image_size to resize"
                )
            image = image.resize((side, side), Image.BILINEAR)
            mask = np.asarray(Image.fromarray(mask).resize((side, side), Image.NEAREST))
            objects_here = np.asarray(Image.fromarray(objects_here).resize((side, side), Image.NEAREST))
        images.append(np.asarray(image, dtype=np.uint8))
        masks.append(mask)
        objects.append(objects_here)
        targets.append(attribute_targets(row))
        ids.append(str(row["id"]))
    logger.info("%s: %d %s rows decoded", shards_dir, len(ids), split)
    return SceneSplit(
        images=torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
        masks=torch.from_numpy(np.stack(masks)).long(),
        object_maps=torch.from_numpy(np.stack(objects)).long(),
        targets=torch.stack(targets),
        ids=ids,
        split=split,
    )
