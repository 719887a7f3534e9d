"""The downstream section of ``reports/report.md`` (called by ``pipelines.report``): per task the second-stage
model on each tokenizer's codes (rows: base, base+LG), the task's trivial baseline and the shuffled-codes
control, beside the paper's own numbers (labelled as the paper's, on its datasets), links to the example PNGs
and the stage timings; plus the numbers for ``summary.json``.

Input: the per-stage reports ``reports/downstream/<task>-<run>.json`` (``pipelines.downstream.task``) of the
runs ``downstream.tasks`` lists. Several seeds of one model are averaged with a 95 % Student-t interval; a
model with one seed shows its value alone and the section says there is no interval.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from pipelines.downstream.layout import (  # noqa: F401  (re-exported for the report's readers)
    BASE_NAMES,
    BASELINES,
    CAPTION_COLUMNS,
    DASH,
    GROUND_COLUMNS,
    HEADLINE,
    HEADLINE_NAME,
    MODEL_PREFIX,
    RETRIEVE_COLUMNS,
    SHUFFLED_PREFIX,
    TASK_TITLES,
    Column,
    _fmt,
    _join,
    _name,
    _values,
    best_baseline,
    headline_numbers,
    lookup,
    model_label,
    read_report,
)
from pipelines.downstream.params import TASKS as ALL_TASKS
from pipelines.downstream.params import parse_run
from pipelines.statistics import describe_delta, mean_interval, paired_delta

logger = logging.getLogger(__name__)

# The understanding tasks this module tabulates (generation has its own section: ``report_generation``).
TASKS: tuple[str, ...] = tuple(t for t in ALL_TASKS if t != "generate")

# The paper's numbers (METHOD-LGVQ.md §7.10–7.12): other datasets, 256-px images, 1024 codes — for reference.
PAPER = {
    "caption": {
        "dataset": "CUB-200 (paper Table 11; its scale is unclear: BLEU-4 ≈ 1.3–1.7 beside CIDEr-D ≈ 100)",
        "rows": {
            "VQ-GAN": {"BLEU-4": 1.29, "METEOR": 24.47, "ROUGE-L": 33.40, "CIDEr-D": 93.62},
            "LG-VQ (VQ-GAN+LG)": {"BLEU-4": 1.69, "METEOR": 25.78, "ROUGE-L": 34.73, "CIDEr-D": 102.77},
        },
    },
    "vqa": {
        "dataset": "COCO-QA with an MS-COCO codebook (paper Table 9; its one WUPS is most likely WUPS@0.0)",
        "rows": {
            "VQ-GAN": {"accuracy": 37.82, "WUPS@0.0": 83.22},
            "LG-VQ (VQ-GAN+LG)": {"accuracy": 40.97, "WUPS@0.0": 83.56},
        },
    },
    "ground": {
        "dataset": "RefCOCO with an MS-COCO codebook (paper Table 8, Acc@IoU>0.5 only)",
        "rows": {"VQ-GAN": {"accuracy@0.5": 9.14}, "LG-VQ (VQ-GAN+LG)": {"accuracy@0.5": 9.62}},
    },
    "retrieve": {"dataset": "none: the paper shows retrieval examples only (Figs. 4, 11, 12)", "rows": {}},
}


# ------------------------------------------------------------------------------------------ reading


def collect(folder: Path | None, tasks: dict[str, list[str]]) -> dict[str, dict[str, dict[str, Any]]]:
    """task → run → its stage report, for the runs ``tasks`` lists (missing or unreadable files are left
    out, with a warning)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for task in TASKS:
        for run in tasks.get(task, []):
            data = read_report(folder / f"{task}-{run}.json" if folder is not None else None)
            if data is not None:
                out.setdefault(task, {})[run] = data
    return out


def _models(runs: dict[str, dict[str, Any]]) -> dict[tuple[str, bool], list[str]]:
    """(base, lg) → its runs (seeds), base before +LG."""
    grouped: dict[tuple[str, bool], list[str]] = {}
    for run in sorted(runs, key=lambda r: (parse_run(r)[0], parse_run(r)[1], parse_run(r)[2])):
        base, lg, _ = parse_run(run)
        grouped.setdefault((base, lg), []).append(run)
    return grouped


