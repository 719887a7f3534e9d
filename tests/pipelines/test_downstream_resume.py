"""A second-stage run under real Ray Train resumes from its checkpoint: the same run name with ``steps = 2N``
after a run of ``N`` steps continues at step N — and ends where an uninterrupted ``2N``-step run of the same
loop ends (same losses, same weights), so weights, optimiser state, RNG and data order all came back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from downstream_helpers import layout, tiny_downstream
from safetensors.torch import load_file

from pipelines.downstream import codes
from pipelines.downstream.ray_task import EXPORT, HISTORY, STATE, batch_indices, run, train_loop
from pipelines.downstream.task import make_job, stage_params
from pipelines.params import StageParams

pytestmark = pytest.mark.ray
N = 3


def _steps(job: Any, steps: int) -> Any:
    config = json.loads(json.dumps(job.config))
    config["train"]["steps"] = steps
    return replace(job, config=config)


def test_a_run_started_again_with_more_steps_continues_from_its_checkpoint(
    tmp_path: Path, ray_local: Any
) -> None:
    torch.set_num_threads(1)
    constant = {"schedule": "constant", "warmup_steps": 0, "steps": N}  # the lr does not depend on the length
    world = layout(
        tmp_path, tiny_downstream({"caption": {"checkpoint_every": 1, "config": {"train": constant}}})
    )
    run_dir, code_dir = world["models"] / "vqgan-off-s0", tmp_path / "codes"
    argv = ["--params", str(world["params"]), "--run", str(run_dir), "--shards", str(world["shards"])]
    assert codes.main([*argv, "--out", str(code_dir)]) == 0
    sp = StageParams(world["params"], stage_params("caption"))
    job, _, _, ray_params = make_job("caption", sp, run_dir, code_dir)

    run(_steps(job, N), ray_params, tmp_path / "first", "resume")
    first = json.loads((tmp_path / "first" / HISTORY).read_text())
    assert first["steps"] == N and first["resumed_from"] == 0
    stored = sorted((tmp_path / "ray_results" / "resume").glob("checkpoint_*"))
    assert stored and any((c / STATE / "trainer.json").is_file() for c in stored), "no checkpoint reached storage"

    run(_steps(job, 2 * N), ray_params, tmp_path / "resumed", "resume")  # same name: Ray restores the run
    resumed = json.loads((tmp_path / "resumed" / HISTORY).read_text())
    assert resumed["resumed_from"] == N, "the second run did not start from the checkpoint"
    assert resumed["steps"] == 2 * N and resumed["loss"][:N] == first["loss"]

    # The same loop without Ray and without a break (in this process): the same losses and weights.
    reports: list[tuple[dict, Path | None]] = []
    straight = tmp_path / "straight"
    straight.mkdir()
    train_loop(_steps(job, 2 * N), straight, None, lambda metrics, folder: reports.append((metrics, folder)))
    history = json.loads((straight / EXPORT / HISTORY).read_text())
    assert history["resumed_from"] == 0 and [m["step"] for m, _ in reports] == list(range(1, 2 * N + 1))
    assert all(folder is not None and (folder / STATE / "model.safetensors").is_file() for _, folder in reports[:-1])
    assert history["loss"] == pytest.approx(resumed["loss"], rel=1e-5, abs=1e-6)
    a = load_file(str(tmp_path / "resumed" / "heads.safetensors"))
    b = load_file(str(straight / EXPORT / "heads.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_batches_depend_only_on_seed_and_step_and_split_between_ranks() -> None:
    n, batch, world = 50, 4, 2
    steps_per_epoch = n // (batch * world)
    for step in (0, 5, steps_per_epoch, 17):
        ranks = [batch_indices(n, batch, world, r, seed=3, step=step) for r in range(world)]
        assert all(len(r) == batch for r in ranks) and not set(ranks[0]) & set(ranks[1])
        assert ranks[0] == batch_indices(n, batch, world, 0, seed=3, step=step)  # no hidden state
    epoch = [
        i
        for s in range(steps_per_epoch)
        for r in range(world)
        for i in batch_indices(n, batch, world, r, 3, s)
    ]
    assert len(set(epoch)) == len(epoch) == steps_per_epoch * batch * world  # an epoch sees no example twice
    other_seed = batch_indices(n, batch, world, 0, seed=4, step=0)
    assert other_seed != batch_indices(n, batch, world, 0, seed=3, step=0)
