"""CLI wiring of the real-data sources (filled as sources are added)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

CLI_SOURCES: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Path]]] = {}