def _cell(values: list[float], column: Column) -> str:
    if not values:
        return DASH
    interval = mean_interval([v * column.scale for v in values])
    if interval.n < 2 or not math.isfinite(interval.half_width):
        return f"{interval.mean:.{column.digits}f}"
    return f"{interval.mean:.{column.digits}f} ± {interval.half_width:.{column.digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _columns(task: str, runs: dict[str, dict[str, Any]]) -> tuple[Column, ...]:
    if task == "caption":
        return CAPTION_COLUMNS
    if task == "ground":
        return GROUND_COLUMNS
    if task == "retrieve":
        return RETRIEVE_COLUMNS
    types: list[str] = []
    for report in runs.values():
        for name in (report.get("metrics") or {}).get("per_type") or {}:
            if name not in types:
                types.append(name)
    return (
        Column("accuracy % ↑", "accuracy", 100.0, 1),
        *(Column(f"{t} %", ("per_type", t, "accuracy"), 100.0, 1) for t in types),
        Column("WUPS@0.9 % ↑", "WUPS@0.9", 100.0, 1),
        Column("WUPS@0.0 % ↑", "WUPS@0.0", 100.0, 1),
    )


def task_rows(task: str, runs: dict[str, dict[str, Any]], columns: tuple[Column, ...]) -> list[list[str]]:
    """Rows of one task's table: each model, the trivial baseline(s), each model's shuffled-codes control."""
    models = _models(runs)
    rows = []
    for (base, lg), names in models.items():
        reports = [runs[n] for n in names]
        seeds = ", ".join(str(parse_run(n)[2]) for n in names)
        extra = ""
        if task == "retrieve":
            heads = {r.get("heads") for r in reports}
            extra = " (own LG heads)" if heads == {"lg"} else " (probe heads)" if heads == {"probe"} else ""
        rows.append(
            [f"{model_label(base, lg)}{extra}", seeds]
            + [_cell(_values(reports, _join(MODEL_PREFIX[task], c.key)), c) for c in columns]
        )
    everything = list(runs.values())
    for label, prefix in BASELINES[task]:
        rows.append(
            [label, DASH] + [_cell(_values(everything, _join(prefix, c.key))[:1], c) for c in columns]
        )
    if task in SHUFFLED_PREFIX:
        for (base, lg), names in models.items():
            reports = [runs[n] for n in names]
            rows.append(
                [f"shuffled codes, {model_label(base, lg)}", ", ".join(str(parse_run(n)[2]) for n in names)]
                + [_cell(_values(reports, _join(SHUFFLED_PREFIX[task], c.key)), c) for c in columns]
            )
    return rows


def paper_rows(task: str, columns: tuple[Column, ...]) -> list[list[str]]:
    """The paper's rows in the layout of our table (empty cells where it reports nothing)."""
    rows = []
    for label, values in PAPER[task]["rows"].items():
        cells = [f"{values[c.key]:.2f}" if c.key in values else "" for c in columns]
        rows.append([f"*{label} (paper)*", ""] + cells)
    return rows


def verdicts(task: str, runs: dict[str, dict[str, Any]]) -> list[str]:
    """One sentence per model: its headline number against the strongest trivial baseline and the
    shuffled-codes control."""
    column = HEADLINE[task]
    lines = []
    best = best_baseline(task, list(runs.values()))
    for (base, lg), names in _models(runs).items():
        reports = [runs[n] for n in names]
        model = _values(reports, _join(MODEL_PREFIX[task], column.key))
        if not model or best is None:
            continue
        interval = mean_interval([v * column.scale for v in model])
        mean = interval.mean
        baseline = best[1] * column.scale
        name, unit = HEADLINE_NAME[task]
        d = column.digits
        if interval.n >= 2 and math.isfinite(interval.half_width):
            above = interval.low > baseline
            where = (
                f"{'above' if above else 'NOT above'} it: the {interval.n}-seed interval's low end is "
                f"{interval.low:.{d}f}{unit}"
            )
        else:
            where = f"{'above' if mean > baseline else 'NOT above'} it"
        text = f"{model_label(base, lg)}: {name} {mean:.{d}f}{unit} vs {best[0]} {baseline:.{d}f}{unit} "
        text += f"({where})"
        if task in SHUFFLED_PREFIX:
            shuffled = _values(reports, _join(SHUFFLED_PREFIX[task], column.key))
            if shuffled:
                s = sum(shuffled) / len(shuffled) * column.scale
                points = " points" if unit else ""
                text += f", shuffled codes {s:.{d}f}{unit} (the image adds {mean - s:+.{d}f}{points})"
        lines.append(f"- {text}.")
    return lines + paired_verdicts(task, runs)


