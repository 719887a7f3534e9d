"""The Ray saving of ``make pipeline``: the same tiny pipeline (every stage of the default, tiny params, as
``tests/pipelines/test_dvc_repro.py`` builds it) run end to end twice on fresh copies of this repository — once
with one shared local Ray head (``make pipeline``'s default) and once with a local Ray started by every stage
(``LGVQ_SHARED_RAY=0``) — in alternating order. Writes ``benchmarks/results/shared_ray.json`` and ``.md``.

    python benchmarks/bench_shared_ray.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "pipelines"), str(ROOT)]

from downstream_helpers import tiny_downstream  # noqa: E402
from pipeline_helpers import tiny_params  # noqa: E402
from test_dvc_repro import TINY_EVAL, TINY_TUNE, _copy_repo  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def tiny_repo(root: Path) -> Path:
    """A fresh git repository holding this checkout with the tiny params of the end-to-end test."""
    repo = root / "repo"
    repo.mkdir()
    _copy_repo(repo)
    params = yaml.safe_load(tiny_params(root).read_text())
    params["ray"]["storage_path"] = "ray_results"
    params["train"]["steps"] = 2
    params["tune"].update(TINY_TUNE)
    params["eval"].update(TINY_EVAL)
    params["runs"] = {"bases": ["vqgan"], "seeds": [0, 1]}
    runs = ["vqgan-on-s0"]
    tasks = {"caption": runs, "vqa": [], "ground": [], "retrieve": runs, "generate": runs}
    params["downstream"] = tiny_downstream({"runs": runs, "tasks": tasks})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "tiny"],
    ):
        subprocess.run(cmd, cwd=repo, check=True)
    return repo


def run_once(shared: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lgvq-bench-ray-") as tmp:
        repo = tiny_repo(Path(tmp))
        (repo / ".venv").symlink_to(ROOT / ".venv")
        env = dict(
            os.environ,
            LGVQ_SHARED_RAY="1" if shared else "0",
            HF_HUB_OFFLINE="1",
            DVC_NO_ANALYTICS="1",
            RAY_USAGE_STATS_ENABLED="0",
            TOKENIZERS_PARALLELISM="false",
        )
        env.pop("RAY_ADDRESS", None)
        started = time.perf_counter()
        out = subprocess.run(
            ["bash", "scripts/pipeline.sh"], cwd=repo, env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
        if out.returncode != 0:
            raise RuntimeError(out.stdout[-3000:] + out.stderr[-3000:])
        stages = sum(1 for line in out.stdout.splitlines() if " ✓ " in line)
        return {"seconds": seconds, "stages": stages}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"shared head": [], "a Ray per stage": []}
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        for shared in order:
            rows["shared head" if shared else "a Ray per stage"].append(run_once(shared))
    summary = {
        name: {"seconds": [x["seconds"] for x in runs], "stages": runs[0]["stages"]}
        for name, runs in rows.items()
    }
    mean = {name: sum(v["seconds"]) / len(v["seconds"]) for name, v in summary.items()}
    result = {
        "what": "tiny pipeline end to end (every default stage, VQ-GAN × LG off/on × 2 seeds, downstream of one run)",
        "cpu_count": os.cpu_count(),
        "runs": summary,
        "saving_seconds": mean["a Ray per stage"] - mean["shared head"],
        "saving_per_stage_seconds": (mean["a Ray per stage"] - mean["shared head"])
        / summary["shared head"]["stages"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "shared_ray.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| Ray | stages | wall s (each round) | mean s |", "|---|---|---|---|"]
    for name, v in summary.items():
        lines.append(
            f"| {name} | {v['stages']} | {', '.join(f'{s:.0f}' for s in v['seconds'])} | {mean[name]:.0f} |"
        )
    lines.append(
        f"\nSaving: {result['saving_seconds']:.0f} s ({result['saving_per_stage_seconds']:.1f} s per stage)."
    )
    (RESULTS / "shared_ray.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
