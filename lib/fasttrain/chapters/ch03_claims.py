"""Chapter 03's claims, each decided on this run's steps-to-target sweep and noise-scale estimate.

Every threshold is here, named; every sentence a claim prints is built from the numbers."""

from __future__ import annotations

import math

from fasttrain.chapters.ch03_knee import above_knee, below_knee
from fasttrain.report.claims import Claims

CHANCE = 0.1
LEARNS = 3 * CHANCE  # a job that learned ends at three times chance or more
NEAR_PERFECT = 1.6  # below the knee: at least this many times fewer steps per doubling (2.0 is perfect)
WELL_BELOW = 4  # "below the knee" is decided where the smallest batch is this far below B_crit (fit: 1.67x)
FLAT = 1.4  # above the knee: fewer than this many times fewer steps per doubling
NO_SCALING = 1.5  # without the linear scaling rule: at least this many times the steps (or a miss)
LARS_WITHIN = 1.5  # LARS's steps within this factor of scaled SGD's at the same batch
KNEE_FACTOR = 10  # McCandlish et al.: B_crit ~ B_simple "to within an order of magnitude"


def _by(rows: list[dict], recipe: str) -> dict[int, dict]:
    return {r["batch"]: r for r in rows if r["recipe"] == recipe}


def claim_learns(claims: Claims, rows: list[dict], target: float) -> None:
    worst = min(rows, key=lambda r: r["best_accuracy"])
    missed = [f"{r['recipe']} B={r['batch']}" for r in rows if r["steps"] is None]
    claims.check(
        f"every job of the sweep learns (best validation accuracy ≥ {LEARNS:.0%}, chance {CHANCE:.0%})",
        holds=worst["best_accuracy"] >= LEARNS,
        measured=f"lowest best accuracy {worst['best_accuracy']:.1%} ({worst['recipe']}, B={worst['batch']}); "
        f"{len(rows) - len(missed)} of {len(rows)} jobs reached {target:.0%}"
        + (f", missed: {', '.join(missed)}" if missed else ""),
        robust=("smoke", "cpu", "gpu"),
    )


def claim_steps_fall(claims: Claims, rows: list[dict]) -> None:
    scaled = sorted(_by(rows, "scaled").values(), key=lambda r: r["batch"])
    small, big = scaled[0], scaled[-1]
    ok = small["steps"] is not None and big["steps"] is not None
    claims.check(
        f"with the linear scaling rule, the largest batch ({big['batch']}) reaches the target in fewer steps "
        f"than the smallest ({small['batch']}), beyond the validation grid",
        holds=ok and big["steps"] < small["steps_before"],
        measured=(
            f"{big['steps_before']}–{big['steps']} vs {small['steps_before']}–{small['steps']} steps"
            if ok
            else "a job missed the target"
        ),
        robust=("smoke", "cpu", "gpu"),
    )


def claim_below_knee(claims: Claims, rows: list[dict], knee: dict) -> None:
    text = (
        f"below the knee, doubling the batch nearly halves the steps to the target (≥ {NEAR_PERFECT}x fewer "
        "per doubling)"
    )
    smallest = min(r["batch"] for r in rows if r["recipe"] == "scaled")
    below = knee["b_crit"] / smallest
    span = below_knee(rows, knee["b_crit"]) if math.isfinite(below) else None
    if span is None or below < WELL_BELOW:  # the fit itself predicts less than NEAR_PERFECT there
        predicted = (1 + below) / (1 + below / 2) if math.isfinite(below) else math.nan
        claims.check(
            text,
            None,
            f"fitted knee B_crit ≈ {knee['b_crit']:.0f}: the smallest batch ({smallest}) is only {below:.1f}x "
            "below it, "
            f"where S_min (1 + B_crit / B) itself predicts {predicted:.2f}x per doubling; a sweep reaching further "
            "below the knee decides this",
            robust=("cpu", "gpu"),
        )
        return
    claims.check(
        text,
        holds=span["ratio"] >= NEAR_PERFECT,
        measured=f"B {span['small']} → {span['big']} (knee B_crit ≈ {knee['b_crit']:.0f}): {span['ratio']:.2f}x fewer "
        f"steps per doubling (grid allows {span['ratio_low']:.2f}–{span['ratio_high']:.2f})",
        robust=("cpu", "gpu"),
    )


def claim_above_knee(claims: Claims, rows: list[dict], knee: dict) -> None:
    span = above_knee(rows, knee["b_crit"]) if math.isfinite(knee["b_crit"]) else None
    text = (
        f"above the knee, doubling the batch saves much less than half the steps (< {FLAT}x fewer per "
        "doubling, even at the validation grid's most favourable reading)"
    )
    if span is None:
        claims.check(
            text,
            None,
            f"fewer than two batches of the sweep at or above the knee B_crit ≈ {knee['b_crit']:.0f}",
            robust=("smoke", "cpu", "gpu"),
        )
        return
    claims.check(
        text,
        holds=span["ratio_high"] < FLAT,
        measured=f"B {span['small']} → {span['big']} (knee B_crit ≈ {knee['b_crit']:.0f}): {span['ratio']:.2f}x fewer "
        f"steps per doubling (grid allows {span['ratio_low']:.2f}–{span['ratio_high']:.2f})",
        robust=("smoke", "cpu", "gpu"),
    )


