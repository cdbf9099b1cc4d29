"""Chapter 00's job and the claims it checks on its own record: one device, SGD, fp32, as it comes."""

from __future__ import annotations

import statistics

from fasttrain.config import TrainConfig, resolve_profile
from fasttrain.report.claims import Claims

# A target each profile's run reaches, and steps enough to learn: at smoke scale 30 steps end before the
# batch-norm running statistics settle (validation near chance while the training loss falls).
TARGETS = {"smoke": 0.35, "cpu": 0.80, "gpu": 0.90}
# cpu: 400 steps leave a margin past where the 2-core machine reaches 80% (README, Measured here).
STEPS = {"smoke": 60, "cpu": 400, "gpu": None}  # None: the profile's own
VALIDATE_EVERY = {"smoke": 20, "cpu": None, "gpu": None}
LEARNS_FACTOR = 3  # "learns": final validation accuracy at least this many times chance
MFU_CEILING = 0.6  # tuned ResNet-50 training reaches well under this fraction of peak on any device


def job_config(profile: str, devices: int = 1, max_steps: int | None = None) -> TrainConfig:
    profile = resolve_profile(profile)
    overrides = dict(devices=devices, target_accuracy=None)
    steps = max_steps or STEPS[profile]
    if steps:
        overrides["max_steps"] = steps
    if VALIDATE_EVERY[profile]:
        overrides["val_every_steps"] = VALIDATE_EVERY[profile]
    return TrainConfig.from_profile(profile, **overrides).validate()


def first_reached(record: dict, target: float) -> dict | None:
    return next((v for v in record["validation"] if v["accuracy"] >= target), None)


def check_claims(record: dict, target: float, profile: str) -> Claims:
    claims = Claims("00", profile)
    chance = 1 / record["config"]["num_classes"]
    final = record["final_val_accuracy"]
    claims.check(
        "the baseline learns: its final validation accuracy is several times chance",
        final >= LEARNS_FACTOR * chance,
        f"{final:.1%} after {record['steps']} steps; chance {chance:.0%}, bar {LEARNS_FACTOR * chance:.0%}",
        robust=("smoke", "cpu", "gpu"),
    )
    losses = record["loss"]["values"]
    k = max(1, len(losses) // 6)
    early, late = statistics.fmean(losses[:k]), statistics.fmean(losses[-k:])
    claims.check(
        "the training loss falls: its last steps average well under its first",
        late < 0.8 * early,
        f"mean of the first {k} steps {early:.3f}, of the last {k} {late:.3f} ({late / early:.2f}x)",
        robust=("smoke", "cpu", "gpu"),
    )
    hit = first_reached(record, target)
    claims.check(
        f"the profile's target ({target:.0%}) is reached within the run",
        hit is not None,
        f"first at step {hit['step']}, after {hit['train_time_s']:.1f} s of training"
        if hit
        else f"best {max(v['accuracy'] for v in record['validation']):.1%} in {record['steps']} steps",
        robust=("smoke", "cpu", "gpu"),
    )
    times = record["timing"]["step_times_s"]
    median = record["timing"]["step_time_s"]["median"]
    claims.check(
        "the first step is slower than a typical one (allocation, warm caches), so timing skips it",
        times[0] > median,
        f"first step {times[0] * 1e3:.0f} ms, median of the timed steps {median * 1e3:.0f} ms",
        robust=("smoke", "cpu", "gpu"),
    )
    mfu, source = record["flops"]["mfu"], record["flops"]["peak_source"]
    claims.check(
        f"the device has headroom: the run reaches under {MFU_CEILING:.0%} of its peak",
        mfu < MFU_CEILING,
        f"{mfu:.1%} of the peak ({source})",
        robust=("smoke", "cpu", "gpu"),
    )
    return claims
