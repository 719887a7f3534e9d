from __future__ import annotations

import io
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lgvq_data.dataset import ShardDataset, ShardIterableDataset, collate
from lgvq_data.schema import BATCH_CAPTIONS, BATCH_IDS, BATCH_IMAGES, BATCH_MASKS
from lgvq_data.shards import ShardSet
from lgvq_data.transforms import ImageTransform, tensor_to_image


def test_map_dataset_images_and_split(synthetic_dir: Path) -> None:
    ds = ShardDataset(synthetic_dir, split="train", image_size=32)
    shards = ShardSet.open(synthetic_dir)
    train_ids = [r["id"] for r in shards.iter_rows(("id", "split")) if r["split"] == "train"]
    assert len(ds) == len(train_ids) == 96
    sample = ds[3]
    assert sample["id"] == train_ids[3]
    assert sample["image"].size == (32, 32) and sample["image"].mode == "RGB"
    original = np.asarray(Image.open(io.BytesIO(shards.row(ds.indices[3].item())["image"])))
    assert np.array_equal(np.asarray(sample["image"]), original)
    batch = collate([sample])
    assert batch[BATCH_IMAGES].dtype == torch.float32
    assert -1.0 <= float(batch[BATCH_IMAGES].min()) and float(batch[BATCH_IMAGES].max()) <= 1.0
    assert np.array_equal(np.asarray(tensor_to_image(batch[BATCH_IMAGES][0])), original)
    assert float(batch[BATCH_IMAGES][0, 0, 0, 0]) == pytest.approx(original[0, 0, 0] / 127.5 - 1.0)
    assert sample["caption"] in sample["captions"]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_caption_choice_is_per_seed_epoch_index(synthetic_dir: Path) -> None:
    ds = ShardDataset(synthetic_dir, split="val", image_size=32, annotations=False)
    epoch0 = [ds[i]["caption"] for i in range(len(ds))]
    assert epoch0 == [ds[i]["caption"] for i in range(len(ds))]
    ds.set_epoch(1)
    epoch1 = [ds[i]["caption"] for i in range(len(ds))]
    assert epoch0 != epoch1
    other_seed = ShardDataset(synthetic_dir, split="val", image_size=32, seed=5, annotations=False)
    assert epoch0 != [other_seed[i]["caption"] for i in range(len(other_seed))]


def test_collate_batch_dict(synthetic_dir: Path) -> None:
    ds = ShardDataset(synthetic_dir, split="train", image_size=24)
    batch = collate([ds[i] for i in range(5)])
    assert batch[BATCH_IMAGES].shape == (5, 3, 24, 24)
    assert len(batch[BATCH_CAPTIONS]) == 5 and all(isinstance(c, str) for c in batch[BATCH_CAPTIONS])
    assert batch[BATCH_MASKS].shape == (5, 24, 24) and batch[BATCH_MASKS].dtype == torch.int64
    assert all(b.shape[1] == 4 for b in batch["boxes"])
    pairs = zip(batch["refs"], batch["boxes"], strict=True)
    assert all(0 <= idx < len(b) for refs, b in pairs for _, idx in refs)
    assert isinstance(batch["qa"][0][0], tuple)


def test_pickled_dataset_does_not_carry_the_data(synthetic_dir: Path) -> None:
    ds = ShardDataset(synthetic_dir, split="train", image_size=32)
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000
    clone = pickle.loads(blob)
    assert clone[7]["id"] == ds[7]["id"]
    assert clone[7]["image"].tobytes() == ds[7]["image"].tobytes()


def _ids_of(ds: ShardIterableDataset, worker_id: int, num_workers: int) -> list[str]:
    return [ds.base[int(p)]["id"] for p in ds.assigned_positions(worker_id, num_workers)]


@pytest.mark.parametrize(("world", "workers"), [(1, 1), (2, 2), (3, 2), (4, 3)])
def test_rank_worker_split_has_no_duplicates_or_gaps(synthetic_dir: Path, world: int, workers: int) -> None:
    seen: list[int] = []
    for rank in range(world):
        ds = ShardIterableDataset(synthetic_dir, split="train", image_size=32, rank=rank, world_size=world)
        ds.set_epoch(2)
        per_rank = [p for w in range(workers) for p in ds.assigned_positions(w, workers)]
        assert len(per_rank) == len(ds)
        seen.extend(int(p) for p in per_rank)
    assert sorted(seen) == list(range(96))


def test_even_mode_balances_ranks(synthetic_dir: Path) -> None:
    counts = [
        len(ShardIterableDataset(synthetic_dir, split="train", rank=r, world_size=5, even=True))
        for r in range(5)
    ]
    assert counts == [19] * 5


def test_shuffle_is_deterministic_by_seed_and_epoch(synthetic_dir: Path) -> None:
    a = ShardIterableDataset(synthetic_dir, split="train", seed=1)
    b = ShardIterableDataset(synthetic_dir, split="train", seed=1)
    assert np.array_equal(a.epoch_order(), b.epoch_order())
    first = a.epoch_order().copy()
    a.set_epoch(1)
    assert not np.array_equal(first, a.epoch_order())
    assert sorted(a.epoch_order()) == list(range(96))
    unshuffled = ShardIterableDataset(synthetic_dir, split="train", shuffle=False)
    assert list(unshuffled.epoch_order()) == list(range(96))


