"""Where the output of ``dvc repro`` is kept: all of it in ``<folder>/dvc.log``, and each stage's lines (from
its "Running stage" line to the lock-file update after it) also in ``<folder>/<stage>.log``. Files are
rewritten by each run and flushed line by line, so they can be followed while a stage runs."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import TextIO

DVC_LOG = "dvc.log"


def stage_log_name(stage: str) -> str:
    """``train@vqgan-off-0`` -> ``train@vqgan-off-0.log``; a ``dir/dvc.yaml:stage`` address is flattened."""
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "_", stage) + ".log"


class StageLogs:
    """Routes lines to ``dvc.log`` and to the log of the stage that is running, if any."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.dvc_path = folder / DVC_LOG
        self._dvc: TextIO = self.dvc_path.open("w", encoding="utf-8")
        self._stage: TextIO | None = None
        self.stage_path: Path | None = None

    def path_of(self, stage: str) -> Path:
        return self.folder / stage_log_name(stage)

    def begin(self, stage: str) -> Path:
        """Start (truncate) the log of ``stage``; later lines go there until :meth:`end`."""
        self.end()
        self.stage_path = self.path_of(stage)
        self._stage = self.stage_path.open("w", encoding="utf-8")
        return self.stage_path

    def write(self, line: str) -> None:
        """One line (without its newline) to ``dvc.log`` and to the current stage's log."""
        for f in (self._dvc, self._stage):
            if f is not None:
                f.write(line + "\n")
                f.flush()

    def end(self) -> None:
        if self._stage is not None:
            self._stage.close()
        self._stage = None

    def close(self) -> None:
        self.end()
        self._dvc.close()


def tail(path: Path, count: int = 30) -> list[str]:
    """The last ``count`` lines of a text file (a tqdm-style line keeps what follows its last ``\\r``)."""
    if not path.is_file():
        return []
    with path.open("rb") as f:  # binary: lines end at "\n" only; a "\r" stays inside its line
        last = deque(f, maxlen=count)
    return [line.decode("utf-8", errors="replace").rstrip("\r\n").rsplit("\r", 1)[-1] for line in last]
