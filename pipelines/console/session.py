"""One ``dvc repro`` as the console tells it: fed dvc's output line by line (``feed``), polled for the
progress bar (``tick``), closed with dvc's exit code (``finish``). Every line reaches the logs; the screen
gets a start and an end line per stage, the live bar, and the summary or the failure."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.console import lines
from pipelines.console.bar import render
from pipelines.console.dvc_output import LockUpdated, StageSkipped, StageStarted, parse
from pipelines.console.memory import PeakMemory
from pipelines.console.stage_logs import StageLogs, tail
from pipelines.console.summary import summary_lines
from pipelines.console.terminal import Terminal
from pipelines.console.watcher import ProgressWatcher

TAIL_LINES = 30
STAGES_FILE = "stages.json"


@dataclass(frozen=True)
class Outputs:
    """Where the summary reads from and points to."""

    summary: Path
    report: Path
    logs: Path


class Session:
    def __init__(
        self,
        terminal: Terminal,
        logs: StageLogs,
        watcher: ProgressWatcher,
        outputs: Outputs,
        clock: Callable[[], float] = time.time,
        memory: PeakMemory | None = None,
    ):
        self.terminal, self.logs, self.watcher, self.outputs, self.clock = (
            terminal,
            logs,
            watcher,
            outputs,
            clock,
        )
        self.memory = memory
        self.began = clock()
        self.records: list[dict[str, object]] = []
        self.watcher.clear()  # files left by an earlier, interrupted run
        self.current: str | None = None
        self.stage_began = 0.0
        self.ran: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self._pending_skips: list[tuple[str, str]] = []

    # ---------------------------------------------------------------------------------------------- events

    def feed(self, line: str) -> None:
        """One line of dvc's output (without its newline)."""
        event = parse(line)
        if isinstance(event, StageStarted):
            self._close_stage()
            self._flush_skips()
            now = self.clock()
            self.current, self.stage_began = event.stage, now
            self.logs.begin(event.stage)
            self.watcher.start(since=now)
            if self.memory is not None:
                self.memory.reset()
            self.terminal.line(lines.started(event.stage, now))
        elif isinstance(event, LockUpdated):
            self._close_stage()
        elif isinstance(event, StageSkipped):
            self.skipped.append((event.stage, event.reason))
            self._pending_skips.append((event.stage, event.reason))
        self.logs.write(line)

    def tick(self) -> None:
        """Redraw the progress bar of the running stage (on a terminal)."""
        if self.memory is not None and self.current:
            self.memory.sample()
        state = self.watcher.current() if self.current else None
        if state is None:
            self.terminal.status(None)
            return
        width, now = self.terminal.width() - 3, self.clock()
        self.terminal.status("  " + render(state, width, now, since=self.stage_began))

    def finish(self, returncode: int) -> int:
        """dvc exited: close the running stage, print the summary or the failure; returns the exit code."""
        if returncode == 0:
            self._close_stage()
            self._flush_skips()
            self.logs.close()
            self._summary()
        else:
            self._failure(returncode)
        return returncode

    def interrupted(self) -> int:
        self.terminal.status(None)
        where = f" during {self.current}; its log: {self.logs.path_of(self.current)}" if self.current else ""
        self.logs.close()
        self.terminal.line(f"{lines.stamp(self.clock())} ✗ interrupted{where}")
        return 130

    # ---------------------------------------------------------------------------------------------- parts

    def _close_stage(self) -> None:
        """The running stage succeeded: its end line with the wall time and its headline."""
        if self.current is None:
            return
        now = self.clock()
        headline = self.watcher.headline()
        peak = None
        if self.memory is not None:
            self.memory.sample()
            peak = self.memory.describe()
        self.terminal.status(None)
        self.terminal.line(lines.done(self.current, now, now - self.stage_began, headline, peak))
        self.ran.append(self.current)
        self._record(self.current, now - self.stage_began)
        self.watcher.clear()
        self.logs.end()
        self.current = None

    def _record(self, stage: str, seconds: float) -> None:
        """Append the stage's wall time and peak memory to ``<logs>/stages.json`` (rewritten atomically)."""
        peak = self.memory.peak if self.memory is not None else None
        self.records.append({"stage": stage, "seconds": round(seconds, 1), "peak_memory_bytes": peak})
        path = self.outputs.logs / STAGES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        memory_note = "machine memory in use above the run's start, sampled every ~0.5 s"
        tmp.write_text(json.dumps({"peak_memory": memory_note, "stages": self.records}, indent=2) + "\n")
        os.replace(tmp, path)

    def _flush_skips(self) -> None:
        if self._pending_skips:
            self.terminal.line(lines.skipped(self._pending_skips))
            self._pending_skips = []

    def _summary(self) -> None:
        total = self.clock() - self.began
        if self.ran:
            plural = "s" if len(self.ran) != 1 else ""
            head = f"pipeline: {len(self.ran)} stage{plural} ran in {lines.duration(total)}"
        else:
            head = "pipeline: nothing to run, every stage is up to date"
        if self.skipped:
            head += f" ({len(self.skipped)} up to date)" if self.ran else f" ({len(self.skipped)})"
        self.terminal.line("")
        self.terminal.line(head)
        self.terminal.lines(summary_lines(self.outputs.summary, self.outputs.report, self.outputs.logs))

    def _failure(self, returncode: int) -> None:
        self.terminal.status(None)
        now = self.clock()
        dvc_log = self.logs.dvc_path
        if self.current is not None:
            path = self.logs.path_of(self.current)
            self.logs.close()
            self.terminal.line(lines.failed(self.current, now, now - self.stage_began))
            self.terminal.lines(lines.log_tail(path, tail(path, TAIL_LINES), dvc_log))
        else:
            self._flush_skips()
            self.logs.close()
            self.terminal.line(f"{lines.stamp(now)} ✗ dvc repro exited with code {returncode}")
            self.terminal.lines(lines.log_tail(dvc_log, tail(dvc_log, TAIL_LINES), dvc_log))
