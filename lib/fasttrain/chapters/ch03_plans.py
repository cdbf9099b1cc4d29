"""Chapter 03's sweep plans: which batch sizes each profile trains, for how many epochs, at which rates."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fasttrain.config import ConfigError, resolve_profile

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
    warmup_fraction: float  # of each scaled run's steps spent warming up (batches above the base)
    lars_lr: float  # LARS's peak rate at base_batch_size, scaled like SGD's
    lars_eta: float  # LARS trust coefficient
    lars_batch_sizes: tuple[int, ...]  # where the LARS recipe runs (the largest batches)
    train_samples: int | None = None  # a fixed subset of Fashion-MNIST's 60,000 training images (None: all)
    val_samples: int | None = None  # None: the whole validation set
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
_SMALL_RATES = dict(lr=0.05, epochs=1, warmup_fraction=0.25, lars_lr=0.05, lars_eta=0.02)
_GPU_RATES = dict(lr=0.0125, epochs=4, warmup_fraction=0.2, lars_lr=0.0125, lars_eta=0.005)
PLANS: dict[str, SweepPlan] = {
    "smoke": SweepPlan(
        batch_sizes=(16, 256),
        base_batch_size=16,
        train_samples=1024,
        val_samples=500,
        lars_batch_sizes=(256,),
        **_SMALL_RATES,
    ),
    "cpu": SweepPlan(
        batch_sizes=(32, 128, 512),
        base_batch_size=32,
        train_samples=8192,
        val_samples=1000,
        lars_batch_sizes=(512,),
        width=0.125,
        **_SMALL_RATES,
    ),
    "gpu": SweepPlan(
        batch_sizes=(32, 128, 512, 2048, 8192),
        base_batch_size=32,
        lars_batch_sizes=(2048, 8192),
        max_batch_per_device=1024,
        **_GPU_RATES,
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
