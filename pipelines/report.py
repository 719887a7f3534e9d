"""Stage ``report``: every (base, LG, seed) run of ``runs`` aggregated over seeds — mean ± 95 % Student-t
interval in the layout of the paper's Table 1, the LG diagnostics beside their controls (shuffled images,
chance), the same-budget probe for every run, the paired base-vs-LG deltas with their intervals and a
sentence each on whether they are distinguishable from zero, the protocol, links to the figures, the training
curves and the paper's own numbers for reference.

``python -m pipelines.report --eval reports/eval --train reports/train --downstream reports/downstream --out
reports``. Reads each per-run eval JSON (``pipelines.evaluate``) and each train metrics JSON + curve CSV
(``pipelines.train``; a curve is the CSV with the JSON's stem) of the runs the ``runs`` params section lists,
and the downstream task reports of the runs ``downstream.tasks`` lists (``pipelines.downstream.report``);
writes ``report.md``, ``summary.json`` (DVC metrics) and ``training_curves.png``. A missing run or metric is
shown as "—".
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import progress
from pipelines.downstream.layout import BASE_NAMES, model_label
from pipelines.params import StageParams
from pipelines.stage import parser, setup_logging, write_json
from pipelines.statistics import Interval, describe_delta, mean_interval, paired_delta

PARAMS: tuple[str, ...] = ("runs", "downstream.tasks")
logger = logging.getLogger(__name__)

DASH = "—"
CURVE_KEY = "reconstruction"
CURVE_KEYS = ("reconstruction", "lgsa", "lmtp", "lras")
RECALL_GAIN_MIN = 0.10  # the evidence bar: recall with real images beats shuffled images by >= 10 points
RETRIEVAL_MIN_FACTOR = 5.0  # ... and retrieval top-1 reaches >= 5x its chance level

# The paper's Table 1 (FID / PSNR; NeurIPS camera-ready, METHOD-LGVQ.md §7.1) and its other diagnostics.
PAPER_TABLE1_DATASETS = ("TextCaps", "CelebA-HQ", "CUB-200", "MS-COCO")
PAPER_TABLE1: dict[str, tuple[float, ...]] = {
    "VQ-VAE": (82.31, 21.96, 41.45, 25.57, 54.92, 24.38, 86.21, 23.55),
    "VQ-VAE+LG": (81.93, 21.95, 40.53, 25.04, 36.55, 25.60, 79.54, 23.40),
    "VQ-GAN": (24.08, 19.64, 5.66, 24.10, 3.63, 22.19, 14.45, 20.21),
    "VQ-GAN+LG": (20.35, 19.92, 5.34, 23.75, 3.08, 22.47, 10.72, 20.50),
    "CVQ": (16.35, 20.24, 5.19, 23.15, 3.61, 22.29, 9.94, 20.48),
    "CVQ+LG": (15.51, 20.21, 4.90, 24.48, 3.33, 22.47, 9.69, 20.71),
}
PAPER_VQCT_FID = {
    "VQCT": "CelebA-HQ 5.02, CUB-200 2.13, MS-COCO 9.82 (Table 12; 6207 codes, 512 tokens)",
    "VQCT+LG": "MS-COCO 9.57 (Table 13)",
}


@dataclass(frozen=True)
class RunsParams:
    """Section ``runs``: the bases and seeds the pipeline trains (each with LG off and on)."""

    bases: list[str]
    seeds: list[int]


@dataclass
class Run:
    """What the report knows about one (base, lg, seed) run; any part may be missing."""

    base: str
    lg: bool
    seed: int
    eval: dict[str, Any] | None = None
    eval_path: Path | None = None
    train: dict[str, Any] | None = None
    curve: dict[str, list[float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return model_label(self.base, self.lg)


Key = tuple[str, bool, int]


# ------------------------------------------------------------------------------------------ reading


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        logger.warning("skipping %s: %s", path, err)
        return None
    if not isinstance(data, dict) or "base" not in data or "lg" not in data:
        logger.warning("skipping %s: not a per-run file (no 'base'/'lg')", path)
        return None
    return data


def read_curve(path: Path) -> dict[str, list[float]]:
    """A curve CSV → ``step`` and each loss of ``CURVE_KEYS`` present (rows where a value is missing are
    dropped for that loss only; ``<loss>_step`` holds its steps)."""
    columns: dict[str, list[float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                step = float(row["step"])
            except (KeyError, TypeError, ValueError):
                continue
            for key in CURVE_KEYS:
                try:
                    value = float(row[key])
                except (KeyError, TypeError, ValueError):
                    continue
                columns.setdefault(f"{key}_step", []).append(step)
                columns.setdefault(key, []).append(value)
    if CURVE_KEY in columns:
        columns["step"] = columns[f"{CURVE_KEY}_step"]
    return columns


def collect(
    eval_dir: Path | None,
    train_dir: Path | None,
    bases: list[str] | None = None,
    seeds: list[int] | None = None,
) -> dict[Key, Run]:
    """Every (base, lg, seed) of ``bases`` × (off, on) × ``seeds``, filled from the eval and train folders.

    Files of other runs (e.g. left from an earlier, larger ``runs`` section) are ignored when ``bases`` /
    ``seeds`` are given.
    """
    bases = list(bases) if bases is not None else list(BASE_NAMES)
    seeds = list(seeds) if seeds is not None else [0]
    runs: dict[Key, Run] = {(b, lg, s): Run(b, lg, s) for b in bases for lg in (False, True) for s in seeds}

    def slot(data: dict[str, Any]) -> Run | None:
        key = (str(data["base"]), bool(data["lg"]), int(data.get("seed", 0)))
        return runs.get(key)

    for path in sorted(eval_dir.glob("*.json")) if eval_dir and eval_dir.is_dir() else []:
        data = _read_json(path)
        run = slot(data) if data is not None else None
        if run is not None:
            run.eval, run.eval_path = data, path
    for path in sorted(train_dir.glob("*.json")) if train_dir and train_dir.is_dir() else []:
        data = _read_json(path)
        run = slot(data) if data is not None else None
        if run is None:
            continue
        run.train = data
        csv_path = path.with_suffix(".csv")
        if csv_path.is_file():
            run.curve = read_curve(csv_path)
    return runs


# ------------------------------------------------------------------------------------------ aggregation


def fmt(value: Any, digits: int = 2, scale: float = 1.0) -> str:
    """A number with ``digits`` decimals, or "—" for missing / non-finite values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return DASH
    return f"{value * scale:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _lookup(run: Run, path: str) -> float | None:
    """A number from a run's eval file by dotted path (``probe.recall_at_1_mask1``), or None."""
    node: Any = run.eval or {}
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        return None
    return float(node)


