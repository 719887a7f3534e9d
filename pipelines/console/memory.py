"""Peak memory per stage, as the console can see it: the machine's memory in use (``MemTotal − MemAvailable``
of ``/proc/meminfo``) above what was in use when the run began.

A stage's processes are not all children of ``dvc repro`` (its Ray workers belong to the shared Ray head), so
the console measures the machine instead of a process tree: on a machine running nothing else this is the
memory the stage (with Ray's own processes) holds; it is sampled every console tick (about 0.5 s), so a spike
shorter than that can be missed. Where ``/proc/meminfo`` is absent, nothing is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def memory_in_use(meminfo: Path = MEMINFO) -> int | None:
    """Bytes in use on this machine (``MemTotal − MemAvailable``), or None where ``meminfo`` is unreadable."""
    try:
        fields = {}
        for line in meminfo.read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                fields[name] = int(parts[0]) * 1024  # kB
        return fields["MemTotal"] - fields["MemAvailable"]
    except (OSError, KeyError, ValueError):
        return None


class PeakMemory:
    """The peak of ``read()`` above the value at construction, since the last ``reset()`` (bytes)."""

    def __init__(self, read: Callable[[], int | None] = memory_in_use):
        self.read = read
        self.baseline = read()
        self.peak: int | None = None

    def reset(self) -> None:
        self.peak = None
        self.sample()

    def sample(self) -> None:
        value = self.read()
        if value is None or self.baseline is None:
            return
        above = max(0, value - self.baseline)
        self.peak = above if self.peak is None else max(self.peak, above)

    def describe(self) -> str | None:
        """``peak 1.23 GB`` (memory in use above the run's start), or None when nothing was measured."""
        return None if self.peak is None else f"peak {self.peak / 1e9:.2f} GB"
