"""Stage ``tune``: Ray Tune search over the LG loss weights alpha (L_gsa), beta (L_mtp), gamma (L_ras).

``python -m pipelines.tune --shards data/shards --out tune [--address ADDR] [--restore]``. Each trial trains
the ``tune.base`` tokenizer with language guidance for at most ``tune.scheduler.max_steps`` steps (ASHA stops
the weak ones early) and reports the ``tune.objective`` every ``tune.eval_every`` steps
(``pipelines.tune_objective``). Writes ``best_loss_weights.yaml`` (read by ``train --weights``),
``results.csv``/``results.md`` (every trial) and ``objective_vs_weights.png`` into ``--out``. Ray starts
locally unless ``--address``, ``ray.address`` or ``RAY_ADDRESS`` names a cluster. The experiment lives in
``ray.storage_path`` under a name derived from the settings and the data, so re-running after an
interruption resumes it (``Tuner.restore``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from pipelines import progress
from pipelines.params import ParamsError, StageParams, to_mapping
from pipelines.ray_runtime import RayParams
from pipelines.stage import parser, setup_logging
from pipelines.tune_objective import WEIGHTS, TrialSettings, finite, release_callback, scratch_root, trial
from pipelines.tune_space import TuneParams, check, param_space, scheduler, searcher

PARAMS = ("data.image_size", "splits", "model", "guidance", "vqct", "train", "ray", "tune")
BEST_FILE = "best_loss_weights.yaml"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """Everything a search needs, checked: the tune section, the Ray section and the per-trial settings."""

    tune: TuneParams
    ray: RayParams
    settings: TrialSettings

    @property
    def name(self) -> str:
        return self.settings.experiment

    @property
    def val_split(self) -> str:
        """Where trials are scored: the val split, and how it was made."""
        fraction = float(self.settings.job.get("val_from_train", 0.0))
        seed = self.settings.job.get("split_seed", 0)
        return f"val (carved from train: {fraction:.0%}, seed {seed})" if fraction else "val"


def plan(params: Path, shards: Path, address: str | None = None) -> Plan:
    """Read and check the params (no Ray yet); ParamsError on anything invalid."""
    from pipelines.ray_runtime import storage_uri
    from pipelines.train import make_job

    sp = StageParams(params, PARAMS)
    tune_params = sp.section("tune", TuneParams)
    check(tune_params)
    if not (shards / "manifest.json").is_file():
        raise ParamsError(f"--shards {shards}: no manifest.json (build the shards with the data stage first)")
    job, ray_params = make_job(sp, tune_params.base, True, shards, {}, tune_params.seed)
    if address:
        ray_params = replace(ray_params, address=address)
    workers = tune_params.workers_per_trial
    cpus_per_worker = tune_params.cpus_per_trial / workers
    job = replace(job, batch_size=tune_params.batch_size, threads_per_worker=max(1, int(cpus_per_worker)))
    digest = hashlib.sha256(
        json.dumps(
            {
                "job": asdict(job),
                "tune": to_mapping(tune_params),
                "data": hashlib.sha256((shards / "manifest.json").read_bytes()).hexdigest(),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:10]
    settings = TrialSettings(
        job=asdict(job),
        terms=dict(tune_params.objective.terms),
        max_steps=tune_params.scheduler.max_steps,
        eval_every=tune_params.eval_every,
        val_batches=tune_params.val_batches,
        workers_per_trial=workers,
        cpus_per_worker=cpus_per_worker,
        use_gpu=ray_params.use_gpu,
        storage=storage_uri(ray_params),
        experiment=f"tune-{tune_params.base}-{digest}",
        max_failures=ray_params.max_failures,
    )
    return Plan(tune_params, ray_params, settings)


def _trainable(p: Plan) -> Any:
    from ray import tune

    fn = tune.with_parameters(trial, settings=asdict(p.settings))
    if p.settings.workers_per_trial > 1:  # the trial only drives a TorchTrainer, whose workers hold the CPUs
        return tune.with_resources(fn, {"cpu": 0.01})
    return tune.with_resources(fn, {"cpu": p.tune.cpus_per_trial, "gpu": 1 if p.ray.use_gpu else 0})


def experiment_path(p: Plan) -> str:
    return f"{p.settings.storage.rstrip('/')}/{p.name}"


def run(p: Plan, *, restore: bool = False, callbacks: list[Any] | None = None, verbose: int = 1) -> Any:
    """Start Ray if needed, run (or resume) the experiment, return the ``ResultGrid``.

    ``callbacks``: extra ``ray.tune.Callback``s (driver side) for a new experiment.
    """
    from ray import tune

    from pipelines.ray_runtime import ensure_ray

    path = experiment_path(p)
    resume = tune.Tuner.can_restore(path)
    if restore and not resume:
        raise FileNotFoundError(f"--restore: no experiment to restore at {path}")
    ensure_ray(p.ray)
    trainable = _trainable(p)
    callbacks = list(callbacks or [])
    if progress.active():
        callbacks.append(progress_callback(p))
    if p.settings.workers_per_trial > 1:
        callbacks.append(release_callback(p.name))
    if resume:
        logger.info("resuming the experiment at %s", path)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        logger.info("starting experiment %s (%d trials)", path, p.tune.num_samples)
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(p.tune),
            tune_config=tune.TuneConfig(
                metric="objective",
                mode=p.tune.objective.mode,
                search_alg=searcher(p.tune),
                scheduler=scheduler(p.tune),
                num_samples=p.tune.num_samples,
            ),
            run_config=tune.RunConfig(
                name=p.name,
                storage_path=p.settings.storage,
                callbacks=callbacks,
                verbose=verbose,
                failure_config=tune.FailureConfig(max_failures=p.ray.max_failures),
                # 2, not 1: with num_to_keep=n Tune forces an experiment snapshot whenever a trial has
                # checkpointed n times since the last one; at 1 that is every checkpoint, and concurrent
                # trials checkpointing seconds apart made Tune warn (experiment state snapshotting "may
                # become a bottleneck", TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC).
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            ),
        )
    try:
        return tuner.fit()
    finally:  # the trials' local checkpoint folders on this node, including those of trials ASHA stopped
        shutil.rmtree(scratch_root(p.settings.experiment), ignore_errors=True)


def progress_callback(p: Plan) -> Any:
    """A Tune callback (driver side) drawing the search as one console progress bar over its trials: a
    finished trial counts 1, a running one the fraction of ``max_steps`` it has reported; the note is the best
    of the trials' latest objectives (what :func:`best` ranks, before its full-budget filter)."""
    from ray import tune

    class TuneProgress(tune.Callback):
        def __init__(self) -> None:
            self.bar = progress.bar("tune", "tune", p.tune.num_samples, unit="trial")
            self.fraction: dict[str, float] = {}
            self.latest: dict[str, float] = {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            step = float(result.get("step", 0) or 0)
            self.fraction[trial.trial_id] = min(1.0, step / max(1, p.tune.scheduler.max_steps))
            if finite(result.get("objective")):
                self.latest[trial.trial_id] = float(result["objective"])
            self._draw()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.fraction[trial.trial_id] = 1.0
            self._draw()

        def on_trial_error(self, iteration, trials, trial, **info):
            self.fraction[trial.trial_id] = 1.0
            self._draw()

        def on_experiment_end(self, trials, **info):
            self.bar.finish()

        def _draw(self) -> None:
            best = min if p.tune.objective.mode == "min" else max
            note = f"best objective {best(self.latest.values()):.4g}" if self.latest else None
            self.bar.update(sum(self.fraction.values()), note=note)

    return TuneProgress()


# ------------------------------------------------------------------------------------------ outputs


def rows(grid: Any, p: Plan) -> list[dict[str, Any]]:
    """One row per trial: id, weights, objective (last report), measures, steps, status."""
    out = []
    for result in grid:
        metrics = dict(result.metrics or {})
        steps = int(metrics.get("step", 0) or 0)
        if result.error is not None:
            status = "error"
        elif steps >= p.tune.scheduler.max_steps:
            status = "completed"
        elif steps > 0:
            status = "early-stopped"
        else:
            status = "not started"
        trial_id = metrics.get("trial_id") or Path(str(result.path)).name
        row: dict[str, Any] = {"trial_id": trial_id}
        config = result.config or {}
        row.update({w: float(config.get(w, math.nan)) for w in sorted(p.tune.space)})
        row.update(objective=metrics.get("objective", math.nan), steps=steps, status=status)
        row.update({t: metrics.get(t, math.nan) for t in p.tune.objective.terms})
        out.append(row)
    return sorted(out, key=lambda r: str(r["trial_id"]))


def best(table: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """The best trial by its last objective, among those that ran the full budget (all, when none did)."""
    scored = [r for r in table if finite(r["objective"]) and r["status"] != "error"]
    full = [r for r in scored if r["status"] == "completed"] or scored
    if not full:
        raise RuntimeError("no trial reported a finite objective; see the Ray logs of the experiment")
    return (min if mode == "min" else max)(full, key=lambda r: r["objective"])


def write_best(out: Path, row: dict[str, Any], p: Plan, fixed: dict[str, float]) -> Path:
    """``best_loss_weights.yaml``, atomically: the weights (read by ``train --weights``) and their origin."""
    weights = {**fixed, **{w: float(row[w]) for w in p.tune.space}}
    payload = {
        "weights": {k: weights[k] for k in WEIGHTS if k in weights},
        "objective": {
            "value": float(row["objective"]),
            "mode": p.tune.objective.mode,
            "terms": dict(p.tune.objective.terms),
        },
        "measures": {t: float(row[t]) for t in p.tune.objective.terms},
        "trial_id": str(row["trial_id"]),
        "steps": int(row["steps"]),
        "experiment": experiment_path(p),
        "split": p.val_split,
    }
    return _atomic_text(out / BEST_FILE, yaml.safe_dump(payload, sort_keys=False))


def write_tables(out: Path, table: list[dict[str, Any]], p: Plan, chosen: dict[str, Any]) -> None:
    """``results.csv`` and ``results.md`` (markdown, sorted by objective, the chosen trial marked)."""
    columns = list(table[0])
    with open(_tmp_path(out / "results.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(table)
    os.replace(_tmp_path(out / "results.csv"), out / "results.csv")
    reverse = p.tune.objective.mode == "max"
    ordered = sorted(
        table,
        key=lambda r: (
            not finite(r["objective"]),
            -r["objective"]
            if reverse and finite(r["objective"])
            else r["objective"]
            if finite(r["objective"])
            else 0,
        ),
    )
    terms = " + ".join(f"{w:g}·{t}" for t, w in p.tune.objective.terms.items())
    lines = [
        f"# Tune: {p.name}",
        "",
        f"Objective ({p.tune.objective.mode}): {terms}. "
        f"Budget: {len(table)} trials, ≤ {p.tune.scheduler.max_steps} steps each (ASHA, grace "
        f"{p.tune.scheduler.grace_period}, reduction {p.tune.scheduler.reduction_factor:g}). "
        f"Chosen: **{chosen['trial_id']}** (*). Scored on {p.val_split}; the test split is never used here.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for r in ordered:
        mark = " (*)" if r["trial_id"] == chosen["trial_id"] else ""
        lines.append(
            "| " + " | ".join(_fmt(r[c]) + (mark if c == "trial_id" else "") for c in columns) + " |"
        )
    _atomic_text(out / "results.md", "\n".join(lines) + "\n")


def plot(out: Path, table: list[dict[str, Any]], p: Plan, chosen: dict[str, Any]) -> Path:
    """``objective_vs_weights.png``: one panel per searched weight (log x), colour = status, star = chosen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(p.tune.space)
    colours = {
        "completed": "tab:blue",
        "early-stopped": "tab:orange",
        "error": "tab:red",
        "not started": "grey",
    }
    fig, axes = plt.subplots(
        1, len(names), figsize=(4 * len(names), 3.4), squeeze=False, constrained_layout=True
    )
    for ax, name in zip(axes[0], names, strict=True):
        for status, colour in colours.items():
            pts = [
                (r[name], r["objective"]) for r in table if r["status"] == status and finite(r["objective"])
            ]
            if pts:
                ax.scatter(*zip(*pts, strict=True), c=colour, label=status, s=30)
        ax.scatter(
            [chosen[name]],
            [chosen["objective"]],
            marker="*",
            s=220,
            facecolors="none",
            edgecolors="black",
            label="chosen",
        )
        b = p.tune.space[name]
        ax.set_xscale("log")
        ax.set_xlim(b.low / 1.5, b.high * 1.5)
        ax.set_xlabel(name)
        ax.set_ylabel(f"objective ({p.tune.objective.mode})")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{p.name}: last objective per trial", fontsize=9)
    path = out / "objective_vs_weights.png"
    tmp = _tmp_path(path)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _atomic_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_outputs(grid: Any, p: Plan, out: Path) -> dict[str, Any]:
    """All outputs into ``out``; returns the chosen row."""
    out.mkdir(parents=True, exist_ok=True)
    table = rows(grid, p)
    chosen = best(table, p.tune.objective.mode)
    write_tables(out, table, p, chosen)
    plot(out, table, p, chosen)
    write_best(out, chosen, p, _configured_weights(p))
    return chosen


def _configured_weights(p: Plan) -> dict[str, float]:
    """guidance.config.weights (what an unsearched weight stays at)."""
    from pipelines.models import GuidanceParams, guidance_config
    from pipelines.params import from_mapping

    config = guidance_config(from_mapping(GuidanceParams, p.settings.job["guidance"], "guidance"))
    return {k: float(getattr(config.weights, k)) for k in WEIGHTS}


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--shards", type=Path, required=True)
    ap.add_argument(
        "--out", type=Path, required=True, help="output folder (best_loss_weights.yaml, results.*)"
    )
    ap.add_argument(
        "--address", default=None, help="Ray cluster to join (host:port or auto); default RAY_ADDRESS"
    )
    ap.add_argument("--restore", action="store_true", help="require an interrupted experiment to resume")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    p = plan(args.params, args.shards, args.address)
    grid = run(p, restore=args.restore)
    chosen = write_outputs(grid, p, args.out)
    logger.info(
        "best of %d trials: %s objective %.5g with %s",
        len(grid),
        chosen["trial_id"],
        chosen["objective"],
        {w: chosen[w] for w in sorted(p.tune.space)},
    )
    weights = ", ".join(f"{w} {chosen[w]:.3g}" for w in sorted(p.tune.space))
    progress.headline(f"best objective {chosen['objective']:.4g} of {len(grid)} trials ({weights})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
