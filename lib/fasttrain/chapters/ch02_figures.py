"""Chapter 02's figures: gradient exponents against fp16's range, loss scaling, parity, rates."""

from __future__ import annotations

import statistics

import matplotlib.pyplot as plt
import torch

from fasttrain.chapters.ch02_formats import format_limits
from fasttrain.report.figures import save


def plot_exponents(histograms: dict[str, tuple[list[int], list[int]]], save_as: str | None = None):
    """Histogram of binary exponents with fp16's limits: below 2^-24 a value flushes to zero."""

    fp16 = format_limits(5, 10)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for name, (exps, counts) in histograms.items():
        total = sum(counts)
        ax.step(exps, [c / total for c in counts], where="mid", label=name)
    # Bins are integer exponents e (2^e <= |g| < 2^(e+1)), drawn at x = e.
    ax.axvspan(-150, -25.5, color="red", alpha=0.08, label="fp16: rounds to zero (|g| < 2^-25)")
    ax.axvspan(-25.5, -14.5, color="orange", alpha=0.08, label="fp16: subnormal, fewer bits (2^-25 .. 2^-14)")
    ax.axvline(15.5, color="red", ls="--", lw=1, label=f"fp16 max {fp16['max']:,.0f}: 2^16 and above overflow")
    lo = min(min(e) for e, _ in histograms.values())
    ax.set(
        xlim=(min(lo, -30) - 1, 18),
        xlabel="binary exponent e (2^e <= |g| < 2^(e+1))",
        ylabel="fraction of nonzero values",
        title="where real gradients fall against fp16's range",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, save_as)


def plot_scale_sweep(sweeps: dict[str, list[dict]], save_as: str | None = None):

    fig, ax = plt.subplots(figsize=(8, 3.8))
    for name, rows in sweeps.items():
        x = [torch.tensor(r["scale"]).log2().item() for r in rows]
        (line,) = ax.plot(x, [100 * r["underflow"] for r in rows], "o-", label=f"{name}: flushed to zero")
        ax.plot(x, [100 * r["overflow"] for r in rows], "x--", color=line.get_color(), label=f"{name}: overflow to inf")
    ax.set(
        xlabel="static loss scale (log2)", ylabel="% of nonzero gradient values", title="static loss scaling in fp16"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, save_as)


def plot_loss_scale(records: list[dict], save_as: str | None = None):
    """The dynamic loss scale after every step of 16-mixed runs; skipped steps marked."""

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for r in records:
        ls = r["loss_scale"]
        steps, values = [0] + ls["steps"], [ls["initial"]] + ls["values"]
        (line,) = ax.step(steps, values, where="post", label=f"{r.get('name')} ({ls['skipped_steps']} skipped)")
        skipped = [s for s, k in zip(ls["steps"], ls["skipped"]) if k]
        ax.plot(skipped, [v for v, k in zip(ls["values"], ls["skipped"]) if k], "x", color=line.get_color(), ms=9)
    ax.set_yscale("log", base=2)
    ax.set(
        xlabel="optimizer step", ylabel="loss scale", title="GradScaler: x = overflow found, step skipped, scale halved"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, save_as)


def plot_parity(runs: dict[str, list[dict]], save_as: str | None = None):
    """Training loss per step (mean over seeds, band = min..max) and final validation accuracy per precision."""

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (precision, records) in enumerate(runs.items()):
        losses = [r["loss"]["values"] for r in records]
        n = min(len(v) for v in losses)
        steps = list(range(1, n + 1))
        per_step = list(zip(*[v[:n] for v in losses]))
        (line,) = ax_loss.plot(
            steps, [statistics.fmean(s) for s in per_step], label=f"{precision} ({len(records)} seeds)"
        )
        ax_loss.fill_between(
            steps, [min(s) for s in per_step], [max(s) for s in per_step], color=line.get_color(), alpha=0.2
        )
        accs = [r["final_val_accuracy"] for r in records]
        ax_acc.plot([i] * len(accs), accs, "o", color=line.get_color())
        ax_acc.errorbar(
            [i],
            [statistics.fmean(accs)],
            yerr=[[statistics.fmean(accs) - min(accs)], [max(accs) - statistics.fmean(accs)]],
            fmt="_",
            color=line.get_color(),
            capsize=8,
            ms=20,
        )
    ax_loss.set(xlabel="optimizer step", ylabel="training loss", title="loss: mean over seeds, band = min..max")
    ax_acc.set(
        xticks=range(len(runs)),
        xticklabels=list(runs),
        ylabel="final validation accuracy",
        title="accuracy: each seed, and the mean",
    )
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_loss.legend()
    return save(fig, save_as)


def plot_rates(rows: list[dict], key: str, title: str, save_as: str | None = None):
    """Bars of FLOP/s (or images/s) by label."""

    fig, ax = plt.subplots(figsize=(8, 3.5))
    labels = [r["label"] for r in rows]
    ax.bar(labels, [r[key] for r in rows], color="tab:blue")
    ax.set(title=title, ylabel=key.replace("_", " "))
    ax.tick_params(axis="x", rotation=20)
    ax.grid(alpha=0.3, axis="y")
    return save(fig, save_as)