def per_seed(runs: dict[Key, Run], base: str, lg: bool, path: str) -> dict[int, float]:
    """seed → value of ``path`` for the runs of (base, lg) that have it."""
    out = {}
    for (b, g, seed), run in runs.items():
        if b == base and g == lg:
            value = _lookup(run, path)
            if value is not None:
                out[seed] = value
    return out


def interval_of(values: dict[int, float]) -> Interval | None:
    return mean_interval(list(values.values())) if values else None


def cell(values: dict[int, float], digits: int = 2, scale: float = 1.0) -> str:
    """ "mean ± half-width" over seeds (scaled), "x (n=1)" for one seed, "—" for none."""
    interval = interval_of({k: v * scale for k, v in values.items()})
    return interval.format(digits) if interval is not None else DASH


def _models(runs: dict[Key, Run]) -> list[tuple[str, bool]]:
    seen: list[tuple[str, bool]] = []
    for b, lg, _ in runs:
        if (b, lg) not in seen:
            seen.append((b, lg))
    return seen


def _seeds_of(runs: dict[Key, Run], base: str, lg: bool) -> int:
    return sum(1 for (b, g, _), r in runs.items() if b == base and g == lg and r.eval)


# ------------------------------------------------------------------------------------------ tables


def _fd_label(runs: list[Run]) -> str:
    names = {r.eval.get("fd_name") for r in runs if r.eval}
    names.discard(None)
    return names.pop() if len(names) == 1 else "FD (see protocol)"


