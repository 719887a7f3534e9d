"""The split protocol: train on ``train``, tune on ``val``, report on ``test`` — and a seeded ``val`` carved
out of ``train`` for datasets that ship none (CUB-200, MM-CelebA-HQ: train/test only).

Section ``splits`` of ``params.yaml`` is read by the train, tune and evaluate stages, so all three see the
same rows; the carve (fraction, seed, row counts) is recorded in the tune results and in every metrics file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SplitParams:
    """Section ``splits``.

    ``val_from_train``: fraction of ``train`` that becomes ``val`` when the shards hold no ``val`` rows
    (0 = never carve; a stage that needs ``val`` then fails with the reason). ``seed``: which rows.
    """

    val_from_train: float = 0.1
    seed: int = 0


def carve_fraction(shards: Path, params: SplitParams) -> float:
    """The ``val_from_train`` to pass to the lgvq-data readers: ``params.val_from_train`` when ``shards`` has
    no ``val`` rows, else 0 (the stored split is used)."""
    from lgvq_data.shards import ShardSet

    if not 0.0 <= params.val_from_train < 1.0:
        raise ValueError(f"splits.val_from_train must be in [0, 1), got {params.val_from_train}")
    has_val = bool(ShardSet.open(Path(shards)).split_indices("val"))
    return 0.0 if has_val else float(params.val_from_train)


def split_protocol(shards: Path, params: SplitParams) -> dict[str, Any]:
    """Row counts per split as the stages see them, and whether ``val`` was carved (for the reports)."""
    from lgvq_data.shards import ShardSet

    fraction = carve_fraction(shards, params)
    shard_set = ShardSet.open(Path(shards))
    counts = {
        split: len(shard_set.split_indices(split, val_from_train=fraction, split_seed=params.seed))
        for split in ("train", "val", "test")
    }
    source = (
        f"carved from train: {fraction:.0%} of its rows, seed {params.seed}"
        if fraction
        else "stored in the shards"
    )
    return {"rows": counts, "val": source, "tune_on": "val", "report_on": "test"}
