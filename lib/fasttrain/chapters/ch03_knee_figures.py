"""Chapter 03's figure of the steps-to-target sweep: steps and seconds to the target against batch size."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.ticker import ScalarFormatter

from fasttrain.chapters.ch03_knee import midpoint
from fasttrain.chapters.ch03_target import RECIPE_LABELS, RECIPES
from fasttrain.report.figures import save

_MARKERS = {"scaled": "o-", "fixed": "s", "lars": "^"}


def _recipe_points(ax, rows: list[dict], value) -> None:
    for recipe in RECIPES:
        mine = sorted((r for r in rows if r["recipe"] == recipe), key=lambda r: r["batch"])
        reached = [r for r in mine if r["steps"] is not None]
        if not mine:
            continue
        style = _MARKERS[recipe] if len(reached) < 2 or recipe != "scaled" else "o-"
        (line,) = ax.plot(
            [r["batch"] for r in reached], [value(r) for r in reached], style, label=RECIPE_LABELS[recipe]
        )
        missed = [r for r in mine if r["steps"] is None]
        if missed and value is midpoint:  # a job that missed: its whole budget, as an arrow up
            ax.plot(
                [r["batch"] for r in missed],
                [r["steps_run"] for r in missed],
                "^",
                mfc="none",
                ms=11,
                color=line.get_color(),
                label=f"{RECIPE_LABELS[recipe]}: missed in its budget",
            )


def knee_figure(rows: list[dict], knee: dict, noise: dict, save_as: str | None = None):
    """Left: steps to the target (log-log) with the perfect-scaling line, the fitted curve, the knee and
    the noise scale's interval. Right: training seconds to the target."""
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(12, 4.5))
    scaled = sorted((r for r in rows if r["recipe"] == "scaled" and r["steps"] is not None), key=lambda r: r["batch"])
    for r in rows:
        if r["steps"] is not None:  # the validation interval the job crossed the target in
            ax_s.vlines(r["batch"], max(1, r["steps_before"]), r["steps"], color="grey", lw=3, alpha=0.35)
    _recipe_points(ax_s, rows, midpoint)
    if scaled:
        b0, s0 = scaled[0]["batch"], midpoint(scaled[0])
        grid = [b0 * 2 ** (i / 8) for i in range(int(8 * math.log2(scaled[-1]["batch"] / b0)) + 1)]
        ax_s.plot(grid, [s0 * b0 / b for b in grid], "k--", lw=0.8, label="perfect scaling (steps ∝ 1/B)")
        if math.isfinite(knee.get("b_crit", math.nan)) and knee["s_min"] > 0:
            ax_s.plot(
                grid,
                [knee["s_min"] * (1 + knee["b_crit"] / b) for b in grid],
                ":",
                color="C0",
                label=f"fit S_min (1 + B_crit/B), B_crit ≈ {knee['b_crit']:.0f}",
            )
            ax_s.axvline(knee["b_crit"], color="C0", lw=0.8)
    if math.isfinite(noise.get("low", math.nan)):
        ax_s.axvspan(
            noise["low"],
            min(noise["high"], 4 * max(r["batch"] for r in rows)),  # an open-ended interval stays on the plot
            color="C3",
            alpha=0.12,
            label=f"B_simple 95% interval ({noise['low']:.0f}–{noise['high']:.0f})",
        )
    ax_s.set(
        xscale="log",
        yscale="log",
        xlabel="global batch size",
        ylabel="optimizer steps to target",
        title="steps to the target (bars: validation interval)",
    )
    _recipe_points(ax_t, rows, lambda r: r["time_s"])
    ax_t.set(
        xscale="log",
        xlabel="global batch size",
        ylabel="training seconds to target",
        title="time to the target on this machine",
    )
    ax_t.set_ylim(bottom=0)
    for ax in (ax_s, ax_t):
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return save(fig, save_as)
