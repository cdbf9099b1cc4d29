"""Large batches (chapter 03): batch-size sweeps, the linear scaling rule with warm-up, LARS, the
gradient noise scale and time to accuracy, all read from the result records of real training jobs.

A sweep holds the *epochs* fixed, so a batch k times larger takes k times fewer optimizer steps.
Three recipes answer "what learning rate goes with a bigger batch?":

- `fixed`:  the same peak learning rate at every batch size;
- `scaled`: the linear scaling rule lr = lr_base x B / B_base with gradual warm-up (Goyal et al. 2017);
- `lars`:   the scaled rule with LARS's per-layer trust ratio (You et al. 2017; Jia et al. 2018).

Every job is a real data-parallel job when there are two or more ranks, and then also measures the
gradient noise scale B_simple (McCandlish et al. 2018) from one rank's and the all-reduced gradient.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from fasttrain.config import ConfigError, TrainConfig, resolve_profile
from fasttrain.rank.measure import noise_scale_over

FASHION_MNIST_TRAIN_SIZE = 60_000
RECIPES = ("fixed", "scaled", "lars")
RECIPE_LABELS = {"fixed": "fixed lr", "scaled": "linear scaling + warm-up", "lars": "LARS + scaling + warm-up"}


@dataclass(frozen=True)
class SweepPlan:
    """What one profile's sweep trains: every batch size sees the same number of epochs."""

    batch_sizes: tuple[int, ...]
    base_batch_size: int  # the batch the base learning rate belongs to (the sweep's smallest)
    lr: float  # peak SGD rate at base_batch_size; the `fixed` recipe uses it everywhere
    epochs: float
    train_samples: int | None  # a fixed subset of Fashion-MNIST's 60,000 training images (None: all)
    val_samples: int | None
    warmup_fraction: float  # of each scaled run's steps spent warming up (batches above the base)
    lars_lr: float  # LARS's peak rate at base_batch_size, scaled like SGD's
    lars_eta: float  # LARS trust coefficient
    lars_batch_sizes: tuple[int, ...]  # where the LARS recipe runs (the largest batches)
    validations: int = 4  # validation points per run, for accuracy over time
    schedule: str = "cosine"  # after warm-up, every recipe decays the same way
    width: float | None = None  # None: the profile's width
    max_batch_per_device: int | None = None  # above it, accumulate gradients (memory)

    @property
    def train_size(self) -> int:
        return self.train_samples or FASHION_MNIST_TRAIN_SIZE

    def steps(self, batch: int) -> int:
        """Optimizer steps for `epochs` passes at this batch size (at least 2: one is timed)."""
        return max(2, round(self.epochs * self.train_size / batch))

    def validate(self, devices: int = 1) -> SweepPlan:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        sizes = self.batch_sizes
        check(len(sizes) >= 2, f"batch_sizes={sizes}: a sweep needs two or more batch sizes.")
        check(list(sizes) == sorted(set(sizes)), f"batch_sizes={sizes}: list them once each, smallest first.")
        check(
            sizes[0] == self.base_batch_size,
            f"base_batch_size={self.base_batch_size} must be the smallest batch of the sweep ({sizes[0]}): "
            "every other batch is compared with it.",
        )
        for b in sizes:
            check(b % devices == 0, f"batch size {b} does not split over {devices} ranks; use multiples of {devices}.")
            check(
                b <= self.train_size,
                f"batch size {b} is larger than the {self.train_size} training images; "
                "raise train_samples or drop that batch size.",
            )
        check(
            all(b in sizes for b in self.lars_batch_sizes),
            f"lars_batch_sizes={self.lars_batch_sizes} must be among batch_sizes={sizes}.",
        )
        check(self.epochs > 0, f"epochs={self.epochs}: train for a positive number of epochs.")
        check(0 <= self.warmup_fraction < 1, f"warmup_fraction={self.warmup_fraction}: use 0 to 1 (exclusive).")
        check(self.validations >= 1, "validations must be 1 or more.")
        return self


# Per profile. smoke: seconds per job in CI, so only the sweep's two ends; cpu: minutes on a
# 2-core machine, so the model is narrowed to width 0.125; gpu: full-width ResNet-50 on all of
# Fashion-MNIST, 32 to 8K, with the base rate of Goyal et al.'s rule (0.1 per 256 images). LARS's
# per-step move is about lr x eta of each layer's weights: the gpu plan's smaller eta keeps that
# near the cpu plan's at its 16x larger rate.
PLANS: dict[str, SweepPlan] = {
    "smoke": SweepPlan(
        batch_sizes=(16, 256),
        base_batch_size=16,
        lr=0.05,
        epochs=1,
        train_samples=1024,
        val_samples=500,
        warmup_fraction=0.25,
        lars_lr=0.05,
        lars_eta=0.02,
        lars_batch_sizes=(256,),
    ),
    "cpu": SweepPlan(
        batch_sizes=(32, 128, 512),
        base_batch_size=32,
        lr=0.05,
        epochs=1,
        train_samples=8192,
        val_samples=1000,
        warmup_fraction=0.25,
        lars_lr=0.05,
        lars_eta=0.02,
        lars_batch_sizes=(512,),
        width=0.125,
    ),
    "gpu": SweepPlan(
        batch_sizes=(32, 128, 512, 2048, 8192),
        base_batch_size=32,
        lr=0.0125,
        epochs=4,
        train_samples=None,
        val_samples=None,
        warmup_fraction=0.2,
        lars_lr=0.0125,
        lars_eta=0.005,
        lars_batch_sizes=(2048, 8192),
        max_batch_per_device=1024,
    ),
}


