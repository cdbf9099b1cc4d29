"""Chapter 03's reading of the steps-to-target sweep: steps to the target per job, the knee of the
steps-vs-batch curve (McCandlish et al.'s S = S_min (1 + B_crit / B), fitted), and the gradient noise
scale B_simple over many steps with a bootstrap interval."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

from fasttrain.chapters.ch03_target import RECIPE_LABELS
from fasttrain.report.tables import markdown_table


def steps_to_target(record: dict) -> tuple[int | None, int]:
    """(the step of the first validation at or above the target or None, the validation step before it).

    The job crossed the target somewhere in (before, step]: the validation grid's resolution."""
    target, before = record["target_accuracy"], 0
    for v in record["validation"]:
        if v["accuracy"] >= target:
            return v["step"], before
        before = v["step"]
    return None, before


def target_row(record: dict) -> dict[str, Any]:
    """One job of the sweep as a row: recipe, batch, peak rate, steps and seconds to the target."""
    c = record["config"]
    steps, before = steps_to_target(record)
    noise = record.get("gradient_noise")
    lr = c["lr"] * (c["global_batch_size"] / c["base_batch_size"] if c["base_batch_size"] else 1.0)
    return dict(
        recipe=c["extra"]["recipe"],
        batch=c["global_batch_size"],
        per_rank=c["global_batch_size"] // (c["devices"] * c["num_nodes"] * c["grad_accumulation"]),
        lr=lr,
        warmup_steps=c["warmup_steps"],
        steps=steps,
        steps_before=before,
        steps_run=record["steps"],
        max_steps=c["max_steps"],
        val_every=c["val_every_steps"],
        time_s=record["time_to_target_s"],
        step_time_s=record["timing"]["step_time_s"]["median"],
        best_accuracy=max(v["accuracy"] for v in record["validation"]),
        b_simple=noise["b_simple"] if noise else None,
    )


def target_table(rows: list[dict], target: float) -> str:
    head = [
        "recipe",
        "batch",
        "per rank",
        "peak lr",
        "warm-up",
        "steps to target",
        "s to target",
        "ms / step",
        "best acc.",
    ]
    cells = []
    for r in rows:
        reached = r["steps"] is not None
        cells.append(
            [
                RECIPE_LABELS[r["recipe"]],
                f"{r['batch']:,}",
                str(r["per_rank"]),
                f"{r['lr']:.3g}",
                str(r["warmup_steps"]),
                f"{r['steps_before']}–{r['steps']}" if reached else f"not in {r['steps_run']}",
                f"{r['time_s']:.1f}" if reached else "-",
                f"{1e3 * r['step_time_s']:.0f}",
                f"{r['best_accuracy']:.3f}",
            ]
        )
    return f"target: {target:.0%} validation accuracy\n\n" + markdown_table(head, cells)


def midpoint(row: dict) -> float:
    """The steps to the target as the middle of the validation interval it crossed in."""
    return (row["steps"] + row["steps_before"]) / 2


def fit_critical_batch(batches: list[int], steps: list[float]) -> dict[str, float]:
    """Least squares of S = S_min + S_min B_crit / B (linear in 1/B), weighted by 1/S^2 (relative errors).

    Returns s_min and b_crit (the knee: where a batch takes twice S_min steps and twice E_min images);
    b_crit is inf where the data show no floor (S_min <= 0) and 0 where the steps do not fall at all."""
    if len(batches) < 2:
        raise ValueError("fitting the knee needs two or more batch sizes")
    w = [1 / s**2 for s in steps]
    x = [1 / b for b in batches]
    sw = sum(w)
    mx, my = sum(wi * xi for wi, xi in zip(w, x)) / sw, sum(wi * yi for wi, yi in zip(w, steps)) / sw
    sxx = sum(wi * (xi - mx) ** 2 for wi, xi in zip(w, x))
    beta = sum(wi * (xi - mx) * (yi - my) for wi, xi, yi in zip(w, x, steps)) / sxx
    alpha = my - beta * mx
    if alpha <= 0:
        return dict(s_min=alpha, b_crit=math.inf)
    return dict(s_min=alpha, b_crit=max(0.0, beta / alpha))


def knee(rows: list[dict]) -> dict[str, Any]:
    """The fitted knee of the scaled recipe's steps-vs-batch curve, with its range over the validation
    grid (fits to the interval's two ends) and leaving out one batch at a time."""
    scaled = sorted((r for r in rows if r["recipe"] == "scaled" and r["steps"] is not None), key=lambda r: r["batch"])
    batches = [r["batch"] for r in scaled]
    if len(batches) < 3:
        return dict(batches=batches, b_crit=math.nan, s_min=math.nan, low=math.nan, high=math.nan)
    mids = [midpoint(r) for r in scaled]
    fit = fit_critical_batch(batches, mids)
    others = [fit_critical_batch(batches, [r["steps"] for r in scaled])["b_crit"]]
    others.append(fit_critical_batch(batches, [max(1, r["steps_before"]) for r in scaled])["b_crit"])
    for i in range(len(batches)):
        keep = [j for j in range(len(batches)) if j != i]
        others.append(fit_critical_batch([batches[j] for j in keep], [mids[j] for j in keep])["b_crit"])
    return dict(batches=batches, steps=mids, **fit, low=min(others), high=max(others))


