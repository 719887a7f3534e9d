"""The generation part of the downstream section of ``reports/report.md``: per tokenizer (rows VQ-GAN,
VQ-GAN+LG, …) the four generation tasks of its ``generate@<run>`` stage — Fréchet distance of the samples to
the real test images, condition consistency of the scene judges, the generator's NLL — beside the reference
rows (the tokenizer's own reconstructions, the unigram baseline, the real images, the shuffled-condition
control) and the paper's FIDs (CelebA-HQ, 256 px: for the direction of base vs +LG only).

Input: ``reports/downstream/generate-<run>.json`` (``pipelines.downstream.generate``).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from pipelines.downstream.layout import DASH, lookup, model_label, read_report
from pipelines.downstream.params import parse_run
from pipelines.statistics import mean_interval

logger = logging.getLogger(__name__)

TASK_TITLES = {
    "unconditional": "unconditional",
    "completion": "completion",
    "semantic": "semantic synthesis",
    "text_to_image": "text-to-image",
}
# The paper's FIDs on CelebA-HQ (METHOD-LGVQ.md §7.6–7.9): Tables 7, 10, 6, 5.
PAPER_FID = {
    "VQ-GAN": {"unconditional": 10.2, "completion": 9.02, "semantic": 11.53, "text_to_image": 15.29},
    "LG-VQ (VQ-GAN+LG)": {
        "unconditional": 9.1,
        "completion": 8.14,
        "semantic": 11.46,
        "text_to_image": 12.61,
    },
    "CVQ": {"semantic": 11.04, "text_to_image": 13.23},
    "CVQ+LG": {"semantic": 11.03, "text_to_image": 12.33},
}
# Consistency: (task, key of the score, header)
CONSISTENCY = (
    ("semantic", "miou", "semantic mIoU % ↑"),
    ("text_to_image", "object_recall", "text-to-image objects found % ↑"),
)


def collect(folder: Path | None, runs: list[str]) -> dict[str, dict[str, Any]]:
    """run → its ``generate@<run>`` report (missing or unreadable files left out with a warning)."""
    reports = {
        run: read_report(folder / f"generate-{run}.json" if folder is not None else None) for run in runs
    }
    return {run: report for run, report in reports.items() if report is not None}


def _cell(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    if not values:
        return DASH
    interval = mean_interval([v * scale for v in values])
    if interval.n < 2 or not math.isfinite(interval.half_width):
        return f"{interval.mean:.{digits}f}"
    return f"{interval.mean:.{digits}f} ± {interval.half_width:.{digits}f}"


def _values(reports: list[dict[str, Any]], *path: str) -> list[float]:
    return [v for v in (lookup(r, path) for r in reports) if v is not None]


def _tasks(reports: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for report in reports:
        for task in report.get("tasks") or {}:
            if task not in found:
                found.append(task)
    return [t for t in TASK_TITLES if t in found]


def _header(tasks: list[str]) -> list[str]:
    header = ["row", "seeds"] + [f"{TASK_TITLES[t]} FD ↓" for t in tasks]
    if "completion" in tasks:
        header.append("completion: given half PSNR dB")
    header += [h for t, _, h in CONSISTENCY if t in tasks]
    return header + ["NLL nats/code ↓"]


def _row(label: str, seeds: str, reports: list[dict[str, Any]], tasks: list[str], kind: str) -> list[str]:
    """One table row. ``kind``: ``samples`` (the generator), ``reconstructions``, ``unigram``, ``real``,
    ``shuffled``."""
    cells = [label, seeds]
    for task in tasks:
        if kind == "samples":
            cells.append(_cell(_values(reports, "tasks", task, "fd", "samples"), digits=1))
        elif kind == "reconstructions":
            cells.append(_cell(_values(reports, "reference", "fd", "reconstructions"), digits=1))
        elif kind == "unigram":
            key = (
                ("tasks", task, "fd", "unigram_fill")
                if task == "completion"
                else ("reference", "fd", "unigram_baseline")
            )
            cells.append(_cell(_values(reports, *key), digits=1))
        else:
            cells.append(DASH)
    if "completion" in tasks:
        source = {"samples": "samples", "reconstructions": "reconstructions"}.get(kind)
        cells.append(
            _cell(_values(reports, "tasks", "completion", "given_half", source, "psnr_db"), digits=2)
            if source
            else DASH
        )
    consistency_key = {
        "samples": "samples",
        "reconstructions": "reconstructions",
        "unigram": "unigram_baseline",
        "real": "real_images",
    }
    for task, key, _ in CONSISTENCY:
        if task not in tasks:
            continue
        if kind == "shuffled":
            source = "shuffled_masks" if task == "semantic" else "shuffled_captions"
        else:
            source = consistency_key.get(kind, "")
        cells.append(
            _cell(_values(reports, "tasks", task, "consistency", source, key), scale=100.0, digits=1)
        )
    if kind == "samples":
        cells.append(_cell(_values(reports, "nll", "null_condition"), digits=3))
    elif kind == "unigram":
        cells.append(_cell(_values(reports, "nll", "unigram_entropy")[:1], digits=3))
    else:
        cells.append(DASH)
    return cells


def _models(runs: dict[str, dict[str, Any]]) -> dict[tuple[str, bool], list[str]]:
    grouped: dict[tuple[str, bool], list[str]] = {}
    for run in sorted(runs, key=parse_run):
        base, lg, _ = parse_run(run)
        grouped.setdefault((base, lg), []).append(run)
    return grouped


def table(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The markdown table: each model, then its reference rows, then the paper's FIDs."""
    tasks = _tasks(list(runs.values()))
    header = _header(tasks)
    rows: list[list[str]] = []
    models = _models(runs)
    for (base, lg), names in models.items():
        seeds = ", ".join(str(parse_run(n)[2]) for n in names)
        rows.append(
            _row(f"**{model_label(base, lg)}** samples", seeds, [runs[n] for n in names], tasks, "samples")
        )
    for (base, lg), names in models.items():
        seeds = ", ".join(str(parse_run(n)[2]) for n in names)
        reports = [runs[n] for n in names]
        label = model_label(base, lg)
        rows.append(
            _row(f"{label} reconstructions of the test images", seeds, reports, tasks, "reconstructions")
        )
        rows.append(_row(f"{label} unigram baseline (codes drawn i.i.d.)", seeds, reports, tasks, "unigram"))
        rows.append(_row(f"{label} samples vs another row's condition", seeds, reports, tasks, "shuffled"))
    first = [runs[n] for n in next(iter(models.values()))]
    rows.append(_row("real test images", DASH, first, tasks, "real"))
    for label, values in PAPER_FID.items():
        if not any(t in values for t in tasks):
            continue
        cells = [f"*{label} (paper, CelebA-HQ FID)*", ""]
        cells += [f"{values[t]:.2f}" if t in values else "" for t in tasks]
        cells += [""] * (len(header) - len(cells))
        rows.append(cells)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def verdicts(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Per model and conditional task: is the consistency above the shuffled control, and how far from the
    real images; per model: FD of the samples against the unigram baseline and the reconstructions."""
    lines = []
    for (base, lg), names in _models(runs).items():
        reports = [runs[n] for n in names]
        label = model_label(base, lg)
        for task in _tasks(reports):
            fd = _values(reports, "tasks", task, "fd", "samples")
            unigram_key = (
                ("tasks", task, "fd", "unigram_fill")
                if task == "completion"
                else ("reference", "fd", "unigram_baseline")
            )
            uni = _values(reports, *unigram_key)
            rec = _values(reports, "reference", "fd", "reconstructions")
            if fd and uni and rec:
                f, u, r = (sum(v) / len(v) for v in (fd, uni, rec))
                text = f"- {label}, {TASK_TITLES[task]}: FD {f:.1f} vs unigram baseline {u:.1f} ({'better' if f < u else 'NOT better'}) and reconstructions {r:.1f}"
                for t, key, _ in CONSISTENCY:
                    if t != task:
                        continue
                    shuffled = "shuffled_masks" if task == "semantic" else "shuffled_captions"
                    s = _values(reports, "tasks", task, "consistency", "samples", key)
                    c = _values(reports, "tasks", task, "consistency", shuffled, key)
                    real = _values(reports, "tasks", task, "consistency", "real_images", key)
                    if s and c and real:
                        sm, cm, rm = (100 * sum(v) / len(v) for v in (s, c, real))
                        separated = _separated(reports, task, key, shuffled)
                        verdict = (
                            "the condition is followed: the 95 % intervals do not overlap"
                            if separated and sm > cm
                            else "NOT distinguishable from ignoring the condition"
                        )
                        text += (
                            f"; consistency {sm:.1f} % vs {cm:.1f} % with another row's condition ({verdict}), "
                            f"real images {rm:.1f} %"
                        )
                lines.append(text + ".")
    return lines


def _separated(reports: list[dict[str, Any]], task: str, key: str, control: str) -> bool:
    """Whether, in every report, the samples' bootstrap interval of ``key`` lies above the control's."""
    found = False
    for report in reports:
        node = ((report.get("tasks") or {}).get(task) or {}).get("consistency") or {}
        ours = (node.get("samples") or {}).get(f"{key}_interval")
        theirs = (node.get(control) or {}).get(f"{key}_interval")
        if not ours or not theirs:
            return False
        if ours[0] <= theirs[1]:
            return False
        found = True
    return found


def headline_numbers(report: dict[str, Any]) -> str:
    """The console line of one stage: FD per task, and the consistency scores beside their controls."""
    parts = []
    for task in _tasks([report]):
        fd = lookup(report, ("tasks", task, "fd", "samples"))
        parts.append(
            f"{TASK_TITLES[task]} FD {fd:.1f}" if fd is not None else f"{TASK_TITLES[task]} FD {DASH}"
        )
    rec = lookup(report, ("reference", "fd", "reconstructions"))
    text = ", ".join(parts) + (f" (reconstructions {rec:.1f})" if rec is not None else "")
    for task, key, header in CONSISTENCY:
        s = lookup(report, ("tasks", task, "consistency", "samples", key))
        c = lookup(
            report,
            (
                "tasks",
                task,
                "consistency",
                "shuffled_masks" if task == "semantic" else "shuffled_captions",
                key,
            ),
        )
        if s is not None and c is not None:
            text += f"; {TASK_TITLES[task]} {key} {100 * s:.1f} % (shuffled {100 * c:.1f} %)"
    return text


def figure_links(runs: dict[str, dict[str, Any]], out: Path) -> str:
    links = []
    for run, report in sorted(runs.items()):
        base, lg, seed = parse_run(run)
        for task, figure in ((report.get("pipeline") or {}).get("figures") or {}).items():
            if figure and Path(figure).is_file():
                target = Path(os.path.relpath(Path(figure), out)).as_posix()
                links.append(f"[{model_label(base, lg)} seed {seed} {TASK_TITLES.get(task, task)}]({target})")
    return "Sample grids: " + (", ".join(links) if links else "none yet") + "."


def section(folder: Path | None, runs: list[str], out: Path) -> tuple[list[str], dict[str, Any]]:
    """The markdown lines of the generation part and its numbers for ``summary.json``."""
    collected = collect(folder, runs)
    lines = ["### Generation on codes", ""]
    if not collected:
        return lines + [f"No generate stage has run yet (0 of {len(runs)})."], {"stages_found": 0}
    any_report = next(iter(collected.values()))
    protocol = any_report.get("protocol") or {}
    sampling = protocol.get("sampling") or {}
    lines += [
        f"{len(collected)} of {len(runs)} generate stages found. One generator per tokenizer "
        f"({protocol.get('sampler', '?')}, trained on the train split with the text and mask conditions, each "
        "dropped independently, so one model serves the four tasks), evaluated once on the test split: "
        f"{protocol.get('num_samples', '?')} samples per task, guidance scale {sampling.get('guidance_scale', '?')} "
        f"for the conditional tasks, temperature {sampling.get('temperature', '?')}, seed {sampling.get('seed', '?')}. "
        f"FD: Fréchet distance on {protocol.get('feature_network', '?')} features to the real test images "
        "(not FID: compare rows of this table only). Completion: the top half of each test image's codes given. "
        "Consistency: scene judges trained on real training images (stage `judges`) score whether a "
        "sample shows the mask's classes (mIoU) or the caption's (colour, shape) objects; the real images' "
        "score is the ceiling, another row's condition the floor. NLL: the generator's masked-code NLL on "
        "test codes (null condition), beside the unigram entropy (uniform: ln K). One seed per model: no "
        "interval.",
        "",
        *table(collected),
        "",
        *verdicts(collected),
        "",
        figure_links(collected, out),
        "",
    ]
    summary = {
        "stages_found": len(collected),
        "runs": {
            run: {
                task: {
                    "fd": lookup(report, ("tasks", task, "fd", "samples")),
                    **{
                        key: lookup(report, ("tasks", task, "consistency", "samples", key))
                        for t, key, _ in CONSISTENCY
                        if t == task
                    },
                }
                for task in _tasks([report])
            }
            for run, report in collected.items()
        },
    }
    return lines, summary
