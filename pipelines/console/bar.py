"""A progress bar as one line of text: ``train ▕██████░░░▏ 142/400 steps · 2.9 steps/s · ETA 1:29 · note``."""

from __future__ import annotations

from pipelines.console.lines import clock
from pipelines.progress import BarState

FULL, EMPTY = "█", "░"


def render(state: BarState, width: int, now: float, cells: int = 24, since: float | None = None) -> str:
    """The bar of ``state`` at time ``now``, cut to ``width`` characters.

    Rate and ETA come from the bar's own times; the ETA counts down between the stage's writes. Bars over
    parts of unequal cost (``eta`` false), and any bar before its rate is known, show the time elapsed since
    ``since`` (the stage's start; default the bar's first update) instead.
    """
    total = max(state.total, 0.0)
    fraction = min(1.0, state.done / total) if total > 0 else 0.0
    filled = round(fraction * cells)
    parts = [f"{state.label} ▕{FULL * filled}{EMPTY * (cells - filled)}▏ {_count(state)}"]
    rate = state.rate()
    if state.eta and rate:
        parts.append(_rate(rate, state.unit))
        if not state.finished and total > state.done:
            parts.append("ETA " + clock(max(0.0, (total - state.done) / rate - (now - state.updated))))
    else:
        parts.append(clock(max(0.0, now - (state.started if since is None else since))) + " elapsed")
    if state.note:
        parts.append(state.note)
    text = " · ".join(parts)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _count(state: BarState) -> str:
    done = f"{state.done:g}" if state.done == int(state.done) else f"{state.done:.1f}"
    return f"{done}/{state.total:g} {_plural(state.unit, state.total)}"


def _rate(rate: float, unit: str) -> str:
    if rate >= 1:
        return f"{rate:.1f} {unit}s/s"
    return f"{1 / rate:.1f} s/{unit}"


def _plural(unit: str, count: float) -> str:
    return unit if count == 1 else unit + "s"
