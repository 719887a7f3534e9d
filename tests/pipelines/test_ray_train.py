"""The train stage under real Ray Train: 2 CPU workers (gloo), checkpoints reported, a restarted run
resumes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from pipeline_helpers import tiny_params, tiny_shards, train_argv

from pipelines import train
from pipelines.params import StageParams

pytestmark = pytest.mark.ray


def _job(params: Path, shards: Path, base: str = "vqgan", lg: bool = False):
    return train.make_job(StageParams(params, train.PARAMS), base, lg, shards, {}, 0)


def test_two_workers_train_checkpoint_and_resume(tmp_path: Path, ray_local) -> None:
    from pipelines.ray_train import run, scratch_prefix

    shards = tiny_shards(tmp_path)
    params = tiny_params(
        tmp_path,
        {
            "ray": {"num_workers": 2, "cpus_per_worker": 1},
            "train": {"steps": 4, "log_every": 2, "checkpoint_every": 2},
        },
    )
    job, ray_params = _job(params, shards)
    out = tmp_path / "model"
    final = run(job, ray_params, out, "smoke")
    meta = json.loads((out / "run.json").read_text())
    assert meta["world_size"] == 2 and meta["steps"] == 4
    assert final["step"] == 4
    assert (out / "base" / "config.json").is_file()
    checkpoints = sorted((tmp_path / "ray_results" / "smoke").glob("checkpoint_*"))
    assert checkpoints, "no checkpoint reached storage"
    assert any((c / "last" / "trainer.json").is_file() for c in checkpoints)
    scratch = [
        p for rank in (0, 1) for p in Path(tempfile.gettempdir()).glob(scratch_prefix(job, rank) + "*")
    ]
    assert not scratch, f"the workers left their local checkpoint folders: {scratch}"

    # Same run name, more steps: Ray finds the run's last checkpoint and the loop continues from step 4.
    longer = tiny_params(
        tmp_path,
        {
            "ray": {"num_workers": 2, "cpus_per_worker": 1},
            "train": {"steps": 6, "log_every": 2, "checkpoint_every": 2},
        },
    )
    job2, _ = _job(longer, shards)
    run(job2, ray_params, out, "smoke")
    meta = json.loads((out / "run.json").read_text())
    assert meta["steps"] == 6
    assert [row["step"] for row in meta["history"]] == [6.0], "the resumed run retrained from scratch"


def test_train_stage_main_writes_model_metrics_and_curve(tmp_path: Path, ray_local) -> None:
    shards = tiny_shards(tmp_path)
    params = tiny_params(tmp_path)
    out, metrics, curve = tmp_path / "model", tmp_path / "metrics.json", tmp_path / "curve.csv"
    weights = tmp_path / "best.yaml"
    weights.write_text("weights: {alpha: 0.5, beta: 0.25, gamma: 0.125}\n")
    rc = train.main(train_argv(params, "vqvae", "on", shards, tmp_path, weights))
    assert rc == 0
    report = json.loads(metrics.read_text())
    assert report["steps"] == 4 and report["lg"] is True
    assert report["weights"] == {"alpha": 0.5, "beta": 0.25, "gamma": 0.125}
    run_meta = json.loads((out / "run.json").read_text())
    assert run_meta["guidance"]["weights"] == {"alpha": 0.5, "beta": 0.25, "gamma": 0.125}
    header, *rows = curve.read_text().splitlines()
    assert header.startswith("step,") and "lgsa" in header and len(rows) == 2

    from pipelines.models import load_run

    model, meta = load_run(out)
    assert meta["base"] == "vqvae"
    import torch

    codes = model.encode(torch.zeros(1, 3, 16, 16))
    assert codes.shape[-2:] == (8, 8)


def test_bad_params_fail_before_ray_starts(tmp_path: Path) -> None:
    import ray

    was_running = ray.is_initialized()
    params = tiny_params(tmp_path, {"train": {"lr": -1.0}})
    with pytest.raises(ValueError, match="train.lr"):
        _job(params, tmp_path)
    params = tiny_params(tmp_path, {"model": {"common": {"quantizer": {"codebook_sise": 8}}}})
    with pytest.raises(ValueError, match="codebook_sise"):
        _job(params, tmp_path)
    assert ray.is_initialized() == was_running, "validating params started Ray"
