"""Spread statistics: how the chapters summarise repeated measurements (seeds, runs, timed steps)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

# Student's t, two-sided 95% (the 0.975 quantile), for 1 to 30 degrees of freedom; above 30 the normal 1.96.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_975(degrees_of_freedom: int) -> float:
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees_of_freedom={degrees_of_freedom}: a t interval needs 2 or more values.")
    return _T_975[degrees_of_freedom - 1] if degrees_of_freedom <= len(_T_975) else 1.96


def spread(values: Iterable[float]) -> dict[str, float]:
    """n, mean, sample standard deviation, the 95% t interval of the mean, median, min and max.

    One value has no spread: std is 0 and the interval is NaN (not a width of 0). No values: all NaN, n 0.
    """
    values = list(values)
    n = len(values)
    if not n:
        nan = float("nan")
        return dict(n=0, mean=nan, std=nan, ci95_low=nan, ci95_high=nan, median=nan, min=nan, max=nan)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    half = t_975(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
    return dict(
        n=n,
        mean=mean,
        std=std,
        ci95_low=mean - half,
        ci95_high=mean + half,
        median=statistics.median(values),
        min=min(values),
        max=max(values),
    )