def paired_verdicts(task: str, runs: dict[str, dict[str, Any]]) -> list[str]:
    """Per base with runs with and without LG on common tokenizer seeds: the paired (+LG − base) delta of the
    headline number with its Student-t interval, in words (one second-stage seed per tokenizer seed)."""
    column = HEADLINE[task]
    name, unit = HEADLINE_NAME[task]
    lines = []
    models = _models(runs)
    for base, lg in models:
        if lg or (base, True) not in models:
            continue
        by_seed = {}
        for key in ((base, False), (base, True)):
            by_seed[key[1]] = {
                parse_run(n)[2]: v * column.scale
                for n in models[key]
                if (v := lookup(runs[n], _join(MODEL_PREFIX[task], column.key))) is not None
            }
        if not set(by_seed[True]) & set(by_seed[False]):
            continue
        interval = paired_delta(by_seed[True], by_seed[False])
        label = model_label(base, True)
        sentence = describe_delta(
            f"{label} vs {model_label(base, False)}",
            name,
            interval,
            higher_is_better=True,
            unit=unit.strip() if unit.strip() != "%" else "points",
            digits=column.digits,
        )
        if task == "retrieve" and _unequal_heads(runs, models[(base, False)], models[(base, True)]):
            sentence += (
                " The rows' heads differ: the +LG run's own heads trained with its tokenizer against "
                "probe heads fitted to the frozen base, so this delta measures LG's joint training of the "
                "heads, not the codes; the same-budget probe on both tokenizers (the tokenizer tables "
                "above) compares the codes."
            )
        lines.append(f"- {sentence}")
    return lines


def _unequal_heads(runs: dict[str, dict[str, Any]], base_runs: list[str], lg_runs: list[str]) -> bool:
    """Whether the retrieval rows of a base and its +LG run were scored with different kinds of heads."""
    heads = {runs[n].get("heads") for n in base_runs}, {runs[n].get("heads") for n in lg_runs}
    return heads[0] != heads[1]


