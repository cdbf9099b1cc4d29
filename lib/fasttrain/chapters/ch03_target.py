"""Chapter 03's main experiment: optimizer steps (and seconds) to a fixed validation accuracy against
batch size, the measurement of Shallue et al. (2018) and McCandlish et al. (2018).

Every job trains until its first validation at or above the target (or a step budget), so a large
batch is not penalised by an epoch budget: it gets the steps it needs. Three recipes:

- `scaled`: the linear scaling rule lr = lr_base x B / B_base with linear warm-up over a fixed number
  of images (Goyal et al. 2017 warmed up over 5 epochs: a number of images, not of steps);
- `fixed`:  the base batch's learning rate at every batch, no warm-up;
- `lars`:   the scaled rule and warm-up with LARS's per-layer trust ratio (You et al. 2017).

After the warm-up the rate is constant: a job that stops at the target has no schedule to finish.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fasttrain.config import ConfigError, TrainConfig, resolve_profile
from fasttrain.devices import cpu_cores, gpu_count, on_gpu

RECIPES = ("scaled", "fixed", "lars")
RECIPE_LABELS = {"scaled": "linear scaling + warm-up", "fixed": "fixed lr", "lars": "LARS + scaling + warm-up"}


@dataclass(frozen=True)
class TargetPlan:
    """One profile's steps-to-target sweep."""

    batch_sizes: tuple[int, ...]  # the `scaled` recipe runs at all of them
    fixed_batch_sizes: tuple[int, ...]  # where the `fixed` recipe runs (large batches)
    lars_batch_sizes: tuple[int, ...]  # where LARS runs (the largest batches)
    target_accuracy: float
    lr: float  # peak SGD rate at the smallest batch
    lars_lr: float
    lars_eta: float
    warmup_images: int  # images seen during the linear warm-up (scaled and LARS recipes)
    max_epochs: float  # budget per job, in passes over the training images; at least `min_steps` steps
    validations_per_job: int  # about this many validations before the expected steps to the target
    train_samples: int | None
    val_samples: int
    image_size: int
    width: float
    min_steps: int = 80
    seed: int = 0

    @property
    def train_size(self) -> int:
        return self.train_samples or 60_000  # Fashion-MNIST's training set

    @property
    def base_batch_size(self) -> int:
        return self.batch_sizes[0]

    def max_steps(self, batch: int) -> int:
        return max(self.min_steps, round(self.max_epochs * self.train_size / batch))

    def val_every(self, batch: int) -> int:
        """Validation spacing: fine enough to resolve the steps to target, with at least 2 steps between
        validations (a validation costs about a step of a small batch)."""
        # a prior for the steps to the target, S_min (1 + B_crit / B), with S_min ~ 3/4 of the least budget
        # and B_crit ~ twice the smallest batch
        expected = 0.75 * self.min_steps * (1 + 2 * self.base_batch_size / batch)
        return max(2, round(expected / self.validations_per_job))

    def validate(self, devices: int = 1) -> TargetPlan:
        sizes = self.batch_sizes
        problems = []
        if len(sizes) < 3 or list(sizes) != sorted(set(sizes)):
            problems.append(f"batch_sizes={sizes}: list three or more, once each, smallest first")
        for b in (*sizes, *self.fixed_batch_sizes, *self.lars_batch_sizes):
            if b % devices:
                problems.append(f"batch {b} does not split over {devices} ranks; use multiples of {devices}")
        if not all(b in sizes for b in (*self.fixed_batch_sizes, *self.lars_batch_sizes)):
            problems.append("fixed_batch_sizes and lars_batch_sizes must be among batch_sizes")
        if not 0 < self.target_accuracy < 1:
            problems.append(f"target_accuracy={self.target_accuracy}: use a fraction between 0 and 1")
        if problems:
            raise ConfigError("; ".join(problems) + ".")
        return self


