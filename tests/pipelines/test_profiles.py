"""The real-data profiles in params/ load strictly in every stage, and run end to end at tiny scale on a
replica of
the CUB-200 layout (the paper's sizes swapped for a 16-px model; everything else as shipped)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pipeline_helpers import REPO, TINY_MODEL, train_argv

from pipelines import data, train, tune, validate
from pipelines.params import StageParams

PROFILES = [REPO / "params" / f"{name}.yaml" for name in ("cub200", "mm-celeba-hq")]  # real data, GPU
CPU_PROFILE = REPO / "params" / "cpu-full-matrix.yaml"


def test_profiles_exist() -> None:
    assert {p.stem for p in (REPO / "params").glob("*.yaml")} == {"cub200", "mm-celeba-hq", "cpu-full-matrix"}


def test_cpu_profile_is_the_default_with_the_full_matrix() -> None:
    """The long CPU profile differs from params.yaml only in the runs it trains, their length, f_vt's stem (the
    settings of its committed report) and that it runs no downstream stage."""
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    profile = yaml.safe_load(CPU_PROFILE.read_text())
    assert (
        profile["runs"]["bases"] == ["vqvae", "vqgan", "cvq", "vqct"] and len(profile["runs"]["seeds"]) >= 3
    )
    assert profile["downstream"]["runs"] == [] and not any(profile["downstream"]["tasks"].values())
    assert set(profile["downstream"]["tasks"]) == set(default["downstream"]["tasks"])
    profile.pop("runs"), default.pop("runs")
    profile["train"].pop("steps"), default["train"].pop("steps")
    profile["guidance"]["config"].pop("visual_stem"), default["guidance"]["config"].pop("visual_stem", None)
    for key in ("runs", "tasks"):
        profile["downstream"].pop(key), default["downstream"].pop(key)
    assert profile == default


@pytest.fixture(scope="module")
def train_test_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards with train and test rows only, like CUB-200 and MM-CelebA-HQ."""
    from lgvq_data.sources.synthetic import build

    out = tmp_path_factory.mktemp("train-test") / "shards"
    return build(out, n=40, image_size=16, seed=0, rows_per_shard=20, val_fraction=0.0, test_fraction=0.25)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_profile_loads_in_every_stage(profile: Path, train_test_shards: Path) -> None:
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    loaded = yaml.safe_load(profile.read_text())
    assert set(loaded) == set(default), "a profile must carry every section of params.yaml"
    for section in ("train", "eval", "guidance", "splits", "runs"):
        assert set(loaded[section]) == set(default[section]), f"profile section {section} differs in its keys"
    StageParams(profile, data.PARAMS).section("data", data.DataParams)
    StageParams(profile, validate.PARAMS).section("validate", validate.ValidateParams)
    assert loaded["eval"]["split"] == "test" and loaded["splits"]["val_from_train"] > 0
    for base in ("vqgan", "cvq"):
        job, ray = train.make_job(StageParams(profile, train.PARAMS), base, True, train_test_shards, {}, 0)
        model = job.model["common"]
        assert model["encoder"]["resolution"] == job.image_size == 256
        assert model["quantizer"]["codebook_size"] == 1024 and job.batch_size == 8
        assert "legacy" not in model["quantizer"]  # β placement: each base's official default
        assert job.val_from_train == loaded["splits"]["val_from_train"]  # no val split in these shards
        assert ray.use_gpu


def _cub_replica(root: Path, n: int = 12) -> None:
    """n images in the CUB_200_2011 layout with Reed-style caption files (two classes, official split
    file)."""
    files = [f"00{1 + i % 2}.Class_{i % 2}/Bird_{i:04d}_{i}.jpg" for i in range(n)]
    root.mkdir(parents=True)
    (root / "images.txt").write_text("".join(f"{i + 1} {f}\n" for i, f in enumerate(files)))
    (root / "train_test_split.txt").write_text("".join(f"{i + 1} {int(i % 4 != 0)}\n" for i in range(n)))
    (root / "bounding_boxes.txt").write_text("".join(f"{i + 1} 1.0 2.0 10.0 9.0\n" for i in range(n)))
    rng = np.random.default_rng(0)
    for i, f in enumerate(files):
        (root / "images" / f).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "images" / f)
        text = root / "text_c10" / Path(f).with_suffix(".txt")
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text(
            f"this bird has a white belly and {['red', 'blue'][i % 2]} wings\nthis bird is small\n"
        )


@pytest.mark.ray
def test_cub_profile_runs_at_tiny_scale(tmp_path: Path, ray_local) -> None:
    from lgvq_data.cli import main as lgvq_data_main

    _cub_replica(tmp_path / "CUB_200_2011")
    built = tmp_path / "cub-shards"
    assert (
        lgvq_data_main(
            ["build", "cub", "--root", str(tmp_path / "CUB_200_2011"), "--out", str(built), "--quiet"]
        )
        == 0
    )
    params = yaml.safe_load((REPO / "params" / "cub200.yaml").read_text())
    params["data"].update(prebuilt_dir=str(built), image_size=16)
    params["model"] = TINY_MODEL  # the paper's 256-px autoencoder is the only thing swapped out
    params["guidance"]["text_encoder"] = "minilm"  # CLIP ViT-B/32 is not available offline
    params["train"].update(batch_size=2, steps=2, log_every=1, checkpoint_every=1, loader_workers=0)
    params["ray"].update(
        address=None,
        use_gpu=False,
        num_workers=1,
        cpus_per_worker=1,
        storage_path=str(tmp_path / "ray_results"),
    )
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))

    shards = tmp_path / "shards"
    assert data.main(["--params", str(path), "--out", str(shards)]) == 0
    assert (
        validate.main(["--params", str(path), "--shards", str(shards), "--report", str(tmp_path / "v.json")])
        == 0
    )
    # CUB ships train/test only: the tune stage searches on a val split carved out of train
    params["tune"].update(
        num_samples=1,
        max_concurrent_trials=1,
        cpus_per_trial=1,
        workers_per_trial=1,
        scheduler={"grace_period": 1, "reduction_factor": 2, "max_steps": 2},
        eval_every=1,
        val_batches=1,
        batch_size=2,  # the shuffled-image control pairs each caption with another image of the batch
    )
    params["splits"]["val_from_train"] = 0.34  # 3 of the replica's 9 training images
    path.write_text(yaml.safe_dump(params))
    assert tune.main(["--params", str(path), "--shards", str(shards), "--out", str(tmp_path / "tune")]) == 0
    weights = yaml.safe_load((tmp_path / "tune" / "best_loss_weights.yaml").read_text())
    assert set(weights.get("weights", weights)) >= {"alpha", "beta", "gamma"}
    out = tmp_path / "model"
    assert train.main(train_argv(path, "vqgan", "on", shards, tmp_path)) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["steps"] == 2 and meta["guidance"]["weights"] == {
        "alpha": 0.001,
        "beta": 0.001,
        "gamma": 0.001,
    }
