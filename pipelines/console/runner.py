"""Runs ``dvc repro`` (or any command printing like it) as a child process and feeds its merged stdout and
stderr to a :class:`~pipelines.console.session.Session`, polling the progress bar while the child is quiet."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipelines import progress
from pipelines.console.session import Session

POLL_SECONDS = 0.5


def child_env(base: Mapping[str, str], progress_dir: Path) -> dict[str, str]:
    """The child's environment: ``base`` plus the progress folder and unbuffered Python output (so dvc's
    "Running stage" line and the stage's own lines arrive in the order they were written)."""
    return {**base, progress.ENV: str(progress_dir.resolve()), "PYTHONUNBUFFERED": "1"}


def run(command: Sequence[str], session: Session, env: Mapping[str, str], poll: float = POLL_SECONDS) -> int:
    """Run ``command`` to its end; returns its exit code (130 when interrupted)."""
    proc = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env),
    )
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for raw in iter(proc.stdout.readline, b""):  # split on "\n" only: a tqdm "\r" stays inside its line
            lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        lines.put(None)

    threading.Thread(target=read, name="dvc-output", daemon=True).start()
    try:
        last_tick = 0.0
        while True:
            try:
                line = lines.get(timeout=poll)
            except queue.Empty:
                session.tick()
                last_tick = time.monotonic()
                continue
            if line is None:
                break
            session.feed(line)
            if time.monotonic() - last_tick >= poll:
                session.tick()
                last_tick = time.monotonic()
        return session.finish(proc.wait())
    except KeyboardInterrupt:  # the child got the same SIGINT from the terminal
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
        return session.interrupted()
    finally:
        if proc.poll() is None:
            proc.kill()
