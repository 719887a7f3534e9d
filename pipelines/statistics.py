"""Seed statistics for the report: Student-t intervals of a mean over seeds and of the paired
treatment − control delta, and one-sentence verdicts on whether a delta is distinguishable from zero.

Pure Python (no scipy: it is only a transitive dependency here). The two-sided Student-t critical value is
computed exactly for integer degrees of freedom from the closed-form CDF (Abramowitz & Stegun 26.7.3/26.7.4)
and inverted by bisection.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Interval", "mean_interval", "paired_delta", "describe_delta", "t_critical"]

logger = logging.getLogger(__name__)

MINUS = "\u2212"  # typographic minus, used in the sentences of describe_delta


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds with its two-sided Student-t interval ``[low, high] = mean ± half_width``.

    With ``n == 1`` there is no interval: ``low == high == mean`` and ``half_width`` is NaN.
    """

    mean: float
    low: float
    high: float
    n: int
    half_width: float

    def excludes_zero(self) -> bool:
        """True when the interval lies strictly on one side of zero (never for n == 1: no interval)."""
        if self.n < 2 or not math.isfinite(self.half_width):
            return False
        return self.low > 0.0 or self.high < 0.0

    def format(self, digits: int = 2) -> str:
        """``"21.34 ± 0.52"``; ``"21.34 (n=1)"`` when there is a single seed."""
        if self.n < 2 or not math.isfinite(self.half_width):
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


# ------------------------------------------------------------------------------------------ Student t


def _t_abs_cdf(t: float, df: int) -> float:
    """P(|T| < t) for T ~ Student t with integer ``df`` ≥ 1 and t ≥ 0 (A&S 26.7.3 odd df, 26.7.4 even df)."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos = math.sin(theta), math.cos(theta)
    cos2 = cos * cos
    if df % 2 == 1:
        if df == 1:
            return 2.0 * theta / math.pi
        total, term = 1.0, 1.0
        for k in range(1, (df - 3) // 2 + 1):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
            if term < 1e-17 * total:
                break
        return 2.0 / math.pi * (theta + sin * cos * total)
    total, term = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= cos2 * (2 * k - 1) / (2 * k)
        total += term
        if term < 1e-17 * total:
            break
    return sin * total


def t_critical(confidence: float, df: int) -> float:
    """Two-sided Student-t critical value: the ``(1 + confidence) / 2`` quantile for integer ``df`` ≥ 1.

    E.g. ``t_critical(0.95, 2) == 4.302652729911275``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if int(df) != df or df < 1:
        raise ValueError(f"df must be an integer >= 1, got {df}")
    df = int(df)
    lo, hi = 0.0, 1.0
    while _t_abs_cdf(hi, df) < confidence:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _t_abs_cdf(mid, df) < confidence:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------------------------------ intervals


def _check_finite(
    values: Sequence[float], what: str = "value", labels: Sequence[object] | None = None
) -> None:
    for i, v in enumerate(values):
        if not math.isfinite(v):
            where = f"seed {labels[i]!r}" if labels is not None else f"position {i}"
            raise ValueError(f"{what} at {where} is {v} (not finite); drop or fix that run first")


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student-t interval of the mean of per-seed values (sample sd, ddof=1); units are those of the values.

    One value → ``low == high == mean`` and NaN half width; no value or a NaN/inf value → ``ValueError``.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_interval needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    _check_finite(values)
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean=mean, low=mean, high=mean, n=1, half_width=math.nan)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_critical(confidence, n - 1) * sd / math.sqrt(n)
    return Interval(mean=mean, low=mean - half, high=mean + half, n=n, half_width=half)


def _seed_key(seed: Hashable) -> tuple[int, object]:
    # ints in numeric order before anything else in string order, so mixed keys still sort
    return (0, seed) if isinstance(seed, int) and not isinstance(seed, bool) else (1, str(seed))


def paired_delta(
    treatment: Mapping[Hashable, float], control: Mapping[Hashable, float], confidence: float = 0.95
) -> Interval:
    """Student-t interval of the mean paired delta ``treatment[seed] − control[seed]`` (units of the metric).

    Only seeds present in both mappings are paired; the others are named in a logged warning. No seed in
    common, or a NaN/inf value at a paired seed → ``ValueError``.
    """
    common = sorted(set(treatment) & set(control), key=_seed_key)
    only_t = sorted(set(treatment) - set(control), key=_seed_key)
    only_c = sorted(set(control) - set(treatment), key=_seed_key)
    if not common:
        raise ValueError(f"no seed in common between treatment (seeds {only_t}) and control (seeds {only_c})")
    if only_t or only_c:
        logger.warning(
            "paired delta over %d common seed(s) %s; unpaired seeds dropped: only in treatment %s, "
            "only in control %s",
            len(common),
            common,
            only_t,
            only_c,
        )
    t_values = [float(treatment[s]) for s in common]
    c_values = [float(control[s]) for s in common]
    _check_finite(t_values, "treatment value", common)
    _check_finite(c_values, "control value", common)
    return mean_interval([t - c for t, c in zip(t_values, c_values, strict=True)], confidence)


# ------------------------------------------------------------------------------------------ words


def _signed(x: float, digits: int) -> str:
    text = f"{x:+.{digits}f}"
    return text.replace("-", MINUS)


def describe_delta(
    name: str,
    metric: str,
    interval: Interval,
    higher_is_better: bool,
    *,
    unit: str = "",
    digits: int = 2,
    treatment: str = "LG",
) -> str:
    """One English sentence on a paired delta, e.g. ``"VQ-GAN+LG vs VQ-GAN, PSNR: +0.41 dB [−0.10, +0.92]
    over 3 seeds — not distinguishable from zero."``

    ``name`` labels the comparison, ``metric``/``unit`` the quantity (the delta is in ``unit``);
    ``higher_is_better`` decides whether an interval above zero means ``treatment`` is better or worse.
    """
    unit_text = f" {unit}" if unit else ""
    seeds = f"{interval.n} seed{'s' if interval.n != 1 else ''}"
    head = f"{name}, {metric}: {_signed(interval.mean, digits)}{unit_text}"
    if interval.n < 2 or not math.isfinite(interval.half_width):
        return f"{head} over {seeds} — a single seed, no interval: not distinguishable from zero."
    body = f"{head} [{_signed(interval.low, digits)}, {_signed(interval.high, digits)}] over {seeds}"
    if not interval.excludes_zero():
        return f"{body} — not distinguishable from zero."
    better = (interval.mean > 0) == higher_is_better
    return f"{body} — {treatment} is {'better' if better else 'worse'} (interval excludes zero)."
