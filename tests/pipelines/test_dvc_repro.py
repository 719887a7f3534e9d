"""`make pipeline`'s script end to end on a copy of this repository with tiny params: every stage runs for
real (DVC, Ray Train and Tune on one shared local Ray head, great-expectations), a second `dvc repro` is a
no-op, `dvc exp run -S` and `dvc metrics show` work. Runs: VQCT without and with LG over seeds 0 and 1."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from downstream_helpers import tiny_downstream
from pipeline_helpers import REPO, tiny_params

pytestmark = [pytest.mark.slow, pytest.mark.ray]

TINY_TUNE = {
    "scheduler": {"grace_period": 2, "reduction_factor": 2, "max_steps": 4},
    "num_samples": 2,
    "max_concurrent_trials": 1,
    "eval_every": 2,
    "val_batches": 1,
    "batch_size": 4,
}
TINY_EVAL = {"batch_size": 16, "probe_steps": 2, "probe_batch_size": 4, "fd_size": 32, "grid_images": 4}


def _run(cmd: list[str], cwd: Path, timeout: int = 1200) -> str:
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        HF_HUB_OFFLINE="1",
        RAY_USAGE_STATS_ENABLED="0",
        DVC_NO_ANALYTICS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.pop("RAY_ADDRESS", None)
    # Its own process group, stopped when the test ends early (pytest-timeout, Ctrl-C), so that the pipeline's
    # Ray head (stopped by scripts/pipeline.sh's trap on TERM) does not outlive a failed test.
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{stdout[-4000:]}\n{stderr[-4000:]}"
    )
    return stdout + stderr


def _copy_repo(dst: Path) -> None:
    """The tracked files of this checkout (working-tree versions), as a fresh git repository."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in filter(None, files.stdout.split("\0")):
        src = REPO / name
        if src.is_file() and not name.startswith(("reports/", "tune/")):
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    (dst / "dvc.lock").unlink(missing_ok=True)  # the committed lock records the full-size run


def test_dvc_repro_end_to_end_on_tiny_params(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    params = yaml.safe_load(tiny_params(tmp_path).read_text())
    params["ray"]["storage_path"] = "ray_results"  # relative, as in the default (made absolute by the stages)
    params["train"]["steps"] = 2
    params["tune"].update(TINY_TUNE)
    params["eval"].update(TINY_EVAL)
    params["runs"] = {"bases": ["vqct"], "seeds": [0, 1]}
    # Downstream: captioning and retrieval on the seed-0 LG run (every task stage alone, both runs and the
    # report's downstream table: test_downstream_*); VQCT tokens pack word ids, so no codebook init.
    runs = ["vqct-on-s0"]
    tasks = {"caption": runs, "vqa": [], "ground": [], "retrieve": runs, "generate": []}
    caption = {"config": {"init_from_codebook": False}}
    params["downstream"] = tiny_downstream({"runs": runs, "tasks": tasks, "caption": caption})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"],
    ):
        subprocess.run(cmd, cwd=repo, check=True)

    log = _run(["bash", "scripts/pipeline.sh"], repo)
    assert "one local Ray head for every stage" in log
    for stage in (
        "data",
        "validate",
        "tune",
        "train@vqct-on-1",
        "evaluate@vqct-off-0",
        "codes@vqct-on-s0",
        "judges",
        "caption@vqct-on-s0",
        "retrieve@vqct-on-s0",
        "report",
    ):
        assert f"▶ {stage}\n" in log and f"✓ {stage} " in log  # the console: a start and an end line
    assert not re.findall(r"(?im)^.*(error|warn|fail|traceback).*$", log), log  # a success reads like one
    assert "VQCT+LG vs VQCT: PSNR" in log and "reports/logs/dvc.log" in log  # the summary
    full = (repo / "reports" / "logs" / "dvc.log").read_text()  # everything dvc and the stages printed
    assert "Running stage 'train@vqct-on-1'" in full and (repo / "reports/logs/train@vqct-on-1.log").is_file()
    assert "starting a local Ray cluster" not in full  # every stage joined the shared head
    assert "State API may be temporarily unavailable" not in full and "PreemptionWatcher" not in full
    report = (repo / "reports" / "report.md").read_text()
    assert "| VQCT | 2 |" in report and "| VQCT+LG | 2 |" in report and "VQCT+LG vs VQCT" in report
    assert "2 of 2 task stages found" in report and "(downstream/caption-vqct-on-s0.png)" in report
    assert (repo / "tune" / "best_loss_weights.yaml").is_file()
    best = yaml.safe_load((repo / "tune" / "best_loss_weights.yaml").read_text())["weights"]
    trained = json.loads((repo / "models" / "vqct-on-s1" / "run.json").read_text())
    assert trained["guidance"]["weights"] == pytest.approx(best), "train did not use the tuned weights"
    assert trained["seed"] == 1
    evaluated = json.loads((repo / "reports" / "eval" / "vqct-on-s0.json").read_text())
    assert evaluated["protocol"]["split"] == "test" and "words_usage" in json.dumps(evaluated)

    again = _run(["dvc", "repro"], repo)
    assert "Running stage" not in again, again

    metrics = _run(["dvc", "metrics", "show"], repo)
    assert "psnr" in metrics
    _run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], repo)
    assert "reconstruction" in (tmp_path / "plots" / "index.html").read_text()

    exp = _run(["dvc", "exp", "run", "-S", "train.lr=0.002", "train@vqct-off-0"], repo)
    assert "Running stage 'train@vqct-off-0'" in exp
    assert "Running stage 'train@vqct-on-0'" not in exp
