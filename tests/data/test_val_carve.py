"""A validation split carved out of ``train`` for data that ships only train/test."""

from __future__ import annotations

from pathlib import Path

import pytest

from lgvq_data.dataset import ShardDataset
from lgvq_data.shards import ShardSet
from lgvq_data.sources import synthetic


@pytest.fixture(scope="module")
def train_test_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("carve") / "shards"
    synthetic.build(out, n=90, image_size=16, seed=3, rows_per_shard=40, val_fraction=0.0, test_fraction=0.2)
    return out


def test_carved_val_is_a_seeded_disjoint_part_of_train(train_test_only: Path) -> None:
    shards = ShardSet.open(train_test_only)
    train = set(shards.split_indices("train"))
    test = set(shards.split_indices("test"))
    assert not shards.split_indices("val") and len(train) + len(test) == 90
    val = shards.split_indices("val", val_from_train=0.25, split_seed=1)
    rest = shards.split_indices("train", val_from_train=0.25, split_seed=1)
    assert len(val) == round(0.25 * len(train))
    assert set(val).isdisjoint(rest) and set(val) | set(rest) == train
    assert shards.split_indices("test", val_from_train=0.25, split_seed=1) == sorted(test)
    assert shards.split_indices("val", val_from_train=0.25, split_seed=1) == val  # deterministic
    assert shards.split_indices("val", val_from_train=0.25, split_seed=2) != val  # the seed decides


def test_the_readers_see_the_carved_split(train_test_only: Path) -> None:
    val = ShardDataset(
        train_test_only, "val", image_size=16, val_from_train=0.25, split_seed=1, annotations=False
    )
    train = ShardDataset(train_test_only, "train", image_size=16, val_from_train=0.25, split_seed=1)
    ids = {val[i]["id"] for i in range(len(val))}
    assert len(ids) == len(val) > 0
    assert ids.isdisjoint(train[i]["id"] for i in range(len(train)))


def test_carving_is_refused_where_a_val_split_exists(synthetic_dir: Path) -> None:
    shards = ShardSet.open(synthetic_dir)
    assert shards.split_indices("val")
    with pytest.raises(ValueError, match="already have a 'val' split"):
        shards.split_indices("val", val_from_train=0.1)
    with pytest.raises(ValueError, match=r"val_from_train must be in \(0, 1\)"):
        ShardSet.open(synthetic_dir).split_indices("train", val_from_train=1.5)
