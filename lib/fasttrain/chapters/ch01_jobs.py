"""Chapter 01's training jobs: short runs that measure step times, at 1, 2, 4, ... ranks.

A job is named by its shape, ranks x per-rank batch, so asking for the same job twice (weak and strong
scaling share their largest) finds the same run folder, and `launch.run` returns the finished run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fasttrain.config import ConfigError, TrainConfig, resolve_profile
from fasttrain.devices import local_devices, on_gpu

# Short jobs: the chapter measures step times, not accuracy, so it validates once on a small set.
JOB_SIZES = {
    "smoke": dict(per_device_batch=32, max_steps=12, timing_warmup_steps=2, train_samples=2048, val_samples=128),
    "cpu": dict(per_device_batch=32, max_steps=30, timing_warmup_steps=5, train_samples=None, val_samples=500),
    "gpu": dict(per_device_batch=128, max_steps=120, timing_warmup_steps=20, train_samples=None, val_samples=2000),
}


def available_world_sizes(profile: str) -> list[int]:
    """1, 2, 4, ... up to the devices this machine has (GPUs, else one core per rank), and that number."""
    most = local_devices(on_gpu(profile))
    sizes = [2**k for k in range(int(math.log2(most)) + 1)]
    return sizes + ([most] if most not in sizes else [])


def job_config(profile: str, world: int, global_batch_size: int, **overrides) -> TrainConfig:
    """One of the chapter's jobs: the profile's model, short, and on a CPU one thread per rank, so
    every rank owns a core and 1 rank vs N ranks is a fair comparison."""
    resolved = resolve_profile(profile)
    sizes = {k: v for k, v in JOB_SIZES[resolved].items() if k != "per_device_batch"}
    hardware = dict(accelerator="gpu") if on_gpu(resolved) else dict(accelerator="cpu", threads_per_rank=1)
    values = dict(sizes, val_every_steps=0, devices=world, global_batch_size=global_batch_size, **hardware)
    values.update(overrides)
    return TrainConfig.from_profile(resolved, **values).validate()


def run_job(
    profile: str, world: int, global_batch_size: int, name: str | None = None, timeout: float = 1800, **overrides
) -> dict:
    """Train one of the chapter's jobs (or reuse its finished run) and return its record.

    name: by default the job's shape, "<ranks>x<per-rank batch>"; give another to run the same job
    again as a run of its own (e.g. to bracket another job in time)."""
    from fasttrain import launch

    config = job_config(profile, world, global_batch_size, **overrides)
    return launch.run(config, name=name or f"{world}x{global_batch_size // world}", timeout=timeout)


def check_world_sizes(world_sizes: Sequence[int], profile: str) -> list[int]:
    have = available_world_sizes(profile)
    bad = [n for n in world_sizes if n < 1 or n > have[-1]]
    if bad:
        raise ConfigError(
            f"world_sizes {bad}: this machine runs 1 to {have[-1]} ranks "
            f"({'GPUs' if on_gpu(profile) else 'one CPU core each'}); e.g. {have}."
        )
    if 1 not in world_sizes:
        raise ConfigError("world_sizes must include 1: speed-up is measured against one rank.")
    return sorted(set(world_sizes))