def plan_for(profile: str, **changes: Any) -> SweepPlan:
    """The profile's plan with the chapter's parameters on top (None leaves a value as it is)."""
    plan = PLANS[resolve_profile(profile)]
    unknown = [k for k in changes if k not in SweepPlan.__dataclass_fields__]
    if unknown:
        raise ConfigError(
            f"Unknown sweep parameter(s) {unknown}; choose from {sorted(SweepPlan.__dataclass_fields__)}."
        )
    changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in changes.items() if v is not None}
    return replace(plan, **changes)


def sweep_config(
    plan: SweepPlan, recipe: str, batch: int, profile: str = "auto", devices: int = 1, **overrides: Any
) -> TrainConfig:
    """The training job for one (recipe, batch size) point of the sweep."""
    if recipe not in RECIPES:
        raise ConfigError(f"Unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}.")
    steps = plan.steps(batch)
    # Warm-up is the scaled rule's remedy for its large early steps; at the base batch nothing is scaled.
    warmup = round(plan.warmup_fraction * steps) if recipe != "fixed" and batch > plan.base_batch_size else 0
    accumulation = 1
    if plan.max_batch_per_device and batch > plan.max_batch_per_device * devices:
        accumulation = math.ceil(batch / (plan.max_batch_per_device * devices))
        while batch % (devices * accumulation):
            accumulation += 1
    values: dict[str, Any] = dict(
        global_batch_size=batch,
        max_steps=steps,
        lr=plan.lr,
        schedule=plan.schedule,
        warmup_steps=warmup,
        train_samples=plan.train_samples,
        val_samples=plan.val_samples,
        devices=devices,
        val_every_steps=max(1, steps // plan.validations),
        timing_warmup_steps=1,
        target_accuracy=None,
        grad_accumulation=accumulation,
        measure_noise_scale=devices >= 2,
        extra=dict(chapter="03", recipe=recipe, epochs=plan.epochs),
    )
    if recipe != "fixed":
        values["base_batch_size"] = plan.base_batch_size
    if recipe == "lars":
        values.update(optimizer="lars", lr=plan.lars_lr, lars_eta=plan.lars_eta)
    if plan.width:
        values["width"] = plan.width
    values.update(overrides)
    return TrainConfig.from_profile(profile, **values).validate()


def run_recipe(
    plan: SweepPlan,
    recipe: str,
    profile: str = "auto",
    devices: int = 1,
    batch_sizes: Iterable[int] | None = None,
    reuse: dict[int, dict] | None = None,
    timeout: float = 3600,
    **overrides: Any,
) -> dict[int, dict]:
    """Train one recipe at each batch size (a subprocess job each); returns {batch: record}.

    `reuse` maps batch sizes to records of identical jobs already run (the base batch is the same
    job under every recipe), so they are not trained twice.
    """
    from fasttrain import launch

    records: dict[int, dict] = {}
    for batch in batch_sizes or plan.batch_sizes:
        if reuse and batch in reuse:
            records[batch] = reuse[batch]
            continue
        config = sweep_config(plan, recipe, batch, profile, devices, **overrides)
        record = launch.run(config, name=f"03-{recipe}-b{batch}", timeout=timeout, show="none")
        records[batch] = record
        row = summary(record)
        print(
            f"{RECIPE_LABELS[recipe]:>26}  B={batch:<5} {row['steps']:>4} steps  peak lr {row['lr']:.3g}  "
            f"{row['time_per_epoch_s']:6.1f} s/epoch  accuracy {row['accuracy']:.3f}",
            flush=True,
        )
    return records


# ---------------------------------------------------------------------- reading records
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


# ---------------------------------------------------------------------- figures
def sweep_figure(rows: list[dict], save_as: str | None = None):
    """Time per epoch and final accuracy against batch size, one line per recipe."""
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_a) = plt.subplots(1, 2, figsize=(11, 4))
    for recipe in RECIPES:
        mine = sorted((r for r in rows if r["recipe"] == recipe), key=lambda r: r["batch"])
        if not mine:
            continue
        style = "s" if len(mine) == 1 else "o-"
        b = [r["batch"] for r in mine]
        ax_t.plot(b, [r["time_per_epoch_s"] for r in mine], style, label=RECIPE_LABELS[recipe])
        ax_a.plot(b, [r["accuracy"] for r in mine], style, label=RECIPE_LABELS[recipe])
    ax_t.set(
        xscale="log",
        yscale="log",
        xlabel="global batch size",
        ylabel="seconds per epoch (median step)",
        title="time per epoch",
    )
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
    fig.tight_layout()
    return _save(fig, save_as)


def noise_scale_figure(records: dict[int, dict], windows: int = 4, save_as: str | None = None):
    """B_simple over training for each batch size, beside the batch sizes themselves."""
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    return _save(fig, save_as)


def time_to_accuracy_figure(rows: list[dict], target: float, save_as: str | None = None):
    """Left: training time to the target against batch size. Right: accuracy against training time."""
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    return _save(fig, save_as)


def _save(fig, name: str | None):
    from fasttrain.plots import _save as save

    return save(fig, name)


# ---------------------------------------------------------------------- for the chapter
def default_devices(profile: str) -> int:
    """Ranks per job: every GPU on a GPU profile, else two CPU processes where there are two cores.

    Two or more ranks make every job a real data-parallel job that also measures the noise scale."""
    import os

    import torch

    if resolve_profile(profile) == "gpu" and torch.cuda.is_available():
        return torch.cuda.device_count()
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def markdown_table(rows: list[dict], target: float | None = None) -> str:
    """The sweep's rows as a Markdown table (what the chapter displays)."""
    head = ["recipe", "batch", "steps", "peak lr", "warm-up steps", "s / epoch", "accuracy", "B_simple"]
    if target is not None:
        head.append(f"s to {target:.0%}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
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
            cells.append("not reached" if t is None else f"{t:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