# (column header, eval path, digits, scale)
TABLE1_COLUMNS: tuple[tuple[str, str, int, float], ...] = (
    ("PSNR (dB) ↑", "psnr", 2, 1.0),
    ("SSIM ↑", "ssim", 3, 1.0),
    ("{fd} ↓", "fd", 1, 1.0),
    ("KID ↓", "kid", 2, 1.0),
    ("usage % ↑", "codebook_usage", 1, 100.0),
    ("perplexity ↑", "codebook_perplexity", 1, 1.0),
)


def table1(runs: dict[Key, Run]) -> list[str]:
    """Our Table 1: reconstruction and codebook metrics per model, mean ± 95 % interval over seeds."""
    fd = _fd_label(list(runs.values()))
    header = ["model", "seeds", *(name.format(fd=fd) for name, *_ in TABLE1_COLUMNS)]
    rows = []
    for base, lg in _models(runs):
        rows.append(
            [
                model_label(base, lg),
                str(_seeds_of(runs, base, lg)),
                *(cell(per_seed(runs, base, lg, p), d, sc) for _, p, d, sc in TABLE1_COLUMNS),
            ]
        )
    return _table(header, rows)


def lg_table(runs: dict[Key, Run], source: str) -> list[str]:
    """Masked-word recall with real vs shuffled images and the gain, content words, retrieval vs chance.

    ``source``: ``diagnostics`` (the run's own LG heads; +LG rows only) or ``probe`` (fresh heads, same
    budget, every row)."""
    header = [
        "model",
        "recall@1 mask-1 %",
        "shuffled images %",
        "gain (points) ↑",
        "content words %",
        "content, shuffled %",
        "recall@1 mask-3 %",
        "gain mask-3",
        "retrieval top-1 %",
        "chance %",
    ]
    rows = []
    for base, lg in _models(runs):
        if source == "diagnostics" and not lg:
            continue
        values = {p: per_seed(runs, base, lg, f"{source}.{p}") for p in LG_PATHS}
        if not any(values.values()):
            continue
        rows.append(
            [
                model_label(base, lg),
                cell(values["recall_at_1_mask1"], 1, 100.0),
                cell(values["recall_at_1_shuffled_mask1"], 1, 100.0),
                cell(values["recall_gain_mask1"], 1, 100.0),
                cell(values["recall_at_1_content_mask1"], 1, 100.0),
                cell(values["recall_at_1_content_shuffled_mask1"], 1, 100.0),
                cell(values["recall_at_1_mask3"], 1, 100.0),
                cell(values["recall_gain_mask3"], 1, 100.0),
                cell(values["retrieval_top1"], 2, 100.0),
                cell(values["retrieval_chance_top1"], 2, 100.0),
            ]
        )
    return _table(header, rows) if rows else ["No run has these diagnostics."]


LG_PATHS = (
    "recall_at_1_mask1",
    "recall_at_1_shuffled_mask1",
    "recall_gain_mask1",
    "recall_at_1_content_mask1",
    "recall_at_1_content_shuffled_mask1",
    "recall_at_1_mask3",
    "recall_gain_mask3",
    "retrieval_top1",
    "retrieval_chance_top1",
    "word_code_mse_raw",
    "word_code_mse_projected",
)


