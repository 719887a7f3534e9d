"""Mean of per-item scores with a 95 % (or other level) confidence interval: percentile bootstrap (seeded) or
the normal approximation."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["IntervalMethod", "mean_interval"]

IntervalMethod = Literal["bootstrap", "normal"]


def mean_interval(
    values: Tensor,
    method: IntervalMethod = "bootstrap",
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-item scores (N,) → ``{"mean", "low", "high", "n", "interval"}``.

    ``"bootstrap"``: percentiles of the means of ``resamples`` resamples with replacement (a
    ``torch.Generator`` seeded by ``seed``); ``"normal"``: mean ± z·s/√N with the sample standard deviation.
    With one item the interval is the mean itself. NaN items are an error.
    """
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    n = values.numel()
    if n == 0:
        raise ValueError("mean_interval: no values")
    if torch.isnan(values).any():
        raise ValueError("mean_interval: values contain NaN")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean = float(values.mean())
    label = f"{100 * level:g} % {method}"
    if n == 1:
        return {"mean": mean, "low": mean, "high": mean, "n": 1, "interval": label}
    if method == "normal":
        half = NormalDist().inv_cdf(0.5 + level / 2) * float(values.std(unbiased=True)) / math.sqrt(n)
        return {"mean": mean, "low": mean - half, "high": mean + half, "n": n, "interval": label}
    if method != "bootstrap":
        raise ValueError(f"method must be 'bootstrap' or 'normal', got {method!r}")
    if resamples < 2:
        raise ValueError(f"resamples must be >= 2, got {resamples}")
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(0, n, (resamples, n), generator=generator)
    means = values[index].mean(dim=1)
    tail = (1.0 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1.0 - tail], dtype=torch.float64)).tolist()
    return {"mean": mean, "low": low, "high": high, "n": n, "interval": f"{label} ({resamples} resamples)"}
