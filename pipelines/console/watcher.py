"""Follows the progress folder of the running stage (``pipelines.progress`` files): the bar to draw now
and, when the stage ends, its headline."""

from __future__ import annotations

from pathlib import Path

from pipelines import progress
from pipelines.progress import BarState


class ProgressWatcher:
    """Reads the progress files in ``folder``. The session calls :meth:`start` when a stage starts and
    :meth:`clear` when it has ended (and once before the first), so a headline is always the current stage's;
    a bar must also have been updated since the stage started (a late write of an earlier stage is ignored).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.since = 0.0
        folder.mkdir(parents=True, exist_ok=True)

    def start(self, since: float) -> None:
        """A stage started at ``since`` (a ``time.time()``): only bars updated from then on count."""
        self.since = since

    def clear(self) -> None:
        """Remove the progress files (the stage they belong to has ended)."""
        progress.clear(self.folder)

    def bars(self) -> list[BarState]:
        return [b for b in progress.read_bars(self.folder) if b.updated >= self.since]

    def current(self) -> BarState | None:
        """The bar to show: the most recently updated unfinished one, else the most recent one."""
        bars = self.bars()
        running = [b for b in bars if not b.finished]
        pool = running or bars
        return max(pool, key=lambda b: b.updated) if pool else None

    def headline(self) -> str | None:
        return progress.read_headline(self.folder)
