"""Chapter 01's figures: speed-up and efficiency, the step breakdown, the all-reduce fit, extrapolation."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

from fasttrain.chapters.ch01_alpha_beta import AlphaBetaFit
from fasttrain.chapters.ch01_cost_model import CostModel
from fasttrain.report.figures import save


def plot_speedup(tables: dict[str, list[dict]], save_as: str | None = None):
    """Measured speed-up and efficiency against the ideal line, one curve per scaling mode."""

    fig, (ax_s, ax_e) = plt.subplots(1, 2, figsize=(11, 4))
    most = max(row["world_size"] for rows in tables.values() for row in rows)
    ax_s.plot([1, most], [1, most], "k--", label="ideal")
    ax_e.axhline(1.0, color="k", ls="--", label="ideal")
    for label, rows in tables.items():
        n = [r["world_size"] for r in rows]
        ax_s.plot(n, [r["speedup"] for r in rows], "o-", label=label)
        ax_e.plot(n, [r["efficiency"] for r in rows], "o-", label=label)
    ax_s.set(xlabel="ranks", ylabel="speed-up (throughput / 1 rank)", title="speed-up")
    ax_e.set(xlabel="ranks", ylabel="scaling efficiency", title="efficiency", ylim=(0, 1.2))
    for ax in (ax_s, ax_e):
        ax.set_xticks(sorted({r["world_size"] for rows in tables.values() for r in rows}))
        ax.grid(alpha=0.3)
        ax.legend()
    return save(fig, save_as)


def plot_breakdown(breakdowns: dict[str, dict], save_as: str | None = None):
    """Per-step compute and idle (stacked, = the step), with the all-reduce's own time beside them."""

    labels = list(breakdowns)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4))
    x = range(len(labels))
    compute = [breakdowns[k]["compute_s"] * 1e3 for k in labels]
    idle = [breakdowns[k]["idle_s"] * 1e3 for k in labels]
    ax.bar([i - 0.2 for i in x], compute, 0.4, label="compute (rest of the step)")
    ax.bar([i - 0.2 for i in x], idle, 0.4, bottom=compute, label="idle: waiting for the all-reduce")
    ax.bar(
        [i + 0.2 for i in x],
        [breakdowns[k]["allreduce_s"] * 1e3 for k in labels],
        0.4,
        label="all-reduce, launch to completion (mostly hidden)",
        color="grey",
    )
    ax.set_xticks(list(x), labels, rotation=15)
    ax.set(ylabel="ms per step (median)", title="where a DDP step's time goes (rank 0)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return save(fig, save_as)


def plot_allreduce_fit(bench: dict, fit: AlphaBetaFit, grad_bytes: float | None = None, save_as: str | None = None):

    rows = bench["results"]
    n = [r["bytes"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.errorbar(
        n,
        [r["median_s"] * 1e3 for r in rows],
        yerr=[[(r["median_s"] - r["min_s"]) * 1e3 for r in rows], [(r["max_s"] - r["median_s"]) * 1e3 for r in rows]],
        fmt="o",
        capsize=3,
        label=f"measured ({bench['backend']}, {bench['world_size']} ranks; median, min-max)",
    )
    grid = [n[0] * (n[-1] / n[0]) ** (i / 50) for i in range(51)]
    ax.plot(
        grid,
        [fit.predict(g) * 1e3 for g in grid],
        "-",
        label=f"fit: {fit.alpha_s * 1e6:.0f} us + n / {fit.bandwidth_eff / 1e9:.2f} GB/s",
    )
    if grad_bytes:
        ax.axvline(grad_bytes, color="grey", ls=":", label="this model's gradients")
    ax.set(xscale="log", yscale="log", title="all-reduce time vs message size")
    ax.set(xlabel="message size (bytes)", ylabel="all-reduce time (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, save_as)


def plot_extrapolation(
    models: dict[str, CostModel],
    world_sizes: Sequence[int],
    measured: Sequence[tuple[int, float]] = (),
    published: Sequence[tuple[int, float, str]] = (),
    title: str = "",
    save_as: str | None = None,
):
    """Predicted efficiency over world size per interconnect, with measured and published points."""

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, model in models.items():
        ax.plot(world_sizes, [model.efficiency(n) for n in world_sizes], "-", label=label)
    if measured:
        ax.plot(*zip(*measured), "ks", label="measured here")
    for n, eff, label in published:
        ax.plot(n, eff, "r*", ms=11)
        ax.annotate(label, (n, eff), textcoords="offset points", xytext=(5, 5), fontsize=8, color="r")
    ax.set(
        xscale="log",
        xlabel="devices",
        ylabel="predicted scaling efficiency (weak)",
        ylim=(0, 1.05),
        title=title or "cost model: efficiency vs devices",
    )
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, save_as)
