"""The closing table of ``make pipeline``: the report's headline numbers (``reports/summary.json``, written by
the report stage) and where the report, the metrics and the logs are."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipelines.downstream.layout import model_label

# (summary.json key, column title, scale, digits)
COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    ("psnr", "PSNR dB", 1.0, 2),
    ("ssim", "SSIM", 1.0, 3),
    ("fd", "FD", 1.0, 1),
    ("codebook_usage", "usage %", 100.0, 1),
    ("diagnostics.recall_gain_mask1", "LG recall gain (points)", 100.0, 1),
)


def summary_lines(summary: Path, report: Path, logs: Path) -> list[str]:
    """The summary block: one row per model (means over seeds), the paired PSNR delta of each base with and
    without LG, and the paths. Without a ``summary.json`` (the report stage has not run) only the paths."""
    data = _read(summary)
    out: list[str] = []
    if data is not None:
        evaluated, expected = data.get("runs_evaluated"), data.get("runs_expected")
        runs = f", {evaluated} of {expected} runs evaluated" if evaluated is not None else ""
        out.append(f"results (means over seeds{runs}; {summary}):")
        out += _model_table(data.get("models") or {})
        out += ["  " + line for line in _deltas(data.get("paired_deltas") or {})]
    else:
        out.append(f"no {summary} yet (the report stage has not run)")
    out.append(f"report: {report}")
    out.append(f"logs:   {logs}/<stage>.log per stage, {logs}/dvc.log for all of dvc repro")
    out.append(f"stages: {logs}/stages.json (each stage's wall time and peak memory)")
    return out


def _model_table(models: dict[str, dict[str, Any]]) -> list[str]:
    if not models:
        return []
    columns = [c for c in COLUMNS if any(_number(m.get(c[0])) for m in models.values())]
    header = ["model", *(title for _, title, _, _ in columns)]
    rows = [header]
    for key in sorted(models, key=_model_order):
        values = models[key]
        row = [_label(key)]
        for name, _, scale, digits in columns:
            value = values.get(name)
            row.append(f"{scale * value:.{digits}f}" if _number(value) else "—")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))]
        lines.append("  " + "  ".join(cells))
    return lines


def _deltas(deltas: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for key in sorted(deltas):
        base, _, metric = key.partition("/")
        if metric != "psnr":
            continue
        d = deltas[key]
        if not all(_number(d.get(k)) for k in ("mean", "low", "high")):
            continue
        pair = f"{model_label(base, True)} vs {model_label(base, False)}: PSNR {d['mean']:+.2f} dB"
        n = d.get("n")
        if not isinstance(n, int) or n < 2:
            out.append(f"{pair} (one seed: no interval)")
            continue
        verdict = "distinguishable from 0" if d.get("excludes_zero") else "not distinguishable from 0"
        out.append(f"{pair} [{d['low']:+.2f}, {d['high']:+.2f}] over {n} seeds, {verdict}")
    return out


def _label(key: str) -> str:
    """``vqgan-on`` -> ``VQ-GAN+LG`` (summary.json's model keys are ``<base>-on|off``)."""
    base, _, lg = key.rpartition("-")
    return model_label(base, lg == "on") if base and lg in ("on", "off") else key


def _model_order(key: str) -> tuple[str, bool]:
    base, _, lg = key.rpartition("-")
    return base, lg == "on"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
