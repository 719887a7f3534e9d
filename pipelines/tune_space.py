"""The ``tune`` params section: search space, scheduler, searcher, objective, budget; checked before Ray."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines.models import BASES
from pipelines.params import ParamsError
from pipelines.tune_objective import MEASURES, WEIGHTS

logger = logging.getLogger(__name__)

SEARCHER_PACKAGES = {"optuna": "optuna", "hyperopt": "hyperopt"}


@dataclass(frozen=True)
class Bounds:
    """A log-uniform range for one loss weight (both bounds > 0, low < high)."""

    low: float
    high: float


@dataclass(frozen=True)
class SchedulerParams:
    """ASHA, in optimizer steps: every trial runs at least ``grace_period`` steps, at most ``max_steps``; at
    each rung (grace_period · reduction_factor^k) only the best 1/reduction_factor of the trials go on."""

    grace_period: int
    reduction_factor: float
    max_steps: int


@dataclass(frozen=True)
class ObjectiveParams:
    """``terms``: validation measure → weight (see ``pipelines.tune_objective``); ``mode``: min or max."""

    terms: dict[str, float]
    mode: Literal["min", "max"] = "min"


@dataclass(frozen=True)
class TuneParams:
    """Section ``tune``.

    ``space`` lists the searched weights (alpha = L_gsa, beta = L_mtp, gamma = L_ras); a weight left out keeps
    ``guidance.config.weights``. ``points_to_evaluate`` are tried first (e.g. the official weights).
    ``workers_per_trial`` > 1 runs each trial as a Ray Train ``TorchTrainer`` sharing ``cpus_per_trial``;
    ``batch_size`` overrides ``train.batch_size`` for the short trials.
    """

    space: dict[str, Bounds]
    scheduler: SchedulerParams
    objective: ObjectiveParams
    base: str = "vqgan"
    points_to_evaluate: list[dict[str, float]] = field(default_factory=list)
    searcher: Literal["random", "optuna", "hyperopt"] = "random"
    num_samples: int = 4
    max_concurrent_trials: int = 2
    cpus_per_trial: float = 1.0
    workers_per_trial: int = 1
    eval_every: int = 16
    val_batches: int = 4
    batch_size: int = 16
    seed: int = 0


def check(p: TuneParams) -> None:
    """Raise ParamsError (naming the key) for anything Ray would reject later or silently misuse."""
    if p.base not in BASES:
        raise ParamsError(f"tune.base: {p.base!r} is not one of {list(BASES)}")
    if not p.space:
        raise ParamsError(f"tune.space: empty; give at least one of {list(WEIGHTS)} with low/high")
    unknown = sorted(set(p.space) - set(WEIGHTS))
    if unknown:
        raise ParamsError(f"tune.space: unknown loss weight(s) {unknown}; expected some of {list(WEIGHTS)}")
    for name, b in p.space.items():
        for side in ("low", "high"):
            value = getattr(b, side)
            if value <= 0:
                raise ParamsError(f"tune.space.{name}.{side}: log-uniform bounds must be > 0, got {value}")
        if b.low >= b.high:
            raise ParamsError(
                f"tune.space.{name}: low {b.low} must be < high {b.high} "
                "(to keep a weight fixed, drop it from tune.space and set guidance.config.weights)"
            )
    for i, point in enumerate(p.points_to_evaluate):
        if set(point) != set(p.space):
            raise ParamsError(
                f"tune.points_to_evaluate[{i}]: keys {sorted(point)} must be those of tune.space "
                f"{sorted(p.space)}"
            )
        for name, value in point.items():
            b = p.space[name]
            if not b.low <= value <= b.high:
                raise ParamsError(f"tune.points_to_evaluate[{i}].{name}: {value} outside [{b.low}, {b.high}]")
    _check_objective(p.objective)
    s = p.scheduler
    if s.max_steps < 1:
        raise ParamsError(f"tune.scheduler.max_steps: must be >= 1, got {s.max_steps}")
    if not 1 <= s.grace_period <= s.max_steps:
        raise ParamsError(
            f"tune.scheduler.grace_period: must be in [1, max_steps={s.max_steps}], got {s.grace_period}"
        )
    if s.reduction_factor <= 1:
        raise ParamsError(f"tune.scheduler.reduction_factor: must be > 1, got {s.reduction_factor}")
    for key, low in (
        ("num_samples", 1),
        ("max_concurrent_trials", 1),
        ("workers_per_trial", 1),
        ("eval_every", 1),
        ("val_batches", 1),
        ("batch_size", 1),
    ):
        if getattr(p, key) < low:
            raise ParamsError(f"tune.{key}: must be >= {low}, got {getattr(p, key)}")
    if p.eval_every > s.grace_period:
        raise ParamsError(
            f"tune.eval_every: {p.eval_every} > scheduler.grace_period {s.grace_period}; "
            "ASHA could not compare trials at the grace period"
        )
    if p.cpus_per_trial <= 0:
        raise ParamsError(f"tune.cpus_per_trial: must be > 0, got {p.cpus_per_trial}")
    package = SEARCHER_PACKAGES.get(p.searcher)
    if package and importlib.util.find_spec(package) is None:
        raise ParamsError(
            f"tune.searcher: {p.searcher!r} needs the '{package}' package, which is not installed "
            f"(pip install {package}), or use searcher: random"
        )


def _check_objective(o: ObjectiveParams) -> None:
    if not o.terms:
        raise ParamsError("tune.objective.terms: empty; name at least one measure with a weight")
    unknown = sorted(set(o.terms) - set(MEASURES))
    if unknown:
        raise ParamsError(f"tune.objective.terms: unknown measure(s) {unknown}; known: {sorted(MEASURES)}")
    if all(w == 0 for w in o.terms.values()):
        raise ParamsError("tune.objective.terms: every weight is 0; the objective would be constant")


def param_space(p: TuneParams) -> dict[str, Any]:
    """Ray Tune's search space: one ``loguniform`` per searched weight."""
    from ray import tune

    return {name: tune.loguniform(b.low, b.high) for name, b in sorted(p.space.items())}


def searcher(p: TuneParams) -> Any:
    """The search algorithm named by ``tune.searcher``: seeded, starting with ``points_to_evaluate``, running
    at most ``max_concurrent_trials`` trials at once (Tune ignores ``TuneConfig.max_concurrent_trials`` for
    ``BasicVariantGenerator``, so the limit is set here for every searcher)."""
    points = [dict(pt) for pt in p.points_to_evaluate] or None
    if p.searcher == "random":
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(
            points_to_evaluate=points, random_state=p.seed, max_concurrent=p.max_concurrent_trials
        )
    from ray.tune.search import ConcurrencyLimiter

    if p.searcher == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        algo = OptunaSearch(points_to_evaluate=points, seed=p.seed)
    else:
        from ray.tune.search.hyperopt import HyperOptSearch

        algo = HyperOptSearch(points_to_evaluate=points, random_state_seed=p.seed)
    return ConcurrencyLimiter(algo, max_concurrent=p.max_concurrent_trials)


def scheduler(p: TuneParams) -> Any:
    """ASHA over the reported ``step`` (metric and mode come from the TuneConfig)."""
    from ray.tune.schedulers import ASHAScheduler

    s = p.scheduler
    return ASHAScheduler(
        time_attr="step", max_t=s.max_steps, grace_period=s.grace_period, reduction_factor=s.reduction_factor
    )
