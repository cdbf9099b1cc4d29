"""Device discovery, in one place: what this machine offers a job, and where its ranks go."""

from __future__ import annotations

import os


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def gpu_count() -> int:
    """Usable CUDA GPUs (0 where there are none)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one: a container or taskset)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_devices(on_gpu: bool) -> int:
    """How many ranks one machine can give a device each: its GPUs, or its cores (a CPU rank needs one)."""
    return gpu_count() if on_gpu else cpu_cores()


def threads_per_rank(ranks_on_this_machine: int, requested: int | None = None) -> int:
    """CPU threads each rank uses, so that N ranks on one machine do not fight over the same cores."""
    return requested or max(1, cpu_cores() // max(1, ranks_on_this_machine))


def on_gpu(profile: str) -> bool:
    """Whether a chapter's jobs in this profile run on GPUs here: the gpu profile, on a machine with CUDA."""
    from fasttrain.config import resolve_profile

    return resolve_profile(profile) == "gpu" and cuda_available()
