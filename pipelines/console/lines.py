"""The console's sentences: a stage started, ended, up to date or failed; durations and clock times."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

NAME_WIDTH = 22


def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def duration(seconds: float) -> str:
    """``0.8 s``, ``42 s``, ``2:42``, ``1:02:03``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return clock(seconds)


def stamp(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))


def started(stage: str, when: float) -> str:
    return f"{stamp(when)} ▶ {stage}"


def done(stage: str, when: float, seconds: float, headline: str | None, peak: str | None = None) -> str:
    text = f"{stamp(when)} ✓ {stage:<{NAME_WIDTH}} {duration(seconds):>7}"
    text = f"{text}  {headline}" if headline else text
    return f"{text}  ({peak})" if peak else text


def skipped(stages: Sequence[tuple[str, str]], limit: int = 6) -> str:
    """One line for the stages DVC did not run, grouped by reason."""
    groups: dict[str, list[str]] = {}
    for stage, reason in stages:
        groups.setdefault(reason, []).append(stage)
    parts = []
    for reason, names in groups.items():
        shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
        parts.append(f"{reason}: {shown}")
    return "         · " + "; ".join(parts)


def failed(stage: str, when: float, seconds: float) -> str:
    return f"{stamp(when)} ✗ {stage} failed after {duration(seconds)}"


def log_tail(path: Path, tail: Sequence[str], dvc_log: Path) -> list[str]:
    """The block shown under a failed stage: the tail of its log, then where the full logs are."""
    out = [f"  last {len(tail)} lines of {path}:"] if tail else [f"  {path} is empty"]
    out += [f"  │ {line}" for line in tail]
    out.append(f"  full log: {path}   (all of dvc repro: {dvc_log})")
    return out