def word_class_table(runs: dict[Key, Run], source: str = "diagnostics") -> list[str]:
    """Recall@1 (mask-1) per word class, real vs shuffled images, for the +LG rows."""
    classes = sorted(
        {
            k.removeprefix("recall_at_1_").removesuffix("_mask1")
            for r in runs.values()
            for k in ((r.eval or {}).get(source) or {})
            if k.startswith("recall_at_1_") and k.endswith("_mask1") and "shuffled" not in k
        }
        - {"mask1"}  # the overall recall_at_1_mask1
    )
    if not classes:
        return []
    header = ["model", *(f"{c} (real / shuffled) %" for c in classes)]
    rows = []
    for base, lg in _models(runs):
        if source == "diagnostics" and not lg:
            continue
        row = [model_label(base, lg)]
        for c in classes:
            real = per_seed(runs, base, lg, f"{source}.recall_at_1_{c}_mask1")
            shuffled = per_seed(runs, base, lg, f"{source}.recall_at_1_{c}_shuffled_mask1")
            row.append(f"{cell(real, 1, 100.0)} / {cell(shuffled, 1, 100.0)}")
        rows.append(row)
    return _table(header, rows)


def word_code_table(runs: dict[Key, Run]) -> list[str]:
    """Word–code similarity MSE from the same-budget probe on every run (and the run's own heads for +LG)."""
    header = ["model", "probe: codes ↓", "probe: g(codes) ↓", "own heads: codes ↓", "own heads: g(codes) ↓"]
    rows = []
    for base, lg in _models(runs):
        rows.append(
            [
                model_label(base, lg),
                cell(per_seed(runs, base, lg, "probe.word_code_mse_raw"), 4),
                cell(per_seed(runs, base, lg, "probe.word_code_mse_projected"), 4),
                cell(per_seed(runs, base, lg, "diagnostics.word_code_mse_raw"), 4),
                cell(per_seed(runs, base, lg, "diagnostics.word_code_mse_projected"), 4),
            ]
        )
    return _table(header, rows)


# (name, eval path, unit, digits, scale, higher is better)
DELTA_METRICS: tuple[tuple[str, str, str, int, float, bool], ...] = (
    ("PSNR", "psnr", "dB", 2, 1.0, True),
    ("SSIM", "ssim", "", 4, 1.0, True),
    ("FD", "fd", "", 1, 1.0, False),
    ("KID", "kid", "", 2, 1.0, False),
    ("codebook usage", "codebook_usage", "points", 1, 100.0, True),
    ("probe recall gain (mask-1)", "probe.recall_gain_mask1", "points", 1, 100.0, True),
    ("probe retrieval top-1", "probe.retrieval_top1", "points", 2, 100.0, True),
    ("probe word–code MSE", "probe.word_code_mse_raw", "", 4, 1.0, False),
)


def paired_deltas(runs: dict[Key, Run]) -> tuple[list[str], list[str], dict[str, Any]]:
    """Per base and metric the paired (+LG − base) delta over seeds: a table, one sentence each, JSON."""
    header = ["comparison", "metric", "seeds", "mean Δ", "95 % interval", "distinguishable from 0"]
    rows, sentences, data = [], [], {}
    for base in dict.fromkeys(b for b, _ in _models(runs)):
        name = f"{model_label(base, True)} vs {model_label(base, False)}"
        for metric, path, unit, digits, scale, higher in DELTA_METRICS:
            treated = {k: v * scale for k, v in per_seed(runs, base, True, path).items()}
            control = {k: v * scale for k, v in per_seed(runs, base, False, path).items()}
            if not set(treated) & set(control):
                continue
            delta = paired_delta(treated, control)
            verdict = "yes" if delta.excludes_zero() else "no"
            interval = f"[{delta.low:+.{digits}f}, {delta.high:+.{digits}f}]" if delta.n > 1 else DASH
            rows.append([name, metric, str(delta.n), f"{delta.mean:+.{digits}f}", interval, verdict])
            sentences.append(describe_delta(name, metric, delta, higher, unit=unit, digits=digits))
            data[f"{base}/{path}"] = {
                "mean": delta.mean,
                "low": delta.low,
                "high": delta.high,
                "n": delta.n,
                "excludes_zero": delta.excludes_zero(),
            }
    return (_table(header, rows) if rows else ["No paired runs yet."]), sentences, data