def span_ratio(a: dict, b: dict) -> dict:
    """From row a to row b (a bigger batch): how many times fewer steps per doubling of the batch, at the
    validation intervals' middles and at their most and least favourable ends."""
    per = math.log2(b["batch"] / a["batch"])
    return dict(
        small=a["batch"],
        big=b["batch"],
        ratio=(midpoint(a) / midpoint(b)) ** (1 / per),
        ratio_high=(a["steps"] / max(1, b["steps_before"])) ** (1 / per),
        ratio_low=(max(1, a["steps_before"]) / b["steps"]) ** (1 / per),
    )


def above_knee(rows: list[dict], b_crit: float) -> dict | None:
    """span_ratio from the smallest batch at or above the knee to the largest of the scaled sweep."""
    scaled = sorted((r for r in rows if r["recipe"] == "scaled" and r["steps"] is not None), key=lambda r: r["batch"])
    above = [r for r in scaled if r["batch"] >= b_crit]
    if len(above) < 2:
        return None
    return span_ratio(above[0], above[-1])


def below_knee(rows: list[dict], b_crit: float) -> dict | None:
    """span_ratio from the smallest batch of the scaled sweep to the largest at or below the knee."""
    scaled = sorted((r for r in rows if r["recipe"] == "scaled" and r["steps"] is not None), key=lambda r: r["batch"])
    below = [r for r in scaled if r["batch"] <= b_crit]
    if len(below) < 2:
        return None
    return span_ratio(below[0], below[-1])


def doublings(rows: list[dict]) -> list[dict]:
    """For each step up the scaled sweep: how many times fewer steps, per doubling of the batch.

    2.0 is perfect scaling (twice the batch, half the steps); 1.0 is none."""
    scaled = sorted((r for r in rows if r["recipe"] == "scaled" and r["steps"] is not None), key=lambda r: r["batch"])
    return [span_ratio(a, b) for a, b in zip(scaled, scaled[1:])]


def _ratio_of_means(blocks: list[tuple[float, float]]) -> float:
    g2 = statistics.fmean(b[0] for b in blocks)
    s = statistics.fmean(b[1] for b in blocks)
    return s / g2 if g2 > 0 else math.inf


def noise_blocks(record: dict, span: int) -> list[tuple[float, float]]:
    """The job's per-step |G|^2 and tr(Sigma) estimates, averaged over consecutive spans of `span` steps."""
    noise = record.get("gradient_noise")
    if not noise:
        return []
    g2, s = noise["true_grad_sq"], noise["trace_sigma"]
    return [
        (statistics.fmean(g2[i : i + span]), statistics.fmean(s[i : i + span]))
        for i in range(0, len(g2) - span + 1, span)
    ]


def noise_scale_estimate(records: list[dict], span: int = 5, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """B_simple = mean tr(Sigma) / mean |G|^2 over every span of every job given, with a 95% bootstrap
    interval from resampling the spans (a block bootstrap: neighbouring steps are not independent).

    Ratio of means, not mean of ratios: one span's |G|^2 can come out near zero or negative."""
    blocks = [b for r in records for b in noise_blocks(r, span)]
    if len(blocks) < 2:
        return dict(b_simple=math.nan, low=math.nan, high=math.nan, spans=len(blocks), steps=0)
    rng = random.Random(seed)
    draws = sorted(_ratio_of_means(rng.choices(blocks, k=len(blocks))) for _ in range(resamples))
    return dict(
        b_simple=_ratio_of_means(blocks),
        low=draws[int(0.025 * resamples)],
        high=draws[min(resamples - 1, int(0.975 * resamples))],
        spans=len(blocks),
        steps=len(blocks) * span,
    )


def noise_table(estimates: dict[str, dict]) -> str:
    """One row per estimate: B_simple and its 95% interval, and how many steps it averaged."""
    rows = [
        (
            name,
            f"{e['b_simple']:,.0f}",
            f"{e['low']:,.0f} – {e['high']:,.0f}",
            f"{e['high'] / e['low']:.1f}x",
            str(e["steps"]),
        )
        for name, e in estimates.items()
    ]
    return markdown_table(["measured in", "B_simple", "95% interval", "high / low", "steps"], rows)
