"""Progress and headline of a running stage, for the console of ``make pipeline`` (``pipelines.console``).

When ``LGVQ_PROGRESS_DIR`` names a folder (the console sets it for every stage it runs), a stage writes small
JSON files there: ``bar-<name>.json`` per progress bar (a training run, an evaluation, a search) and, when it
ends, ``headline.json`` with its key figure (``train``: the final reconstruction loss, ``evaluate``: PSNR, …).
The console reads them; nothing else does. Without the variable (``dvc repro`` run directly, tests) nothing is
written and :func:`active` is false, so callers keep their own progress output (tqdm) as before.

Files are replaced atomically (write to a temporary file, then rename), so a reader never sees half a file.
Writes of a bar are throttled to one per ``min_interval`` seconds; the last state is always written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ENV = "LGVQ_PROGRESS_DIR"
HEADLINE_FILE = "headline.json"
BAR_PREFIX = "bar-"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BarState:
    """One progress bar as written to disk.

    ``done``/``total`` in ``unit`` (``done`` may be fractional); ``started`` and ``updated`` are wall-clock
    times (``time.time()``) of the first and the latest update, ``start_done`` the value at ``started`` (a
    resumed run starts above 0), so the rate is ``(done - start_done) / (updated - started)``. ``eta``:
    whether a rate-based ETA means anything for this bar (not for bars over parts of unequal cost).
    """

    name: str
    label: str
    unit: str
    done: float
    total: float
    started: float
    updated: float
    start_done: float = 0.0
    finished: bool = False
    note: str = ""
    eta: bool = True

    def rate(self) -> float | None:
        """Units per second since the first update, or None before there is any."""
        seconds = self.updated - self.started
        if seconds <= 0 or self.done <= self.start_done:
            return None
        return (self.done - self.start_done) / seconds


def folder() -> Path | None:
    """The progress folder named by ``LGVQ_PROGRESS_DIR``, or None (then nothing is written)."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def active() -> bool:
    """True when a console follows this stage (``LGVQ_PROGRESS_DIR`` is set)."""
    return folder() is not None


class Bar:
    """Writes one :class:`BarState` file; every method is a no-op when ``path`` is None."""

    def __init__(
        self,
        path: Path | None,
        name: str,
        label: str,
        total: float,
        unit: str = "step",
        *,
        eta: bool = True,
        min_interval: float = 0.5,
    ):
        self.path, self.min_interval = path, min_interval
        now = time.time()
        self.state = BarState(name, label, unit, 0.0, float(total), now, now, eta=eta)
        self._written = 0.0
        self._first = True
        self._write()

    def update(self, done: float, note: str | None = None, *, force: bool = False) -> None:
        """Set the count (and the note); written when ``min_interval`` has passed since the last write."""
        now = time.time()
        changes: dict[str, Any] = {"done": float(done), "updated": now}
        if self._first:  # the rate counts from the first update (a resumed run starts above 0)
            changes.update(started=now, start_done=float(done))
            self._first = False
        if note is not None:
            changes["note"] = note
        self.state = _replace(self.state, **changes)
        if force or now - self._written >= self.min_interval:
            self._write()

    def finish(self, note: str | None = None) -> None:
        """Mark the bar finished (written at once)."""
        changes: dict[str, Any] = {"finished": True, "updated": time.time()}
        if note is not None:
            changes["note"] = note
        self.state = _replace(self.state, **changes)
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        self._written = time.time()
        _write_json(self.path, asdict(self.state))


def bar(name: str, label: str, total: float, unit: str = "step", *, eta: bool = True) -> Bar:
    """A progress bar in the progress folder (inert without one). ``name`` identifies it within the stage."""
    base = folder()
    path = base / f"{BAR_PREFIX}{_safe(name)}.json" if base is not None else None
    return Bar(path, name, label, total, unit, eta=eta)


class Parts:
    """A bar over named parts of unequal cost (an evaluation: reconstruction, figures, probe, …):
    ``begin(name)`` counts the parts before ``name`` as done and shows ``name`` as the note. No ETA."""

    def __init__(self, name: str, label: str, parts: list[str]):
        self.parts = list(parts)
        self.bar = bar(name, label, len(self.parts), unit="part", eta=False)

    def begin(self, part: str) -> None:
        self.bar.update(self.parts.index(part), note=part, force=True)

    def finish(self) -> None:
        self.bar.update(len(self.parts), note="", force=True)
        self.bar.finish()


def headline(text: str) -> None:
    """Record the stage's key figure (one short line) for the console's end-of-stage line."""
    base = folder()
    if base is not None:
        _write_json(base / HEADLINE_FILE, {"text": text, "written": time.time()})


# ------------------------------------------------------------------------------------------ reading


def read_bars(path: Path) -> list[BarState]:
    """Every readable bar file in ``path`` (a missing folder or a broken file is skipped)."""
    bars = []
    for file in sorted(path.glob(f"{BAR_PREFIX}*.json")) if path.is_dir() else []:
        data = _read_json(file)
        if data is None:
            continue
        try:
            bars.append(BarState(**data))
        except TypeError:
            logger.debug("%s: not a bar file", file)
    return bars


def read_headline(path: Path) -> str | None:
    """The headline text written in ``path``, if any."""
    data = _read_json(path / HEADLINE_FILE)
    text = data.get("text") if data else None
    return str(text) if text else None


def clear(path: Path) -> None:
    """Remove the bar and headline files of ``path`` (the console does this between stages)."""
    if not path.is_dir():
        return
    for file in [*path.glob(f"{BAR_PREFIX}*.json"), path / HEADLINE_FILE]:
        file.unlink(missing_ok=True)


def _replace(state: BarState, **changes: Any) -> BarState:
    return BarState(**{**asdict(state), **changes})


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "bar"


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f)
        os.replace(tmp, path)
    except OSError as err:  # progress is a courtesy: never fail a stage over it
        logger.debug("progress file %s not written: %s", path, err)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
