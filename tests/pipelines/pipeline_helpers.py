"""A tiny copy of params.yaml and tiny shards, so stage tests run the real code in seconds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from pipelines.models import merge_mappings

REPO = Path(__file__).resolve().parents[2]

# 16-px images, a ch-16 encoder (f=2 → 8×8 tokens), K=32: a few hundred steps per second of CPU.
TINY_MODEL: dict[str, Any] = {
    "common": {
        "encoder": {
            "resolution": 16,
            "ch": 16,
            "ch_mult": [1, 2],
            "num_res_blocks": 1,
            "attn_resolutions": [],
            "z_channels": 16,
            "norm_groups": 8,
        },
        "quantizer": {"codebook_size": 32, "embed_dim": 16},
        "loss": {
            "perceptual_weight": 0.0,
            "perceptual_net": "none",
            "disc_start": 1000,
            "disc_channels": 16,
            "disc_layers": 1,
        },
    },
    "per_base": {},
}


def tiny_params(tmp: Path, overrides: dict[str, Any] | None = None) -> Path:
    """params.yaml of the repo with tiny data/model/train sections (plus ``overrides``), written to
    ``tmp``."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(
        num_images=48, image_size=16, rows_per_shard=16, val_fraction=0.25, test_fraction=0.25
    )
    params["model"] = copy.deepcopy(TINY_MODEL)
    params["vqct"] = {"min_count": 1, "max_captions": 0}
    params["train"].update(batch_size=4, steps=4, log_every=2, checkpoint_every=2)
    params["ray"].update(num_workers=1, cpus_per_worker=1, storage_path=str(tmp / "ray_results"))
    params = merge_mappings(params, overrides or {})
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def tiny_shards(tmp: Path, n: int = 48, image_size: int = 16) -> Path:
    """Synthetic captioned scenes (train + val) in ``tmp/shards``."""
    from lgvq_data.sources.synthetic import build

    return build(
        tmp / "shards",
        n=n,
        image_size=image_size,
        seed=0,
        rows_per_shard=16,
        val_fraction=0.25,
        test_fraction=0.25,
    )


def train_argv(
    params: Path, base: str, lg: str, shards: Path, out_dir: Path, weights: Path | None = None
) -> list[str]:
    """Arguments of ``pipelines.train.main`` writing ``out_dir/{model/,metrics.json,curve.csv}``."""
    argv = [
        "--params",
        str(params),
        "--base",
        base,
        "--lg",
        lg,
        "--shards",
        str(shards),
        "--out",
        str(out_dir / "model"),
        "--metrics",
        str(out_dir / "metrics.json"),
        "--curve",
        str(out_dir / "curve.csv"),
    ]
    return argv + (["--weights", str(weights)] if weights is not None else [])
