from __future__ import annotations

from pathlib import Path

import pytest

from lgvq_data.sources import synthetic


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 synthetic 32×32 scenes in 3 shards (50 rows each at most)."""
    out = tmp_path_factory.mktemp("synthetic") / "shards"
    synthetic.build(out, n=120, image_size=32, seed=7, rows_per_shard=50)
    return out
