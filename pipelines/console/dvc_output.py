"""What a line of ``dvc repro`` output means for the console: a stage starting, a stage skipped because it is
up to date, the lock file being updated after a stage succeeded, or nothing (the stage's own output)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class StageStarted:
    stage: str


@dataclass(frozen=True)
class StageSkipped:
    """Not run: unchanged (``reason="up to date"``) or restored from DVC's run cache."""

    stage: str
    reason: str


@dataclass(frozen=True)
class LockUpdated:
    """DVC wrote ``dvc.lock``: the stage before it finished successfully."""


Event = StageStarted | StageSkipped | LockUpdated

_PATTERNS: list[tuple[re.Pattern[str], type]] = [
    (re.compile(r"^Running stage '(?P<stage>.+)':$"), StageStarted),
    (re.compile(r"^Stage '(?P<stage>.+)' didn't change, skipping$"), StageSkipped),
    (re.compile(r"^Stage '(?P<stage>.+)' is cached - skipping run, checking out outputs$"), StageSkipped),
    (re.compile(r"^Updating lock file '.+'$"), LockUpdated),
]


def parse(line: str) -> Event | None:
    """The event a line of dvc output stands for, or None."""
    text = _ANSI.sub("", line).strip()
    for pattern, kind in _PATTERNS:
        match = pattern.match(text)
        if match is None:
            continue
        if kind is StageStarted:
            return StageStarted(match["stage"])
        if kind is StageSkipped:
            reason = "restored from the run cache" if "is cached" in text else "up to date"
            return StageSkipped(match["stage"], reason)
        return LockUpdated()
    return None