def _decreases(values: list[float], fraction: float = 0.2) -> bool | None:
    """True when the mean of the last ``fraction`` of a curve is below the mean of its first ``fraction``."""
    if len(values) < 4:
        return None
    n = max(1, int(len(values) * fraction))
    return sum(values[-n:]) / n < sum(values[:n]) / n


def evidence_checks(runs: dict[Key, Run]) -> tuple[list[str], dict[str, Any]]:
    """For every +LG run: image-dependent recall (gain ≥ 10 points, interval over seeds excludes 0), L_gsa
    decreasing over training, retrieval top-1 ≥ 5× chance."""
    lines, data = [], {}
    for base, lg in _models(runs):
        if not lg:
            continue
        gain = per_seed(runs, base, True, "diagnostics.recall_gain_mask1")
        top1 = per_seed(runs, base, True, "diagnostics.retrieval_top1")
        chance = per_seed(runs, base, True, "diagnostics.retrieval_chance_top1")
        lgsa = {
            s: _decreases(r.curve.get("lgsa", []))
            for (b, g, s), r in runs.items()
            if b == base and g and r.curve.get("lgsa")
        }
        gain_iv = interval_of(gain)
        ratio = {s: top1[s] / chance[s] for s in top1 if s in chance and chance[s] > 0}
        checks = {
            "recall_gain_at_least_10_points": bool(gain_iv and gain_iv.mean >= RECALL_GAIN_MIN),
            "recall_gain_interval_excludes_zero": bool(
                gain_iv and gain_iv.excludes_zero() and gain_iv.low > 0
            ),
            "lgsa_decreases_every_seed": bool(lgsa) and all(v is True for v in lgsa.values()),
            "retrieval_at_least_5x_chance_every_seed": bool(ratio)
            and all(v >= RETRIEVAL_MIN_FACTOR for v in ratio.values()),
        }
        data[f"{base}-on"] = checks
        mark = {True: "✓", False: "✗"}
        ratio_text = ", ".join(f"seed {s}: {v:.1f}×" for s, v in sorted(ratio.items())) or DASH
        lines += [
            f"- **{model_label(base, True)}** — recall gain (real − shuffled images, mask-1): "
            f"{cell(gain, 1, 100.0)} points {mark[checks['recall_gain_at_least_10_points']]} ≥ 10 points, "
            f"{mark[checks['recall_gain_interval_excludes_zero']]} interval above 0; "
            f"L_gsa decreases over training in {sum(1 for v in lgsa.values() if v)}/{len(lgsa)} seeds "
            f"{mark[checks['lgsa_decreases_every_seed']]}; retrieval top-1 vs chance {ratio_text} "
            f"{mark[checks['retrieval_at_least_5x_chance_every_seed']]} ≥ 5×.",
        ]
    return lines or ["No +LG run yet."], data


def runs_table(runs: dict[Key, Run]) -> list[str]:
    """Train steps and seconds, first/last L_gsa, eval images and seconds per run."""
    header = ["run", "seed", "train steps", "train s", "L_gsa first → last", "eval images", "eval s"]
    rows = []
    for (_, _, seed), r in runs.items():
        t, e = r.train or {}, r.eval or {}
        lgsa = r.curve.get("lgsa") or []
        rows.append(
            [
                r.label,
                str(seed),
                fmt(t.get("steps", e.get("train_steps")), 0),
                fmt(t.get("train_seconds"), 0),
                f"{lgsa[0]:.3f} → {lgsa[-1]:.3f}" if lgsa else DASH,
                fmt((e.get("protocol") or {}).get("images"), 0),
                fmt(e.get("eval_seconds"), 1),
            ]
        )
    return _table(header, rows)


