"""Chapter 03's training jobs: one (recipe, batch size) point of the sweep each.

At the base batch every SGD recipe is the same job (the linear scaling rule scales nothing there), so
`sweep_config` gives the `scaled` recipe the `fixed` one's config at that batch; `launch.run` then
returns the run already trained for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from fasttrain.chapters.ch03_analysis import summary
from fasttrain.chapters.ch03_plans import RECIPE_LABELS, RECIPES, SweepPlan
from fasttrain.config import ConfigError, TrainConfig
from fasttrain.devices import cpu_cores, gpu_count, on_gpu


def sweep_config(
    plan: SweepPlan, recipe: str, batch: int, profile: str = "auto", devices: int = 1, **overrides: Any
) -> TrainConfig:
    """The training job for one (recipe, batch size) point of the sweep."""
    if recipe not in RECIPES:
        raise ConfigError(f"Unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}.")
    if recipe == "scaled" and batch == plan.base_batch_size:
        recipe = "fixed"  # the same job: lr x B / B_base is lr, and nothing needs a warm-up
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
    timeout: float = 3600,
    **overrides: Any,
) -> dict[int, dict]:
    """Train one recipe at each batch size (a subprocess job each, or its finished run); {batch: record}."""
    from fasttrain import launch

    records: dict[int, dict] = {}
    for batch in batch_sizes or plan.batch_sizes:
        config = sweep_config(plan, recipe, batch, profile, devices, **overrides)
        job = config.extra["recipe"]
        records[batch] = record = launch.run(config, name=f"03-{job}-b{batch}", timeout=timeout, show="none")
        row = summary(record)
        print(
            f"{RECIPE_LABELS[job]:>26}  B={batch:<5} {row['steps']:>4} steps  peak lr {row['lr']:.3g}  "
            f"{row['time_per_epoch_s']:6.1f} s/epoch  accuracy {row['accuracy']:.3f}",
            flush=True,
        )
    return records


def default_devices(profile: str) -> int:
    """Ranks per job: every GPU on a GPU profile, else two CPU processes where there are two cores.

    Two or more ranks make every job a real data-parallel job that also measures the noise scale."""
    if on_gpu(profile):
        return gpu_count()
    return 2 if cpu_cores() >= 2 else 1
