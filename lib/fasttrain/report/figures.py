"""Figures: `save` (every chapter figure is also written under build/figures/), and the generic figures
of one or more result records (training curves, step times)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt

from fasttrain.paths import figures_dir


def label(record: dict) -> str:
    c = record["config"]
    return record.get("name") or f"{record['environment']['world_size']} rank(s), {c['precision']}"


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing mean over `window` steps, so noisy per-step losses show a trend."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def training_curves(records: Iterable[dict], title: str = "", save_as: str | None = None):
    """Loss per step (raw and smoothed) and validation accuracy over training steps."""
    records = list(records)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for r in records:
        steps, losses = r["loss"]["steps"], r["loss"]["values"]
        (line,) = ax_loss.plot(steps, losses, alpha=0.25)
        ax_loss.plot(steps, smooth(losses, max(1, len(losses) // 20)), color=line.get_color(), label=label(r))
        val = r["validation"]
        ax_acc.plot(
            [v["step"] for v in val], [v["accuracy"] for v in val], "o-", color=line.get_color(), label=label(r)
        )
    ax_loss.set(xlabel="optimizer step", ylabel="training loss (global batch)", title="loss")
    ax_acc.set(xlabel="optimizer step", ylabel="validation accuracy", title="accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save(fig, save_as)


def step_time_histogram(record: dict, save_as: str | None = None):
    """Every step's time, warm-up steps marked: why we report the median and the spread."""
    times = [t * 1e3 for t in record["timing"]["step_times_s"]]
    warm = record["timing"]["timing_warmup_steps"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(range(1, len(times) + 1), times, ".-", label="step time")
    ax.axvspan(0.5, warm + 0.5, color="grey", alpha=0.2, label=f"warm-up ({warm} steps, excluded)")
    ax.axhline(record["timing"]["step_time_s"]["median"] * 1e3, color="k", ls="--", label="median")
    ax.set(xlabel="optimizer step", ylabel="ms", title=f"step times: {label(record)}")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, save_as)


def save(fig, name: str | None):
    """Lay the figure out and, given a file name, write it to build/figures/<name>; returns the figure."""
    fig.tight_layout()
    if name:
        fig.savefig(Path(figures_dir()) / name, dpi=110, bbox_inches="tight")
    return fig
