"""Chapter 04's lessons as claims on its runs: the recipe reaches the target, the full test set confirms
it, it beats the baseline, and what leaving each lever out did, in steps and in time."""

from __future__ import annotations

import math
import statistics

from fasttrain.chapters.ch01_claims import step_rates
from fasttrain.chapters.ch04_report import leave_one_out_rows, ratio_to, time_to_accuracy
from fasttrain.report.claims import Claims, compare, verdict

EVERYWHERE = ("smoke", "cpu", "gpu")
SPEEDUP_BAR = 2.0  # the recipe must reach the target at least this many times sooner than the baseline


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


def margin(accuracy: float, images: int) -> float:
    """Half the 95% binomial interval of an accuracy measured on `images` images."""
    return 1.96 * math.sqrt(accuracy * (1 - accuracy) / images)


def check_claims(runs: dict[str, list[dict]], table: list[dict], target: float, profile: str) -> Claims:
    """`runs`: each configuration's records, the recipe first; `table`: their `summarize` rows, same order."""
    claims = Claims("04", profile)
    recipe, row = runs["recipe"], table[0]
    claims.check(
        f"every run of the recipe reaches {target:.0%} validation accuracy",
        row["reached"] == row["runs"],
        f"{row['reached']} of {row['runs']} runs",
        robust=EVERYWHERE,
    )
    tests = [(r.get("test", {}).get("accuracy"), r["config"]["val_samples"]) for r in recipe]
    if all(t is not None for t, _ in tests):
        low = [t for t, n in tests if n and t < target - margin(target, n)]
        claims.check(
            "the whole test set confirms it: every recipe run's accuracy on all 10,000 test images is within the "
            "validation subset's 95% sampling margin of the target, or above",
            not low,
            "full test set " + ", ".join(f"{t:.4f}" for t, _ in tests) + f" (validation on {tests[0][1] or 'all'} "
            f"images: margin {margin(target, tests[0][1] or 10_000):.3f})",
            robust=("cpu", "gpu"),
        )
    base = next((r for r in table if r["name"] == "baseline"), None)
    if base is not None:
        ratio, exact = ratio_to(base, row)
        claims.check(
            f"the recipe reaches {target:.0%} at least {SPEEDUP_BAR:g}x sooner than chapter 00's baseline, "
            "measured in the same invocation",
            # A baseline that stopped short gives a lower bound: it decides only if it clears the bar.
            None if ratio != ratio or (not exact and ratio < SPEEDUP_BAR) else ratio >= SPEEDUP_BAR,
            f"baseline {'' if exact else 'more than '}{statistics.fmean(base['at_least_s']):.1f} s vs recipe "
            f"{row['time_mean_s']:.1f} s: {'' if exact else 'at least '}{ratio:.2f}x",
            robust=("cpu", "gpu"),
        )
    baseline = runs.get("baseline")
    if baseline:
        claims.check(
            "the recipe reaches the target in fewer steps than the baseline, beyond the validation grid",
            _fewer(_crossed(recipe, target), _crossed(baseline, target)),
            f"{_steps(recipe):.0f} vs {_steps(baseline):.0f} steps, validated every {_grid(recipe)} and "
            f"{_grid(baseline)}",
            robust=EVERYWHERE,
        )
        sign, words = compare(sum((step_rates(r) for r in recipe), []), sum((step_rates(r) for r in baseline), []))
        claims.check(
            "the recipe trains more images per second than the baseline (its layout, width and ranks)",
            verdict(sign, ">"),
            f"images/s per timed step, recipe vs baseline: {words}",
            robust=("cpu", "gpu"),
        )
    loo_rows = {r["configuration"]: r for r in leave_one_out_rows(table)}
    single = loo_rows.get("without data parallel")
    if single:
        # Not the same maths to the bit: each rank's batch norm sees its 64 images, one process's all 128.
        claims.check(
            "data parallelism at the same global batch needs no more training images to reach the target than "
            "one process, beyond the spread of the seeds: it changes where the work runs, not what is learned",
            single["images_sign"] != "<" if single["through"] != "one run: not decided" else None,
            f"thousand images to target, one process vs DDP: {single['images_measured']}",
            robust=EVERYWHERE,
        )
    constant = runs.get("without schedule")
    if constant:
        claims.check(
            "the schedule buys progress per step: without it the recipe needs more steps to the target, beyond "
            "the validation grid",
            _fewer(_crossed(recipe, target), _crossed(constant, target)),
            f"{_steps(recipe):.0f} vs {_steps(constant):.0f} steps (without: "
            f"{sum(time_to_accuracy(r, target) is not None for r in constant)} of {len(constant)} reached)",
            robust=("cpu", "gpu"),
        )
    for loo in loo_rows.values():
        if loo["configuration"] == "baseline":
            continue
        claims.check(
            f"leaving out {loo['lever']} slows the recipe down beyond the spread of its runs (the lever pays)",
            verdict(loo["sign"], ">"),
            f"time to target without vs with: {loo['measured']}",
            robust=(),
        )
    return claims