def paper_tables() -> list[str]:
    """The paper's own numbers (labelled as such)."""
    header = ["model (paper)"] + [f"{d} {m}" for d in PAPER_TABLE1_DATASETS for m in ("FID ↓", "PSNR ↑")]
    rows = [[name, *(f"{v:.2f}" for v in values)] for name, values in PAPER_TABLE1.items()]
    lines = _table(header, rows)
    lines += ["", *(f"- {k} (paper, FID only): {v}" for k, v in PAPER_VQCT_FID.items())]
    lines += [
        "- Masked-word Recall@1, VQ-GAN+LG (paper Table 3): CelebA-HQ 99.55 / 99.24 %, "
        "CUB-200 83.65 / 80.17 % "
        "(mask-1 / mask-3).",
        "- Word–code similarity MSE, CUB-200 (paper Table 4): VQ-GAN 0.6374, VQ-GAN+LG 0.0351 "
        "(how codes were "
        "matched to words for plain VQ-GAN is not stated).",
        "- Codebook usage (paper Fig. 7): TextCaps 18.62 → 43.58 %, MS-COCO 40.09 → 97.89 % "
        "(VQ-GAN → VQ-GAN+LG).",
    ]
    return lines


def protocol_lines(runs: dict[Key, Run]) -> list[str]:
    """The evaluation protocol of the first evaluated run, and any run whose protocol differs from it."""
    evaluated = [r for r in runs.values() if r.eval and r.eval.get("protocol")]
    if not evaluated:
        return ["No run has been evaluated yet."]
    first = evaluated[0].eval["protocol"]  # type: ignore[index]
    fr = first.get("frechet") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (first.get("versions") or {}).items() if v)
    text = first.get("text_encoder") or {}
    splits = first.get("splits") or {}
    rows = splits.get("rows") or {}
    seeds = sorted({seed for (_, _, seed), r in runs.items() if r.eval})
    lines = [
        f"- Seeds {', '.join(map(str, seeds))}: each seed sets the initial weights, data order and every "
        "random draw of a run; base and +LG runs of the same seed are paired. Intervals are two-sided 95 % "
        "Student-t intervals over seeds (mean ± half-width); one seed gives no interval.",
        f"- Splits: train {rows.get('train', DASH)} / val {rows.get('val', DASH)} / test "
        f"{rows.get('test', DASH)} images; val {splits.get('val', DASH)}. Loss weights are tuned on val; "
        "every number here is on "
        f"**{first.get('split')}** ({first.get('images')} images, {first.get('image_size')} px: "
        f"{first.get('resize')}; {first.get('captions')}).",
        f"- PSNR/SSIM: {first.get('psnr_ssim')}.",
        f"- Fréchet distance **{fr.get('name')}** between {fr.get('generated')} and {fr.get('real')}: "
        f"{fr.get('input')}; weights `{fr.get('weights')}` sha256 `{fr.get('sha256')}` "
        f"({fr.get('package')}). With fewer images than feature dimensions the covariances are singular, so "
        "read FD for trends only; KID: " + str(first.get("kid", DASH)) + ". FD-EffLite0 is not FID: do not "
        "compare it with published FIDs.",
        f"- Codebook: {first.get('codebook')}.",
        f"- Masked-word recall control: {first.get('recall_control', DASH)}. Content words are the colour, "
        "shape, position, count, size and pattern words of the synthetic captions; the rest are template "
        "words.",
        f"- Probe (every run, with and without LG): {first.get('probe') or DASH}.",
        "- Retrieval chance: the exact top-1 hit rate of a random ranking (identical caption texts counted).",
        f"- LG diagnostics text encoder: `{text.get('model_id', DASH)}` (weights sha256 "
        f"`{text.get('weights_sha256') or DASH}`, context {text.get('context_length', DASH)}).",
        f"- Libraries: {versions}; device {first.get('device')}, {first.get('threads')} threads.",
    ]
    for r in evaluated[1:]:
        p = r.eval["protocol"]  # type: ignore[index]
        differs = [k for k in ("split", "images", "image_size", "frechet") if p.get(k) != first.get(k)]
        if differs:
            lines.append(
                f"- **{r.label} seed {r.seed} differs** in {', '.join(differs)}: see its metrics file."
            )
    return lines


