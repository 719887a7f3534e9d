"""Stage ``report``: all runs' evaluations in the layout of the paper's Table 1, the LG diagnostics, the
protocol, the paper's own numbers for reference, links to the figures, and the training curves.

``python -m pipelines.report --eval reports/eval --train reports/train --out reports``. Reads each per-run
eval JSON (``pipelines.evaluate``) and each train metrics JSON + curve CSV (``pipelines.train``; a curve is
the CSV with the JSON's stem); writes ``report.md``, ``summary.json`` (DVC metrics) and
``training_curves.png``. A run that is missing is shown as "—".
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

from pipelines.stage import parser, setup_logging, write_json

PARAMS: tuple[str, ...] = ()
logger = logging.getLogger(__name__)

DASH = "—"
BASE_NAMES = {"vqvae": "VQ-VAE", "vqgan": "VQ-GAN", "cvq": "CVQ", "vqct": "VQCT"}
ROWS: tuple[tuple[str, bool], ...] = tuple((b, lg) for b in BASE_NAMES for lg in (False, True))
CURVE_KEY = "reconstruction"

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


@dataclass
class Run:
    """What the report knows about one (base, lg) run; any part may be missing."""

    base: str
    lg: bool
    eval: dict[str, Any] | None = None
    eval_path: Path | None = None
    train: dict[str, Any] | None = None
    curve: dict[str, list[float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return BASE_NAMES.get(self.base, self.base) + ("+LG" if self.lg else "")


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
    """A curve CSV (``step`` + loss columns) → column name → values; non-numeric cells are dropped per row."""
    columns: dict[str, list[float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                step = float(row["step"])
                value = float(row[CURVE_KEY])
            except (KeyError, TypeError, ValueError):
                continue
            columns.setdefault("step", []).append(step)
            columns.setdefault(CURVE_KEY, []).append(value)
    return columns


def collect(eval_dir: Path | None, train_dir: Path | None) -> dict[tuple[str, bool], Run]:
    """Every (base, lg) of the table, filled from the eval and train folders that exist."""
    runs = {(b, lg): Run(b, lg) for b, lg in ROWS}
    for path in sorted(eval_dir.glob("*.json")) if eval_dir and eval_dir.is_dir() else []:
        data = _read_json(path)
        if data is not None:
            run = runs.setdefault((data["base"], bool(data["lg"])), Run(data["base"], bool(data["lg"])))
            run.eval, run.eval_path = data, path
    for path in sorted(train_dir.glob("*.json")) if train_dir and train_dir.is_dir() else []:
        data = _read_json(path)
        if data is None:
            continue
        run = runs.setdefault((data["base"], bool(data["lg"])), Run(data["base"], bool(data["lg"])))
        run.train = data
        csv_path = path.with_suffix(".csv")
        if csv_path.is_file():
            run.curve = read_curve(csv_path)
    return runs


# ------------------------------------------------------------------------------------------ formatting


def fmt(value: Any, digits: int = 2, scale: float = 1.0) -> str:
    """A number with ``digits`` decimals, or "—" for missing / non-finite values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return DASH
    return f"{value * scale:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _fd_label(runs: list[Run]) -> str:
    names = {r.eval.get("fd_name") for r in runs if r.eval}
    names.discard(None)
    return names.pop() if len(names) == 1 else "FD (see protocol)"


def table1(runs: dict[tuple[str, bool], Run]) -> list[str]:
    """Our Table 1: reconstruction and codebook metrics per base, without and with LG."""
    ordered = [runs[k] for k in ROWS] + [r for k, r in runs.items() if k not in ROWS]
    fd = _fd_label(ordered)
    header = ["model", "PSNR (dB) ↑", "SSIM ↑", f"{fd} ↓", "usage % ↑", "perplexity ↑"]
    rows = []
    for r in ordered:
        e = r.eval or {}
        rows.append(
            [
                r.label,
                fmt(e.get("psnr")),
                fmt(e.get("ssim"), 4),
                fmt(e.get("fd")),
                fmt(e.get("codebook_usage"), 1, 100.0),
                fmt(e.get("codebook_perplexity"), 1),
            ]
        )
    return _table(header, rows)


def diagnostics_table(runs: dict[tuple[str, bool], Run]) -> list[str]:
    """Recall@1 (mask 1 / 3), word–code similarity MSE (raw / projected codes), image→text retrieval."""
    header = [
        "model",
        "recall@1 mask-1 % ↑",
        "recall@1 mask-3 % ↑",
        "word–code MSE (codes) ↓",
        "word–code MSE (g(codes)) ↓",
        "retrieval top-1 % ↑",
        "retrieval top-5 % ↑",
    ]
    rows = []
    for key in ROWS:
        r = runs[key]
        d = (r.eval or {}).get("diagnostics") or {}
        probe = "ᵖ" if (not r.lg and "word_code_mse_raw" in d) else ""
        mse_raw, mse_proj = fmt(d.get("word_code_mse_raw"), 4), fmt(d.get("word_code_mse_projected"), 4)
        rows.append(
            [
                r.label,
                fmt(d.get("recall_at_1_mask1"), 1, 100.0),
                fmt(d.get("recall_at_1_mask3"), 1, 100.0),
                mse_raw + (probe if mse_raw != DASH else ""),
                mse_proj + (probe if mse_proj != DASH else ""),
                fmt(d.get("retrieval_top1"), 1, 100.0),
                fmt(d.get("retrieval_top5"), 1, 100.0),
            ]
        )
    return _table(header, rows)