def overview(collected: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """One headline number per task: models, baseline, shuffled codes."""
    tasks = [t for t in TASKS if collected.get(t)]
    models: list[tuple[str, bool]] = []
    for t in tasks:
        for key in _models(collected[t]):
            if key not in models:
                models.append(key)
    header = ["row", *(HEADLINE[t].header for t in tasks)]
    rows = []
    for base, lg in models:
        row = [model_label(base, lg)]
        for t in tasks:
            names = [n for n in collected[t] if parse_run(n)[:2] == (base, lg)]
            row.append(
                _cell(
                    _values([collected[t][n] for n in names], _join(MODEL_PREFIX[t], HEADLINE[t].key)),
                    HEADLINE[t],
                )
            )
        rows.append(row)
    row = ["trivial baseline (the strongest)"]
    for t in tasks:
        best = best_baseline(t, list(collected[t].values()))
        row.append(_cell([best[1]] if best else [], HEADLINE[t]))
    rows.append(row)
    for base, lg in models:
        row = [f"shuffled codes, {model_label(base, lg)}"]
        for t in tasks:
            if t not in SHUFFLED_PREFIX:
                row.append(DASH)
                continue
            names = [n for n in collected[t] if parse_run(n)[:2] == (base, lg)]
            row.append(
                _cell(
                    _values([collected[t][n] for n in names], _join(SHUFFLED_PREFIX[t], HEADLINE[t].key)),
                    HEADLINE[t],
                )
            )
        rows.append(row)
    return _table(header, rows)


def figure_links(task: str, runs: dict[str, dict[str, Any]], out: Path) -> str:
    links = []
    for run, report in sorted(runs.items()):
        figure = (report.get("pipeline") or {}).get("figure")
        if figure and Path(figure).is_file():
            base, lg, seed = parse_run(run)
            target = Path(os.path.relpath(Path(figure), out)).as_posix()
            links.append(f"[{model_label(base, lg)} seed {seed}]({target})")
    return "Examples: " + (", ".join(links) if links else "none yet") + "."


def timing_table(collected: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    header = ["stage", "train steps", "train examples", "world size", "train s", "eval s", "stage s"]
    rows = []
    for task in (*TASKS, "generate"):
        for run, report in sorted((collected.get(task) or {}).items()):
            p = report.get("pipeline") or {}
            t = p.get("train") or {}
            rows.append(
                [
                    f"{task}@{run}",
                    str(t.get("steps", DASH)),
                    str(t.get("examples", DASH)),
                    str(t.get("world_size", DASH)),
                    _num(t.get("train_seconds")),
                    _num(p.get("eval_seconds")),
                    _num(p.get("stage_seconds")),
                ]
            )
    return _table(header, rows)


def _num(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, (int, float)) and math.isfinite(value) else DASH


def section(folder: Path | None, tasks: dict[str, list[str]], out: Path) -> tuple[list[str], dict[str, Any]]:
    """The markdown lines of the downstream section and its numbers for ``summary.json``."""
    collected = collect(folder, tasks)
    expected = sum(len(v) for t, v in tasks.items() if t in TASKS)
    found = sum(len(v) for v in collected.values())
    lines = ["## Downstream tasks on the frozen tokenizers' codes", ""]
    if not collected:
        return lines + [f"No downstream stage has run yet (0 of {expected})."], {"stages_found": 0}
    seeds = {parse_run(run)[2] for runs in collected.values() for run in runs}
    counts = {len(names) for runs in collected.values() for names in _models(runs).values()}
    if counts == {1}:
        seed_note = (
            f"One tokenizer seed per model (seed {', '.join(map(str, sorted(seeds)))}) and one second-stage "
            "seed each: every number is a single run, **without an interval**; read small differences as "
            "noise."
        )
    else:
        seed_note = "Cells with several seeds are the mean ± 95 % Student-t half-width over those seeds."
    lines += [
        f"{found} of {expected} task stages found. Each task trains its second-stage model on the train "
        "split of a tokenizer's codes (budget: `downstream.<task>` in params.yaml, chosen on the val split, "
        "never on test) and is "
        "evaluated once on the test split, beside its trivial baseline and the shuffled-codes control "
        "(every image paired with the codes of another test image: what the model gets from the image "
        "itself). " + seed_note,
        "",
        *overview(collected),
        "",
        "Captioning in CIDEr-D ×100 (coco-caption / pycocoevalcap, PTB tokenisation). The paper's tables are "
        "below each task; they are on other datasets at 256 px with 1024 codes: compare the direction of "
        "base vs +LG, not values.",
        "",
    ]
    summary: dict[str, Any] = {"stages_found": found, "stages_expected": expected, "tasks": {}}
    for task in TASKS:
        runs = collected.get(task)
        if not runs:
            continue
        columns = _columns(task, runs)
        header = ["row", "seeds", *(c.header for c in columns)]
        rows = task_rows(task, runs, columns) + paper_rows(task, columns)
        lines += [f"### {TASK_TITLES[task]}", "", *_table(header, rows), ""]
        lines += verdicts(task, runs)
        lines += [f"- Paper: {PAPER[task]['dataset']}.", "", figure_links(task, runs, out), ""]
        summary["tasks"][task] = {
            f"{base}-{'on' if lg else 'off'}": {
                _name(c.key): sum(v) / len(v)
                for c in columns
                if (v := _values([runs[n] for n in names], _join(MODEL_PREFIX[task], c.key)))
            }
            for (base, lg), names in _models(runs).items()
        }
    if tasks.get("generate"):
        from pipelines.downstream import report_generation

        generation_lines, summary["generation"] = report_generation.section(folder, tasks["generate"], out)
        lines += [*generation_lines, ""]
        collected = {**collected, "generate": report_generation.collect(folder, tasks["generate"])}
    lines += ["Stage timings (seconds of wall clock; `make pipeline` runs them one after another):", ""]
    lines += [*timing_table(collected), ""]
    return lines, summary
