"""The tune stage: params checked before Ray starts, a tiny real search (outputs, ASHA early stopping),
resuming an interrupted experiment, and (slow) the same against a ``ray start --head`` cluster."""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline_helpers import TINY_MODEL
from ray import tune

from pipelines import tune as tune_stage
from pipelines.params import ParamsError, read_yaml
from pipelines.train import read_weights
from pipelines.tune_objective import scratch_root

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = {"alpha": 0.001, "beta": 0.01, "gamma": 0.0001}
SPACE = {
    "alpha": {"low": 1e-4, "high": 1e-2},
    "beta": {"low": 1e-3, "high": 1e-1},
    "gamma": {"low": 1e-5, "high": 1e-3},
}


def tiny_params(tmp: Path, **tune_overrides: Any) -> Path:
    """params.yaml with a 16-px data section, a tiny model (no perceptual net) and a small tune section."""
    params = read_yaml(ROOT / "params.yaml")
    params["data"].update(
        num_images=160, image_size=16, rows_per_shard=64, val_fraction=0.2, test_fraction=0.1
    )
    params["model"] = copy.deepcopy(TINY_MODEL)
    params["ray"]["storage_path"] = str(tmp / "ray_results")
    params["tune"] = {
        "base": "vqgan",
        "space": SPACE,
        "points_to_evaluate": [OFFICIAL],
        "scheduler": {"grace_period": 2, "reduction_factor": 2, "max_steps": 4},
        "objective": {
            "terms": {"val_recon": 1.0, "recall_gain_mask1": -0.1, "word_code_mse": 0.0},
            "mode": "min",
        },
        "searcher": "random",
        "num_samples": 3,
        "max_concurrent_trials": 2,
        "cpus_per_trial": 1,
        "workers_per_trial": 1,
        "eval_every": 2,
        "val_batches": 2,
        "batch_size": 8,
        "seed": 0,
        **tune_overrides,
    }
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.data import main as data_main

    tmp = tmp_path_factory.mktemp("tune-shards")
    out = tmp / "shards"
    assert data_main(["--params", str(tiny_params(tmp)), "--out", str(out)]) == 0
    return out


def _table(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------ before Ray


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"space": {**SPACE, "alpha": {"low": -1e-3, "high": 1e-2}}},
            r"tune\.space\.alpha\.low: .*> 0, got -0\.001",
        ),
        (
            {"space": {**SPACE, "beta": {"low": 0.1, "high": 0.01}}},
            r"tune\.space\.beta: low 0\.1 must be < high",
        ),
        ({"space": {**SPACE, "delta": {"low": 1e-3, "high": 1e-2}}}, r"unknown loss weight\(s\) \['delta'\]"),
        (
            {"objective": {"terms": {"val_recon": 1.0, "fid": 1.0}, "mode": "min"}},
            r"unknown measure\(s\) \['fid'\]",
        ),
        (
            {"points_to_evaluate": [{"alpha": 1.0, "beta": 0.01, "gamma": 1e-4}]},
            r"points_to_evaluate\[0\]\.alpha",
        ),
        ({"searcher": "optuna"}, r"needs the 'optuna' package"),
        (
            {"scheduler": {"grace_period": 8, "reduction_factor": 2, "max_steps": 4}},
            r"grace_period: must be in",
        ),
    ],
    ids=[
        "negative",
        "low>high",
        "unknown-weight",
        "unknown-term",
        "point-outside",
        "searcher-package",
        "grace",
    ],
)
def test_invalid_params_fail_before_ray_starts(
    tmp_path: Path, shards: Path, change: dict, message: str
) -> None:
    import importlib.util

    import ray

    if change.get("searcher") == "optuna" and importlib.util.find_spec("optuna") is not None:
        pytest.skip("optuna is installed here")
    was_running = ray.is_initialized()
    params = tiny_params(tmp_path, **change)
    with pytest.raises(ParamsError, match=message):
        tune_stage.main(["--params", str(params), "--shards", str(shards), "--out", str(tmp_path / "out")])
    assert ray.is_initialized() == was_running
    if not was_running:
        assert not ray.is_initialized()
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ with Ray