def claim_no_scaling(claims: Claims, rows: list[dict]) -> None:
    fixed, scaled = _by(rows, "fixed"), _by(rows, "scaled")
    parts, verdicts = [], []
    for b, f in sorted(fixed.items()):
        s = scaled[b]
        if f["steps"] is None:
            ratio = f["steps_run"] / s["steps"]
            parts.append(f"B={b}: fixed lr missed in {f['steps_run']} steps (≥ {ratio:.2f}x scaled's {s['steps']})")
        else:
            ratio = f["steps_before"] / s["steps"]  # the least the grid allows
            parts.append(f"B={b}: fixed lr {f['steps_before']}–{f['steps']} vs scaled {s['steps_before']}–{s['steps']}")
        verdicts.append(ratio >= NO_SCALING)
    claims.check(
        f"without the linear scaling rule, a large batch needs ≥ {NO_SCALING}x the steps to the target (or misses it)",
        holds=bool(verdicts) and all(verdicts),
        measured="; ".join(parts) or "no fixed-lr job in this plan",
        robust=("gpu",),  # where the scaled rate is far above the base one (Goyal et al.'s regime)
    )


def claim_lars(claims: Claims, rows: list[dict]) -> None:
    lars, scaled = _by(rows, "lars"), _by(rows, "scaled")
    parts, verdicts = [], []
    for b, r in sorted(lars.items()):
        s = scaled[b]
        if r["steps"] is None or s["steps"] is None:
            parts.append(f"B={b}: LARS {'missed' if r['steps'] is None else r['steps']}, SGD {s['steps']}")
            verdicts.append(False)
            continue
        ratio = midpoint_ratio(r, s)
        word = "fewer" if ratio < 1 else "more"
        parts.append(
            f"B={b}: LARS {r['steps_before']}–{r['steps']} vs SGD {s['steps_before']}–{s['steps']} "
            f"({ratio:.2f}x, {word})"
        )
        verdicts.append(1 / LARS_WITHIN <= ratio <= LARS_WITHIN)
    claims.check(
        f"LARS with the scaled rate and warm-up reaches the target at the largest batches, in steps within "
        f"{LARS_WITHIN}x of scaled SGD's",
        holds=all(verdicts) if verdicts else None,
        measured="; ".join(parts) or "no LARS job in this profile's plan (a step at its batches costs too much here)",
        robust=("cpu", "gpu"),
    )


def midpoint_ratio(a: dict, b: dict) -> float:
    return (a["steps"] + a["steps_before"]) / (b["steps"] + b["steps_before"])


def claim_knee_vs_noise(claims: Claims, knee: dict, noise: dict) -> None:
    b_crit, b_simple = knee["b_crit"], noise["b_simple"]
    width = noise["high"] / noise["low"] if noise["low"] > 0 else math.inf
    measured = (
        f"knee B_crit ≈ {b_crit:.0f} (range {knee['low']:.0f}–{knee['high']:.0f}); "
        f"B_simple ≈ {b_simple:.0f} (95% {noise['low']:.0f}–{noise['high']:.0f}, over {noise['steps']} steps)"
    )
    holds: bool | None = None
    if not (math.isfinite(b_crit) and b_crit > 0 and math.isfinite(width)):
        measured += ": no finite knee or noise interval to compare"
    elif width > KNEE_FACTOR:
        measured += f": the noise interval spans {width:.0f}x, wider than the factor tested"
    else:
        holds = b_simple / KNEE_FACTOR <= b_crit <= b_simple * KNEE_FACTOR
        measured += f": B_simple / B_crit = {b_simple / b_crit:.1f}"
    claims.check(
        f"the measured knee is within a factor of {KNEE_FACTOR} of the gradient noise scale B_simple",
        holds=holds,
        measured=measured,
        robust=("smoke", "cpu", "gpu"),
    )


def state_claims(
    claims: Claims, rows: list[dict], knee: dict, doublings: list[dict], noise: dict, target: float
) -> Claims:
    """Every claim of the chapter, in the order the chapter makes them."""
    claim_learns(claims, rows, target)
    claim_steps_fall(claims, rows)
    if doublings:
        claim_below_knee(claims, rows, knee)
        claim_above_knee(claims, rows, knee)
    claim_no_scaling(claims, rows)
    claim_lars(claims, rows)
    claim_knee_vs_noise(claims, knee, noise)
    return claims