def runs_table(runs: dict[tuple[str, bool], Run]) -> list[str]:
    """Train steps and seconds, eval images and seconds per run."""
    header = ["run", "train steps", "train s", "eval images", "eval s"]
    rows = []
    for key in ROWS:
        r = runs[key]
        t, e = r.train or {}, r.eval or {}
        rows.append(
            [
                r.label,
                fmt(t.get("steps", e.get("train_steps")), 0),
                fmt(t.get("train_seconds"), 0),
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


def protocol_lines(runs: dict[tuple[str, bool], Run]) -> list[str]:
    """The evaluation protocol of the first evaluated run, and any run whose protocol differs from it."""
    evaluated = [r for r in runs.values() if r.eval and r.eval.get("protocol")]
    if not evaluated:
        return ["No run has been evaluated yet."]
    first = evaluated[0].eval["protocol"]  # type: ignore[index]
    fr = first.get("frechet") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (first.get("versions") or {}).items() if v)
    text = first.get("text_encoder") or {}
    lines = [
        f"- Split **{first.get('split')}**, {first.get('images')} images, {first.get('image_size')} px: "
        f"{first.get('resize')}; {first.get('captions')}.",
        f"- PSNR/SSIM: {first.get('psnr_ssim')}.",
        f"- Fréchet distance **{fr.get('name')}** between {fr.get('generated')} and {fr.get('real')}: "
        f"{fr.get('input')}; weights `{fr.get('weights')}` sha256 `{fr.get('sha256')}` "
        f"({fr.get('package')}). "
        "FD-EffLite0 is not FID: do not compare it with published FIDs.",
        f"- Codebook: {first.get('codebook')}.",
        f"- LG diagnostics text encoder: {text.get('name', DASH)} "
        f"(context {text.get('context_length', DASH)}). "
        "Word–code MSE of runs without LG (ᵖ): "
        + str(
            next(
                (
                    r.eval["protocol"].get("word_code")  # type: ignore[index]
                    for r in evaluated
                    if not r.lg
                ),
                DASH,
            )
        )
        + ".",
        f"- Libraries: {versions}; device {first.get('device')}, {first.get('threads')} threads, "
        f"seed {first.get('seed')}.",
    ]
    for r in evaluated[1:]:
        p = r.eval["protocol"]  # type: ignore[index]
        differs = [k for k in ("split", "images", "image_size", "frechet") if p.get(k) != first.get(k)]
        if differs:
            lines.append(f"- **{r.label} differs** in {', '.join(differs)}: see its metrics file.")
    return lines


def figure_lines(runs: dict[tuple[str, bool], Run], out: Path) -> list[str]:
    """Markdown links to each evaluated run's PNGs, relative to ``out``."""
    lines = []
    for key in ROWS:
        r = runs[key]
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
            lines.append(f"- {r.label}: " + ", ".join(links))
    return lines or ["No figures yet."]


def summary(runs: dict[tuple[str, bool], Run]) -> dict[str, Any]:
    """DVC metrics: per run the table numbers (missing runs absent), plus how many runs were found."""
    keys = ("psnr", "ssim", "fd", "codebook_usage", "codebook_perplexity")
    out: dict[str, Any] = {}
    for (base, lg), r in runs.items():
        if not r.eval:
            continue
        entry = {k: r.eval.get(k) for k in keys}
        entry.update(r.eval.get("diagnostics") or {})
        out[f"{base}-{'on' if lg else 'off'}"] = {
            k: v for k, v in entry.items() if isinstance(v, (int, float))
        }
    return {"runs": out, "runs_evaluated": len(out), "runs_expected": len(ROWS)}


def write_report(runs: dict[tuple[str, bool], Run], out: Path) -> Path:
    """``report.md`` + ``training_curves.png`` in ``out``."""
    from pipelines import plots

    out.mkdir(parents=True, exist_ok=True)
    curves = {
        BASE_NAMES[b]: {
            lg: (runs[(b, lg)].curve["step"], runs[(b, lg)].curve[CURVE_KEY])
            for lg in (False, True)
            if runs[(b, lg)].curve.get("step")
        }
        for b in BASE_NAMES
    }
    plots.training_curves(curves, out / "training_curves.png")
    found = sum(1 for k in ROWS if runs[k].eval)
    lines = [
        "# LG-VQ reproduction report",
        "",
        f'{found} of {len(ROWS)} runs evaluated; "{DASH}" marks a run or metric that is missing '
        "or does not apply (recall and retrieval need the LG heads).",
        "",
        "## Reconstruction and codebook (layout of the paper's Table 1)",
        "",
        *table1(runs),
        "",
        "## LG diagnostics (paper Tables 3–4, retrieval)",
        "",
        *diagnostics_table(runs),
        "",
        "ᵖ: no LG heads in this run; the word–code MSE comes from a probe (LG heads briefly fitted on the "
        "frozen "
        'base), see the protocol. "codes" = the raw code vectors matched to the words, "g(codes)" = their '
        "projection (what L_ras trains).",
        "",
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
        f"Training curves: {CURVE_KEY} loss vs step, one panel per base, without and with LG.",
        "",
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
    return path


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--eval", type=Path, required=True, help="folder of per-run eval JSONs")
    p.add_argument("--train", type=Path, required=True, help="folder of train metrics JSONs + curve CSVs")
    p.add_argument("--out", type=Path, required=True, help="report folder (report.md, summary.json, PNG)")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    runs = collect(args.eval, args.train)
    path = write_report(runs, args.out)
    result = summary(runs)
    write_json(args.out / "summary.json", result)
    logger.info("report of %d/%d evaluated runs -> %s", result["runs_evaluated"], len(ROWS), path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
