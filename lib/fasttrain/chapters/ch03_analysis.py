"""Chapter 03's reading of result records: the sweep's rows, time to accuracy, where bigger batches stop
paying, and the gradient noise scale over training."""

from __future__ import annotations

from typing import Any

from fasttrain.chapters.ch03_plans import FASHION_MNIST_TRAIN_SIZE, RECIPE_LABELS
from fasttrain.rank.measure import noise_scale_over
from fasttrain.report.tables import markdown_table


def summary(record: dict) -> dict[str, Any]:
    """One row of the sweep's table, computed from a record."""
    c = record["config"]
    epochs = c["extra"].get("epochs") or c["max_steps"] * c["global_batch_size"] / (
        c["train_samples"] or FASHION_MNIST_TRAIN_SIZE
    )
    steps_per_epoch = record["steps"] / epochs
    noise = record.get("gradient_noise")
    return dict(
        recipe=c["extra"].get("recipe", "?"),
        batch=c["global_batch_size"],
        steps=record["steps"],
        lr=c["lr"] * (c["global_batch_size"] / c["base_batch_size"] if c["base_batch_size"] else 1.0),
        warmup_steps=c["warmup_steps"],
        optimizer=c["optimizer"],
        step_time_s=record["timing"]["step_time_s"]["median"],
        # Steady-state time per epoch: median step time x steps per epoch (first step excluded).
        time_per_epoch_s=record["timing"]["step_time_s"]["median"] * steps_per_epoch,
        train_time_s=record["timing"]["train_time_s"],
        accuracy=record["final_val_accuracy"],
        b_simple=noise["b_simple"] if noise else None,
    )


def time_to_accuracy(record: dict, target: float) -> float | None:
    """Training seconds (validation excluded) until validation first reached `target`, else None."""
    for v in record["validation"]:
        if v["accuracy"] >= target:
            return v["train_time_s"]
    return None


def useful_batch_limit(accuracy_by_batch: dict[int, float], tolerance: float) -> int | None:
    """The smallest batch whose accuracy falls more than `tolerance` below the best of the sweep
    (None: no batch does). Where this sits is where bigger batches stop paying for themselves."""
    if not accuracy_by_batch:
        raise ValueError("no accuracies given")
    best = max(accuracy_by_batch.values())
    for batch in sorted(accuracy_by_batch):
        if accuracy_by_batch[batch] < best - tolerance:
            return batch
    return None


def noise_scale_curve(record: dict, windows: int = 4) -> tuple[list[float], list[float]]:
    """B_simple over training: S and |G|^2 averaged over `windows` consecutive spans of steps.

    Returns (fraction of training at each span's middle, B_simple). Single steps are too noisy to
    divide, which is why the estimator averages numerator and denominator before dividing.
    """
    noise = record.get("gradient_noise")
    if not noise:
        return [], []
    n = len(noise["true_grad_sq"])
    windows = max(1, min(windows, n))
    bounds = [round(i * n / windows) for i in range(windows + 1)]
    where = [(a + b) / 2 / n for a, b in zip(bounds, bounds[1:])]
    return where, [noise_scale_over(noise, a, b) for a, b in zip(bounds, bounds[1:])]


def sweep_table(rows: list[dict], target: float | None = None) -> str:
    """The sweep's rows (`summary`) as a Markdown table; with a target, the seconds each took to reach it."""
    head = ["recipe", "batch", "steps", "peak lr", "warm-up steps", "s / epoch", "accuracy", "B_simple"]
    if target is not None:
        head.append(f"s to {target:.0%}")
    cells = []
    for r in rows:
        row = [
            RECIPE_LABELS[r["recipe"]],
            f"{r['batch']:,}",
            str(r["steps"]),
            f"{r['lr']:.3g}",
            str(r["warmup_steps"]),
            f"{r['time_per_epoch_s']:.1f}",
            f"{r['accuracy']:.3f}",
            "n/a" if r["b_simple"] is None else f"{r['b_simple']:,.0f}",
        ]
        if target is not None:
            t = r.get("time_to_target_s")
            row.append("not reached" if t is None else f"{t:.1f}")
        cells.append(row)
    return markdown_table(head, cells)