@pytest.mark.ray
def test_tiny_search_writes_weights_table_and_plot_and_asha_stops_the_worst(
    tmp_path: Path, shards: Path, ray_local: Any
) -> None:
    # Sequential trials: the official weights, another point, then the official weights again. Trials 1 and 3
    # are identical (same seed, data, initial weights), so at the grace rung (step 2, reduction 2) exactly one
    # trial is worse than the median of those before it: the other point if it is worse than the official one,
    # else the repeat of the official one. That trial must stop at step 2; the others run the full 4 steps.
    other = {"alpha": 0.005, "beta": 0.08, "gamma": 0.0008}
    params = tiny_params(
        tmp_path, points_to_evaluate=[OFFICIAL, other, OFFICIAL], num_samples=3, max_concurrent_trials=1
    )
    out = tmp_path / "tune"
    started = time.time() - 1.0
    assert tune_stage.main(["--params", str(params), "--shards", str(shards), "--out", str(out)]) == 0

    # No trial's local checkpoint folder is left, not even the one ASHA stopped (its actor is killed before
    # its own clean-up runs): neither the experiment's scratch root nor a folder under an older name.
    temp = Path(tempfile.gettempdir())
    assert not scratch_root(tune_stage.plan(params, shards).settings.experiment).exists()
    left = [p for p in temp.glob("lgvq-tune-r*") if p.stat().st_mtime >= started]
    assert not left, f"trials left their local checkpoint folders: {left}"

    table = _table(out)
    assert len(table) == 3
    assert all(r["status"] in ("completed", "early-stopped") for r in table)
    stopped = [r for r in table if r["status"] == "early-stopped"]
    completed = [r for r in table if r["status"] == "completed"]
    assert len(stopped) == 1, table
    assert int(stopped[0]["steps"]) == 2 and all(int(r["steps"]) == 4 for r in completed)

    # the stopped trial really was the worst at the rung (objective at step 2, from Tune's own records)
    at_rung = _objective_at(tmp_path / "ray_results", step=2)
    assert at_rung[stopped[0]["trial_id"]] == max(at_rung.values())

    weights = read_weights(out / "best_loss_weights.yaml")
    best = yaml.safe_load((out / "best_loss_weights.yaml").read_text())
    assert set(weights) == {"alpha", "beta", "gamma"}
    assert best["trial_id"] in {r["trial_id"] for r in completed}
    assert best["objective"]["value"] == min(float(r["objective"]) for r in completed)
    assert best["objective"]["mode"] == "min" and best["steps"] == 4
    assert set(best["measures"]) == {"val_recon", "recall_gain_mask1", "word_code_mse"}
    assert best["split"] == "val"  # tuned on val (stored in these shards), never on test
    md = (out / "results.md").read_text()
    assert best["trial_id"] + " (*)" in md and "early-stopped" in md
    assert (out / "objective_vs_weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _objective_at(storage: Path, step: int) -> dict[str, float]:
    """trial id → objective reported at ``step`` (from each trial's result.json)."""
    found: dict[str, float] = {}
    for result in storage.glob("tune-*/trial_*/result.json"):
        for line in result.read_text().splitlines():
            row = json.loads(line)
            if row.get("step") == step:
                found[row["trial_id"]] = row["objective"]
    return found


_INTERRUPTED: list[str] = []  # module level: a copy of the callback restored with the experiment never fires


class _InterruptSecondTrial(tune.Callback):
    """Sends SIGUSR1 (Tune's graceful stop, like Ctrl-C) once the second trial saved its first checkpoint."""

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if not _INTERRUPTED and len(trials) > 1 and trial is trials[1]:
            _INTERRUPTED.append(trial.trial_id)
            signal.raise_signal(signal.SIGUSR1)


@pytest.mark.ray
def test_restore_finishes_an_interrupted_experiment(tmp_path: Path, shards: Path, ray_local: Any) -> None:
    params = tiny_params(
        tmp_path,
        num_samples=3,
        max_concurrent_trials=1,
        scheduler={"grace_period": 4, "reduction_factor": 2, "max_steps": 4},
    )
    plan = tune_stage.plan(params, shards)
    _INTERRUPTED.clear()
    first = tune_stage.run(plan, callbacks=[_InterruptSecondTrial()], verbose=0)
    assert _INTERRUPTED, "the interrupting callback never fired"
    assert [(r.metrics or {}).get("step") for r in first][:2] == [4, 2]  # stopped while the 2nd trial ran

    out = tmp_path / "tune"
    assert (
        tune_stage.main(["--params", str(params), "--shards", str(shards), "--out", str(out), "--restore"])
        == 0
    )
    table = _table(out)
    assert len(table) == 3 and all(r["status"] == "completed" and r["steps"] == "4" for r in table), table
    # the interrupted trial resumed from its step-2 checkpoint instead of starting over
    interrupted = next(Path(tune_stage.experiment_path(plan)).glob(f"trial_{_INTERRUPTED[0]}_*"))
    steps = [json.loads(line)["step"] for line in (interrupted / "result.json").read_text().splitlines()]
    assert steps == [2, 4]
    assert read_weights(out / "best_loss_weights.yaml")


def test_restore_without_an_experiment_fails_clearly(tmp_path: Path, shards: Path) -> None:
    params = tiny_params(tmp_path)
    with pytest.raises(FileNotFoundError, match="no experiment to restore"):
        tune_stage.run(tune_stage.plan(params, shards), restore=True)


@pytest.mark.slow
@pytest.mark.ray
def test_cluster_smoke_script(tmp_path: Path) -> None:
    """scripts/tune_cluster_smoke.sh: `ray start --head`, tune with --address, YAML written, head stopped."""
    env = {**os.environ, "TUNE_SMOKE_DIR": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "tune_cluster_smoke.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert read_weights(tmp_path / "tune" / "best_loss_weights.yaml")
    assert "joining Ray cluster at 127.0.0.1:" in done.stderr + done.stdout


@pytest.mark.slow
@pytest.mark.ray
def test_multi_worker_trials_run_as_torch_trainers(tmp_path: Path, shards: Path, ray_local: Any) -> None:
    """workers_per_trial 2: each trial is a 2-worker TorchTrainer; the worker placement group of a trial Tune
    stops is released, so the next trial starts (it hung on a 2-CPU node before)."""
    params = tiny_params(
        tmp_path, num_samples=2, max_concurrent_trials=1, workers_per_trial=2, cpus_per_trial=1
    )
    out = tmp_path / "tune"
    assert tune_stage.main(["--params", str(params), "--shards", str(shards), "--out", str(out)]) == 0
    table = _table(out)
    assert len(table) == 2 and all(int(r["steps"]) >= 2 for r in table), table
    assert read_weights(out / "best_loss_weights.yaml")


def test_progress_callback_draws_trials_and_the_best_latest_objective(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's bar for the search (only with a console following the stage): trials done, counting a
    running trial by its reported steps, and the best of the trials' latest objectives (not of all reports).
    """
    from types import SimpleNamespace

    from pipelines import progress

    monkeypatch.setenv(progress.ENV, str(tmp_path))
    plan = SimpleNamespace(
        tune=SimpleNamespace(
            num_samples=4, scheduler=SimpleNamespace(max_steps=64), objective=SimpleNamespace(mode="min")
        )
    )
    callback = tune_stage.progress_callback(plan)
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    callback.on_trial_result(0, [], a, {"step": 32, "objective": 0.50})
    callback.on_trial_result(0, [], b, {"step": 32, "objective": 0.70})
    callback.on_trial_result(0, [], a, {"step": 64, "objective": 0.60})  # a got worse: 0.50 is history
    callback.on_trial_complete(0, [], a)
    callback.bar.update(callback.bar.state.done, force=True)
    (state,) = progress.read_bars(tmp_path)
    assert state.unit == "trial" and state.total == 4 and state.done == 1.5  # a done, b halfway
    assert state.note == "best objective 0.6"
    callback.on_experiment_end([])
    assert progress.read_bars(tmp_path)[0].finished
