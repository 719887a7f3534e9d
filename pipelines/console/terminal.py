"""The only writer to the screen: permanent lines, and on a terminal one live status line (the progress bar)
that is redrawn in place and cleared before every permanent line. Not a terminal (a pipe, a file, CI): no
status line at all, so the output stays one line per event."""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

_CLEAR = "\r\x1b[K"


class Terminal:
    def __init__(self, stream: TextIO | None = None, live: bool | None = None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._status: str | None = None

    def width(self) -> int:
        return shutil.get_terminal_size((100, 24)).columns

    def line(self, text: str = "") -> None:
        """A permanent line (the status line, if any, is redrawn below it)."""
        self._erase()
        self.stream.write(text + "\n")
        if self._status is not None:
            self.stream.write(self._status)
        self.stream.flush()

    def lines(self, texts: list[str]) -> None:
        for text in texts:
            self.line(text)

    def status(self, text: str | None) -> None:
        """Show (or with None remove) the live status line; ignored when not live."""
        if not self.live:
            return
        if text == self._status:
            return
        self._erase()
        self._status = text
        if text is not None:
            self.stream.write(text)
        self.stream.flush()

    def _erase(self) -> None:
        if self.live and self._status is not None:
            self.stream.write(_CLEAR)
