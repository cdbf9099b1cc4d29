"""Chapter 04's lessons as claims on its stages' runs: what each lever changed, in steps and in time."""

from __future__ import annotations

import math
import statistics

from fasttrain.chapters.ch01_claims import step_rates
from fasttrain.chapters.ch04_report import time_to_accuracy
from fasttrain.report.claims import Claims, compare, verdict

EVERYWHERE = ("smoke", "cpu", "gpu")
SPEEDUP_BAR = 1.5  # the stacked levers must beat the baseline's time to target by at least this


def _steps(records: list[dict]) -> float:
    return statistics.fmean(r["steps"] for r in records)


def _grid(records: list[dict]) -> int:
    return max(r["config"]["val_every_steps"] or r["steps"] for r in records)


def _crossed(records: list[dict], target: float) -> tuple[float, float]:
    """When the runs first met the target, in steps, as the validation grid resolves it: after the
    validation before the one that saw it (exclusive), at the latest at that one (inclusive). A run that
    never met it needed more than all its steps: no upper bound."""
    missed = any(time_to_accuracy(r, target) is None for r in records)
    return min(r["steps"] for r in records) - _grid(records), math.inf if missed else max(r["steps"] for r in records)


def _fewer(a: tuple[float, float], b: tuple[float, float]) -> bool | None:
    """Whether span a lies wholly below span b (True), wholly above it (False), or they overlap (None)."""
    return True if a[1] <= b[0] else False if a[0] >= b[1] else None


def _images(records: list[dict], target: float) -> tuple[float, float]:
    """_crossed in training images."""
    batch = records[0]["config"]["global_batch_size"]
    low, high = _crossed(records, target)
    return low * batch, high * batch


def check_claims(runs: dict[str, list[dict]], table: list[dict], target: float, profile: str) -> Claims:
    """`runs`: each stage's records (seeds); `table`: their `summarize` rows, baseline first."""
    claims = Claims("04", profile)
    missed = [r["name"] for r in table if r["reached"] < r["runs"]]
    claims.check(
        f"every stage reaches {target:.0%} within the baseline's budget of training images",
        not missed,
        "all did" if not missed else "missed by: " + ", ".join(missed),
        robust=EVERYWHERE,
    )
    base, schedule = runs.get("baseline"), runs.get("schedule")
    if base and schedule:
        claims.check(
            "the schedule lever (AdamW, warm-up, decay to zero) reaches the target in fewer steps, beyond the "
            "validation grid: it buys progress per step, not speed per step",
            _fewer(_crossed(schedule, target), _crossed(base, target)),
            f"{_steps(schedule):.0f} vs {_steps(base):.0f} steps, validated every {_grid(base + schedule)} "
            f"({len(schedule)} and {len(base)} run(s))",
            robust=EVERYWHERE,
        )
    single, parallel = runs.get("precision + layout"), runs.get("data parallel")
    if single and parallel:
        claims.check(
            "data parallelism at the same global batch takes the same steps to the target (within one "
            "validation interval): it changes where the work runs, not the maths",
            abs(_steps(parallel) - _steps(single)) <= _grid(single + parallel),
            f"{_steps(parallel):.0f} vs {_steps(single):.0f} steps",
            robust=EVERYWHERE,
        )
        sign, words = compare(sum((step_rates(r) for r in parallel), []), sum((step_rates(r) for r in single), []))
        claims.check(
            f"data parallelism over {parallel[0]['config']['devices']} ranks trains more images per second than "
            "one process (where each rank owns a device; on a CPU one process already uses every core)",
            verdict(sign, ">"),
            f"images/s per step, ranks vs one process: {words}",
            robust=("gpu",),
        )
    big = runs.get("large batch")
    before = parallel or single
    if big and before:
        (low, high), (b_low, b_high) = _images(big, target), _images(before, target)
        claims.check(
            "the large batch needs more training images to reach the target than the stage before it, beyond "
            "the validation grid: it trades images for steps (chapter 03 measures the steps)",
            _fewer((b_low, b_high), (low, high)),
            f"{_steps(big):.0f} steps of {big[0]['config']['global_batch_size']} ({low:,.0f}-{high:,.0f} images) vs "
            f"{_steps(before):.0f} of {before[0]['config']['global_batch_size']} ({b_low:,.0f}-{b_high:,.0f})",
            robust=EVERYWHERE,
        )
    reached = [r for r in table[1:] if r["reached"] == r["runs"]]
    if table[0]["reached"] == table[0]["runs"] and reached:
        best = min(reached, key=lambda r: r["time_mean_s"])
        speedup = table[0]["time_mean_s"] / best["time_mean_s"]
        claims.check(
            f"the levers that paid together reach the target at least {SPEEDUP_BAR}x sooner than the baseline",
            speedup >= SPEEDUP_BAR,
            f"{best['name']}: {best['time_mean_s']:.1f} s vs {table[0]['time_mean_s']:.1f} s ({speedup:.2f}x; "
            f"{best['runs']} run(s) each)",
            robust=("cpu", "gpu"),
        )
    return claims