def test_dataloader_workers_and_ranks_cover_split_once(synthetic_dir: Path) -> None:
    ids: list[str] = []
    for rank in range(2):
        ds = ShardIterableDataset(
            synthetic_dir, split="train", image_size=16, rank=rank, world_size=2, annotations=False
        )
        ds.set_epoch(3)
        loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate)
        for batch in loader:
            assert batch[BATCH_IMAGES].shape[1:] == (3, 16, 16)
            ids.extend(batch[BATCH_IDS])
    counts = Counter(ids)
    assert len(counts) == 96 and max(counts.values()) == 1
    assert set(counts) == {s["id"] for s in ShardDataset(synthetic_dir, split="train", annotations=False)}


def test_rank_read_from_torch_distributed(synthetic_dir: Path, tmp_path: Path) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ds = ShardIterableDataset(synthetic_dir, split="test")
        assert len(ds) == 12 and len(list(ds.assigned_positions(0, 1))) == 12
    finally:
        dist.destroy_process_group()


def test_transform_keeps_boxes_and_mask_aligned() -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    mask = np.zeros((20, 40), dtype=np.uint8)
    mask[4:16, 12:22] = 3  # object at x 12..22, y 4..16
    box = np.array([[12, 4, 22, 16]], dtype=np.float32)
    out = ImageTransform(size=10, resize="shorter", crop="center")(image, None, Image.fromarray(mask), box)
    # shorter side 20 → 10: scale 0.5 → 20×10; center crop left = 5: box (6-5, 2, 11-5, 8)
    assert torch.allclose(out.boxes, torch.tensor([[1.0, 2.0, 6.0, 8.0]]))
    ys, xs = torch.nonzero(out.mask == 3, as_tuple=True)
    assert (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) == (1, 2, 6, 8)
    flipped = ImageTransform(size=10, resize="shorter", hflip=True)
    rng = next(np.random.default_rng(s) for s in range(100) if np.random.default_rng(s).random() < 0.5)
    out = flipped(image, rng, Image.fromarray(mask), box)
    assert torch.allclose(out.boxes, torch.tensor([[4.0, 2.0, 9.0, 8.0]]))
    ys, xs = torch.nonzero(out.mask == 3, as_tuple=True)
    assert (int(xs.min()), int(xs.max()) + 1) == (4, 9)


def test_random_crop_depends_on_rng_and_stays_inside() -> None:
    image = Image.fromarray(np.arange(30 * 50 * 3, dtype=np.uint8).reshape(30, 50, 3))
    transform = ImageTransform(size=16, resize="none", crop="random")
    crops = {transform(image, np.random.default_rng(s)).image.tobytes() for s in range(6)}
    assert len(crops) > 1
    exact = ImageTransform(size=8, resize="exact")(image).image
    assert exact.size == (8, 8)
    with pytest.raises(ValueError, match="need a numpy Generator"):
        transform(image)


def test_flip_mirrors_pixels_and_batch_matches_pixels() -> None:
    array = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    rng = next(np.random.default_rng(s) for s in range(100) if np.random.default_rng(s).random() < 0.5)
    flipped = ImageTransform(size=4, resize="none", hflip=True)(Image.fromarray(array), rng).image
    assert np.array_equal(np.asarray(flipped), array[:, ::-1])
    from lgvq_data.transforms import images_to_batch

    batch = images_to_batch([Image.fromarray(array), flipped])
    assert batch.shape == (2, 3, 4, 4) and batch.is_contiguous()
    expected = torch.from_numpy(array.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)
    assert torch.allclose(batch[0], expected) and torch.allclose(batch[1], expected.flip(-1))


def test_annotation_subset(synthetic_dir: Path) -> None:
    ds = ShardDataset(synthetic_dir, split="train", image_size=32, annotations={"boxes", "refs"})
    sample = ds[0]
    assert "boxes" in sample and "refs" in sample and "mask" not in sample and "qa" not in sample
    assert set(ShardDataset(synthetic_dir, split="train", annotations=False)[0]) == {
        "id",
        "caption",
        "captions",
        "image",
    }
    with pytest.raises(ValueError, match="request both"):
        ShardDataset(synthetic_dir, annotations={"refs"})
    with pytest.raises(ValueError, match="unknown annotations"):
        ShardDataset(synthetic_dir, annotations={"depth"})


def test_uint8_collate_matches_float_batch(synthetic_dir: Path) -> None:
    from lgvq_data.transforms import to_unit_range

    ds = ShardDataset(synthetic_dir, split="train", image_size=16, annotations=False)
    samples = [ds[i] for i in range(4)]
    as_uint8 = collate(samples, images_dtype="uint8")[BATCH_IMAGES]
    assert as_uint8.dtype == torch.uint8 and as_uint8.shape == (4, 3, 16, 16) and as_uint8.is_contiguous()
    assert torch.allclose(to_unit_range(as_uint8), collate(samples)[BATCH_IMAGES], atol=1e-6)
    with pytest.raises(ValueError, match="dtype"):
        collate(samples, images_dtype="float16")
