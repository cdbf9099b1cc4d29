"""Chapter 02's own sizes per profile: the parity runs, the seeds per precision, the micro-benchmarks.

The parity runs are sized for signal: 12x12 images, batch 16 and a learning rate at which the narrow
ResNet-50 leaves chance within a few dozen steps. On a CPU without bf16/fp16 units every low-precision
step costs several fp32 steps, so the low-precision runs get fewer seeds than fp32: fp32's seeds give
the spread, and each low-precision run is judged against it (`ch02_claims.within_band`).
"""

from __future__ import annotations

from fasttrain.config import TrainConfig

PARITY = {
    "smoke": dict(global_batch_size=16, image_size=12, max_steps=24, lr=0.05, schedule="cosine",
                  val_every_steps=0, val_samples=300, train_samples=2048, timing_warmup_steps=3),
    "cpu": dict(global_batch_size=16, image_size=12, max_steps=40, lr=0.05, schedule="cosine",
                val_every_steps=0, val_samples=500, timing_warmup_steps=3),
    "gpu": dict(),  # the profile's own: full width, batch 256, 1,000 steps
}  # fmt: skip
SEEDS = {
    "smoke": {"32-true": 3, "bf16-mixed": 1, "16-mixed": 1},
    "cpu": {"32-true": 4, "bf16-mixed": 2, "16-mixed": 2},
    "gpu": {"32-true": 3, "bf16-mixed": 3, "16-mixed": 3},
}
GROWTH = {"smoke": 2, "cpu": 4, "gpu": 100}  # GradScaler growth interval: short, so a short run shows it act
ANALYSIS_BATCH = {"smoke": 16, "cpu": 64, "gpu": 64}
# Micro-benchmarks: on a CPU small enough that the slow bf16/fp16 paths take well under a second.
BENCH = {
    "cuda": dict(n=8192, conv=dict(batch=64, channels=256, size=28), min_run_time=0.2),
    "cpu": dict(n=256, conv=dict(batch=8, channels=32, size=8), min_run_time=0.05),
}
# Speed runs: on a GPU the published setting (224x224, synthetic data, full ResNet-50); elsewhere the
# parity runs themselves are the speed runs.
SPEED = {
    "smoke": None,
    "cpu": None,
    "gpu": dict(data="synthetic", image_size=224, in_channels=3, small_input=False, global_batch_size=256,
                max_steps=60, val_every_steps=0, val_samples=512, timing_warmup_steps=20),
}  # fmt: skip


def parity_config(profile: str, max_steps: int | None = None, growth_interval: int | None = None) -> TrainConfig:
    """The parity runs' config: the profile's, with this chapter's sizes and the notebook's overrides."""
    overrides = dict(PARITY[profile], loss_scale_growth_interval=growth_interval or GROWTH[profile])
    if max_steps:
        overrides["max_steps"] = max_steps
    return TrainConfig.from_profile(profile, **overrides).validate()


def seeds_per_precision(profile: str, precisions: list[str], seeds: int | None = None) -> dict[str, int]:
    """Runs per precision: `seeds` for all where given, else the profile's plan (fp32 gets the most)."""
    plan = SEEDS[profile]
    return {p: seeds or plan.get(p, plan["32-true"]) for p in precisions}
