"""``python -m pipelines.console [--logs reports/logs] -- dvc repro [ARGS...]``: the short console of ``make
pipeline`` (see the package docstring). Exits with the command's exit code."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines.console.memory import PeakMemory
from pipelines.console.runner import child_env, run
from pipelines.console.session import Outputs, Session
from pipelines.console.stage_logs import StageLogs
from pipelines.console.terminal import Terminal
from pipelines.console.watcher import ProgressWatcher


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logs", type=Path, default=Path("reports/logs"), help="log folder")
    p.add_argument("--summary", type=Path, default=Path("reports/summary.json"))
    p.add_argument("--report", type=Path, default=Path("reports/report.md"))
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command (default: dvc repro)")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    command = command or ["dvc", "repro"]
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")  # a terminal without UTF-8 gets "?" for ✓ and ▶
    terminal = Terminal(sys.stdout)
    progress_dir = args.logs / "progress"
    session = Session(
        terminal,
        StageLogs(args.logs),
        ProgressWatcher(progress_dir),
        Outputs(summary=args.summary, report=args.report, logs=args.logs),
        memory=PeakMemory(),
    )
    terminal.line(
        f"pipeline: {' '.join(command)}; full output in {args.logs}/ (make pipeline V=1 streams it instead)"
    )
    return run(command, session, child_env(os.environ, progress_dir))


if __name__ == "__main__":
    raise SystemExit(main())