_SMALL = dict(lr=0.05, lars_lr=0.05, lars_eta=0.02, validations_per_job=25, width=0.125)
PLANS: dict[str, TargetPlan] = {
    # smoke: 12x12 images keep a large-batch step cheap on two CPU cores; the sweep stops at 128, and
    # the fixed-lr job runs at 64, where a step costs less. No LARS job: it runs in `cpu` and `gpu`.
    "smoke": TargetPlan(
        batch_sizes=(16, 32, 64, 128),
        fixed_batch_sizes=(64,),
        lars_batch_sizes=(),
        target_accuracy=0.65,
        warmup_images=512,
        max_epochs=0.8,
        train_samples=8192,
        val_samples=256,
        image_size=12,
        **_SMALL,
    ),
    "cpu": TargetPlan(
        batch_sizes=(16, 32, 64, 128, 256),
        fixed_batch_sizes=(256,),
        lars_batch_sizes=(256,),
        target_accuracy=0.75,
        warmup_images=1024,
        max_epochs=2.0,
        train_samples=16_384,
        val_samples=500,
        image_size=16,
        min_steps=100,
        **_SMALL,
    ),
    "gpu": TargetPlan(
        batch_sizes=(32, 64, 128, 256, 512, 1024, 2048, 4096),
        fixed_batch_sizes=(1024, 4096),
        lars_batch_sizes=(2048, 4096),
        target_accuracy=0.90,
        lr=0.025,
        lars_lr=0.025,
        lars_eta=0.005,
        warmup_images=60_000,
        max_epochs=20.0,
        validations_per_job=25,
        train_samples=None,
        val_samples=2000,
        image_size=28,
        width=1.0,
        min_steps=200,
    ),
}


def target_plan(profile: str, **changes: Any) -> TargetPlan:
    """The profile's plan with the chapter's parameters on top (None leaves a value as it is)."""
    plan = PLANS[resolve_profile(profile)]
    unknown = [k for k in changes if k not in TargetPlan.__dataclass_fields__]
    if unknown:
        raise ConfigError(f"Unknown plan field(s) {unknown}; choose from {sorted(TargetPlan.__dataclass_fields__)}.")
    changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in changes.items() if v is not None}
    return replace(plan, **changes)


def target_config(plan: TargetPlan, recipe: str, batch: int, profile: str = "auto", devices: int = 2) -> TrainConfig:
    """The job for one (recipe, batch) point. At the base batch every recipe but LARS is the same job."""
    if recipe not in RECIPES:
        raise ConfigError(f"Unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}.")
    base = plan.base_batch_size
    if recipe == "fixed" and batch == base:
        recipe = "scaled"  # lr x B / B_base is lr there: the very same job
    scaled = recipe != "fixed"
    warmup = round(plan.warmup_images / batch) if scaled and batch > base else 0
    values: dict[str, Any] = dict(
        global_batch_size=batch,
        max_steps=plan.max_steps(batch),
        lr=plan.lars_lr if recipe == "lars" else plan.lr,
        base_batch_size=base if scaled else None,
        schedule="constant",
        warmup_steps=warmup,
        target_accuracy=plan.target_accuracy,
        val_every_steps=plan.val_every(batch),
        train_samples=plan.train_samples,
        val_samples=plan.val_samples,
        image_size=plan.image_size,
        width=plan.width,
        devices=devices,
        seed=plan.seed,
        timing_warmup_steps=1,
        checkpoint_every_steps=0,  # a job of seconds: a checkpoint would cost more than a restart
        measure_noise_scale=devices >= 2,
        extra=dict(chapter="03", experiment="steps-to-target", recipe=recipe),
    )
    if recipe == "lars":
        values.update(optimizer="lars", lars_eta=plan.lars_eta)
    return TrainConfig.from_profile(profile, **values).validate()


def run_target_sweep(
    plan: TargetPlan, profile: str = "auto", devices: int = 2, timeout: float = 3600
) -> dict[str, dict[int, dict]]:
    """Every job of the plan (a subprocess each, or its finished run): {recipe: {batch: record}}."""
    from fasttrain import launch

    wanted = dict(scaled=plan.batch_sizes, fixed=plan.fixed_batch_sizes, lars=plan.lars_batch_sizes)
    records: dict[str, dict[int, dict]] = {r: {} for r in RECIPES}
    for recipe, sizes in wanted.items():
        for batch in sizes:
            config = target_config(plan, recipe, batch, profile, devices)
            name = f"03-target-{config.extra['recipe']}-b{batch}"
            records[recipe][batch] = launch.run(config, name=name, timeout=timeout, show="none")
    return records


def default_devices(profile: str) -> int:
    """Ranks per job: every GPU on a GPU profile, else two CPU processes where there are two cores.

    Two or more ranks make every job a real data-parallel job that also measures the noise scale."""
    if on_gpu(profile):
        return gpu_count()
    return 2 if cpu_cores() >= 2 else 1
