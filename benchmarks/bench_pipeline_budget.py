"""Budget of the offline default pipeline: wall time and peak memory of the whole ``dvc repro``.

Runs ``dvc repro --force`` (every stage, from scratch) in the repository root and samples, once per second,
the
summed resident memory (RSS) of the process tree it starts — DVC, each stage, the local Ray cluster (GCS,
raylet,
workers, Train/Tune actors). Stage boundaries come from DVC's "Running stage" lines. The goals: ≤ 30 minutes
and
≤ 6 GB on 2 CPU cores. The summed RSS counts pages shared between processes more than once (an upper bound).

Run: ``python benchmarks/bench_pipeline_budget.py [--no-force]``; writes
benchmarks/results/bench_pipeline_budget.{json,md}. Takes as long as the pipeline (about 25 minutes here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAME = "bench_pipeline_budget"
STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def tree_rss(root: psutil.Process) -> int:
    """Bytes of RSS summed over ``root`` and all its descendants (processes that vanish are skipped)."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--no-force", action="store_true", help="run only what is out of date (default: every stage)"
    )
    args = ap.parse_args()
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cmd = ["dvc", "repro"] + ([] if args.no_force else ["--force"])
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    root = psutil.Process(proc.pid)
    peak = {"bytes": 0, "at": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = tree_rss(root)
            if rss > peak["bytes"]:
                peak.update(bytes=rss, at=time.perf_counter() - started)
            done.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stages: list[dict[str, float | str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        match = STAGE_LINE.search(line)
        if match:
            now = time.perf_counter() - started
            if stages:
                stages[-1]["seconds"] = now - float(stages[-1]["start"])
            stages.append({"stage": match.group(1), "start": now})
    rc = proc.wait()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if stages:
        stages[-1]["seconds"] = wall - float(stages[-1]["start"])
    result = {
        "command": " ".join(cmd),
        "returncode": rc,
        "wall_seconds": round(wall, 1),
        "peak_tree_rss_gb": round(peak["bytes"] / 2**30, 2),
        "peak_at_seconds": round(peak["at"], 1),
        "goals": {"wall_seconds": 1800, "peak_rss_gb": 6.0},
        "stages": [{"stage": s["stage"], "seconds": round(float(s.get("seconds", 0.0)), 1)} for s in stages],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# {NAME}",
        "",
        f"`{result['command']}` on {os.cpu_count()} CPU cores: **{wall / 60:.1f} min** wall (goal ≤ 30), "
        f"peak RSS of the process tree **{result['peak_tree_rss_gb']} GB** (goal ≤ 6; summed RSS, an upper "
        f"bound), exit {rc}.",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {s['stage']} | {s['seconds']} |" for s in result["stages"]],
    ]
    (RESULTS / f"{NAME}.md").write_text("\n".join(lines) + "\n")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
