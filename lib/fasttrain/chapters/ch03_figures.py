"""Chapter 03's figures: the sweep, the noise scale over training, time to accuracy."""

from __future__ import annotations

import matplotlib.pyplot as plt

from fasttrain.chapters.ch03_analysis import noise_scale_curve
from fasttrain.chapters.ch03_plans import RECIPE_LABELS, RECIPES
from fasttrain.report.figures import save


def sweep_figure(rows: list[dict], save_as: str | None = None):
    """Time per epoch and final accuracy against batch size, one line per recipe."""

    fig, (ax_t, ax_a) = plt.subplots(1, 2, figsize=(11, 4))
    for recipe in RECIPES:
        mine = sorted((r for r in rows if r["recipe"] == recipe), key=lambda r: r["batch"])
        if not mine:
            continue
        style = "s" if len(mine) == 1 else "o-"
        b = [r["batch"] for r in mine]
        ax_t.plot(b, [r["time_per_epoch_s"] for r in mine], style, label=RECIPE_LABELS[recipe])
        ax_a.plot(b, [r["accuracy"] for r in mine], style, label=RECIPE_LABELS[recipe])
    ax_t.set(xscale="log", yscale="log", title="time per epoch")
    ax_t.set(xlabel="global batch size", ylabel="seconds per epoch (median step)")
    ax_a.set(
        xscale="log",
        xlabel="global batch size",
        ylabel="validation accuracy",
        ylim=(0, 1),
        title="accuracy after the same number of epochs",
    )
    for ax in (ax_t, ax_a):
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    return save(fig, save_as)


def noise_scale_figure(records: dict[int, dict], windows: int = 4, save_as: str | None = None):
    """B_simple over training for each batch size, beside the batch sizes themselves."""

    fig, ax = plt.subplots(figsize=(7, 4))
    for batch, record in sorted(records.items()):
        where, values = noise_scale_curve(record, windows)
        if values:
            ax.plot(where, values, "o-", label=f"measured at B={batch}")
    for batch in sorted(records):
        ax.axhline(batch, color="grey", lw=0.6, ls=":")
    ax.set(
        xlabel="fraction of training",
        ylabel="B_simple = tr(Σ) / |G|²",
        yscale="symlog",
        title="gradient noise scale (dotted: the sweep's batch sizes)",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, save_as)


def time_to_accuracy_figure(rows: list[dict], target: float, save_as: str | None = None):
    """Left: training time to the target against batch size. Right: accuracy against training time."""

    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(11, 4))
    for recipe in RECIPES:
        mine = sorted((r for r in rows if r["recipe"] == recipe), key=lambda r: r["batch"])
        if not mine:
            continue
        reached = [r for r in mine if r.get("time_to_target_s") is not None]
        (line,) = ax_t.plot(
            [r["batch"] for r in reached],
            [r["time_to_target_s"] for r in reached],
            "o-" if len(reached) > 1 else "s",
            label=RECIPE_LABELS[recipe],
        )
        missed = [r["batch"] for r in mine if r.get("time_to_target_s") is None]
        if missed:
            ax_t.plot(missed, [0] * len(missed), "x", color=line.get_color(), ms=9)
        ax_s.plot(
            [r["train_time_s"] for r in mine],
            [r["accuracy"] for r in mine],
            "o",
            color=line.get_color(),
            label=RECIPE_LABELS[recipe],
        )
        for r in mine:
            ax_s.annotate(
                f"{r['batch']}",
                (r["train_time_s"], r["accuracy"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
    ax_t.set(
        xscale="log",
        xlabel="global batch size",
        ylabel="training seconds to target",
        title=f"time to {target:.0%} validation accuracy (x at 0: never reached)",
    )
    ax_s.axhline(target, color="grey", ls="--", lw=0.8)
    ax_s.set(
        xlabel="training seconds (whole run)",
        ylabel="final validation accuracy",
        ylim=(0, 1),
        title="the time/accuracy trade-off (labels: batch size)",
    )
    for ax in (ax_t, ax_s):
        ax.grid(alpha=0.3)
        ax.legend()
    return save(fig, save_as)