def figure_lines(runs: dict[Key, Run], out: Path) -> list[str]:
    """Markdown links to each evaluated run's PNGs, relative to ``out``."""
    lines = []
    for (_, _, seed), r in runs.items():
        if not r.eval or r.eval_path is None:
            continue
        given = r.eval.get("figures_dir")
        folder = Path(given) if given and Path(given).is_dir() else r.eval_path.with_suffix("")
        links = [
            f"[{name.replace('_', ' ')}]({Path(os.path.relpath(folder / file, out)).as_posix()})"
            for name, file in (r.eval.get("figures") or {}).items()
            if (folder / file).is_file()
        ]
        if links:
            lines.append(f"- {r.label} seed {seed}: " + ", ".join(links))
    return lines or ["No figures yet."]


SUMMARY_KEYS = ("psnr", "ssim", "fd", "kid", "codebook_usage", "codebook_perplexity")


def summary(runs: dict[Key, Run], deltas: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    """DVC metrics: per model the mean over seeds of the table numbers, the paired deltas and the evidence
    checks."""
    models: dict[str, Any] = {}
    for base, lg in _models(runs):
        entry: dict[str, Any] = {}
        paths = [*SUMMARY_KEYS, *(f"diagnostics.{p}" for p in LG_PATHS), *(f"probe.{p}" for p in LG_PATHS)]
        for path in paths:
            interval = interval_of(per_seed(runs, base, lg, path))
            if interval is not None:
                entry[path] = interval.mean
        if entry:
            models[f"{base}-{'on' if lg else 'off'}"] = entry
    evaluated = sum(1 for r in runs.values() if r.eval)
    return {
        "models": models,
        "paired_deltas": deltas,
        "evidence_checks": checks,
        "runs_evaluated": evaluated,
        "runs_expected": len(runs),
    }


def write_report(
    runs: dict[Key, Run],
    out: Path,
    downstream: tuple[list[str], dict[str, Any]] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """``report.md`` + ``training_curves.png`` in ``out``; returns the path and the summary. ``downstream``:
    the lines and numbers of ``pipelines.downstream.report.section`` (left out when None)."""
    from pipelines import plots

    out.mkdir(parents=True, exist_ok=True)
    curves: dict[str, dict[bool, tuple[list[float], list[float]]]] = {}
    for (base, lg, _), r in sorted(runs.items(), key=lambda kv: kv[0][2], reverse=True):
        if r.curve.get("step"):  # the lowest seed's curve wins (drawn last)
            curves.setdefault(BASE_NAMES.get(base, base), {})[lg] = (r.curve["step"], r.curve[CURVE_KEY])
    plots.training_curves(curves, out / "training_curves.png")
    lgsa_curves: dict[str, dict[bool, tuple[list[float], list[float]]]] = {}
    for (base, lg, seed), r in sorted(runs.items()):
        if lg and r.curve.get("lgsa"):
            lgsa_curves.setdefault(f"{BASE_NAMES.get(base, base)} seed {seed}", {})[True] = (
                r.curve["lgsa_step"],
                r.curve["lgsa"],
            )
    plots.training_curves(lgsa_curves, out / "lgsa_curves.png", ylabel="L_gsa")  # empty without +LG runs
    delta_table, sentences, deltas = paired_deltas(runs)
    check_lines, checks = evidence_checks(runs)
    found = sum(1 for r in runs.values() if r.eval)
    word_classes = word_class_table(runs)
    lines = [
        "# LG-VQ reproduction report",
        "",
        f"{found} of {len(runs)} runs evaluated (bases × LG off/on × seeds); every cell is the mean ± 95 % "
        f'interval over seeds; "{DASH}" marks a run or metric that is missing or does not apply.',
        "",
        "## Base vs +LG: paired deltas over seeds",
        "",
        *delta_table,
        "",
        *(f"- {s}" for s in sentences),
        "",
        "## Does LG use the image? (evidence checks)",
        "",
        *check_lines,
        "",
        "## Reconstruction and codebook (layout of the paper's Table 1)",
        "",
        *table1(runs),
        "",
        "## LG diagnostics of the +LG runs' own heads (paper Table 3, retrieval), with controls",
        "",
        *lg_table(runs, "diagnostics"),
        "",
        "Shuffled images: the same masked positions with every caption paired with another image of the test "
        "split; the gain (real − shuffled) is the part of the recall that comes from the image. A text-only "
        "guess of a template word needs no image, so the content-word columns are the sharper test.",
        "",
        *(["Recall@1 (mask-1) per word class:", "", *word_classes, ""] if word_classes else []),
        "## Same-budget probe on every run (fresh LG heads on the frozen tokenizer)",
        "",
        *lg_table(runs, "probe"),
        "",
        "## Word–code similarity MSE (paper Table 4)",
        "",
        *word_code_table(runs),
        "",
        "Probe columns: the same head budget for runs with and without LG (compare these between rows); "
        'own heads: the +LG run\'s trained heads. "codes" = the raw code vectors matched to the words, '
        '"g(codes)" = their projection (what L_ras trains).',
        "",
        *([*downstream[0], ""] if downstream else []),
        "## Protocol",
        "",
        *protocol_lines(runs),
        "",
        "## Runs",
        "",
        *runs_table(runs),
        "",
        "## Figures",
        "",
        "![training curves](training_curves.png)",
        "",
        f"Training curves (lowest seed): {CURVE_KEY} loss vs step, one panel per base, without and with LG.",
        "",
        *(
            ["![L_gsa curves](lgsa_curves.png)", "", "L_gsa vs step for every +LG run.", ""]
            if lgsa_curves
            else []
        ),
        *figure_lines(runs, out),
        "",
        "## The paper's numbers (for reference only)",
        "",
        "From the LG-VQ paper (METHOD-LGVQ.md §7): real datasets at 256 px, 1024 codes, FID with "
        "Inception-v3. Different data, scale and metric network from the runs above: compare trends "
        "(base vs +LG), not values.",
        "",
        *paper_tables(),
        "",
    ]
    path = out / "report.md"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    result = summary(runs, deltas, checks)
    if downstream:
        result["downstream"] = downstream[1]
    return path, result


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--eval", type=Path, required=True, help="folder of per-run eval JSONs")
    p.add_argument("--train", type=Path, required=True, help="folder of train metrics JSONs + curve CSVs")
    p.add_argument("--downstream", type=Path, default=None, help="folder of downstream task reports")
    p.add_argument("--out", type=Path, required=True, help="report folder (report.md, summary.json, PNG)")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    from pipelines.downstream import report as downstream_report

    params = StageParams(args.params, PARAMS)
    selection = params.section("runs", RunsParams)
    # A params file from before the downstream stages (no `downstream` section) gets no downstream table.
    tasks = params.section("downstream.tasks", dict[str, list[str]]) if "downstream" in params.data else {}
    runs = collect(args.eval, args.train, selection.bases, selection.seeds)
    section = downstream_report.section(args.downstream, tasks, args.out) if any(tasks.values()) else None
    path, result = write_report(runs, args.out, section)
    write_json(args.out / "summary.json", result)
    logger.info("report of %d/%d evaluated runs -> %s", result["runs_evaluated"], len(runs), path)
    progress.headline(f"{result['runs_evaluated']}/{len(runs)} runs in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
