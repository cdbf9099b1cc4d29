"""What a job's numbers are summarised with: spread statistics, the gradient noise scale, peak memory
and the device's peak FLOP/s. The callbacks that collect them live in rank/callbacks.py and rank/comm.py."""

from __future__ import annotations

import resource
import statistics
import sys
import time

import torch


# ---------------------------------------------------------------------- statistics
def summarize(values: list[float]) -> dict[str, float]:
    """Median and spread, the way every speed claim in the course is reported."""
    if not values:
        return dict(
            n=0,
            median=float("nan"),
            mean=float("nan"),
            std=float("nan"),
            p10=float("nan"),
            p90=float("nan"),
            min=float("nan"),
            max=float("nan"),
        )
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return dict(
        n=len(values),
        median=statistics.median(values),
        mean=statistics.fmean(values),
        std=statistics.pstdev(values) if len(values) > 1 else 0.0,
        p10=pct(0.1),
        p90=pct(0.9),
        min=ordered[0],
        max=ordered[-1],
    )


def noise_scale(local_sq: list[float], global_sq: list[float], b_small: int, b_big: int) -> dict[str, list]:
    """McCandlish et al. 2018's two-batch estimator of the gradient noise scale B_simple, per step.

    |G|^2 ~ (B_big |g_big|^2 - B_small |g_small|^2) / (B_big - B_small)
    S     ~ (|g_small|^2 - |g_big|^2) / (1/B_small - 1/B_big);   B_simple = S / |G|^2
    Single steps are noisy (|G|^2 can even come out negative); average S and |G|^2 over many steps
    before dividing, as `noise_scale_over` does.
    """
    g2 = [(b_big * gb - b_small * gs) / (b_big - b_small) for gs, gb in zip(local_sq, global_sq)]
    s = [(gs - gb) / (1 / b_small - 1 / b_big) for gs, gb in zip(local_sq, global_sq)]
    return dict(true_grad_sq=g2, trace_sigma=s)


def noise_scale_over(estimates: dict[str, list], start: int = 0, stop: int | None = None) -> float:
    """B_simple from the means of S and |G|^2 over steps [start, stop)."""
    g2 = estimates["true_grad_sq"][start:stop]
    s = estimates["trace_sigma"][start:stop]
    if not g2:
        return float("nan")
    mean_g2 = statistics.fmean(g2)
    return statistics.fmean(s) / mean_g2 if mean_g2 > 0 else float("inf")


def peak_memory_bytes(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "cuda max_memory_allocated"
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss_kb * (1 if sys.platform == "darwin" else 1024)), "process max RSS (CPU)"


def peak_flops(device: torch.device, precision: str, matmul_precision: str) -> tuple[float | None, str]:
    """The device's peak FLOP/s for this precision: Lightning's datasheet table on GPUs it knows,
    otherwise measured here as the rate of a large matrix product in that precision."""
    dtype = {
        "bf16-mixed": torch.bfloat16,
        "bf16-true": torch.bfloat16,
        "16-mixed": torch.float16,
        "16-true": torch.float16,
    }.get(precision, torch.float32)
    if device.type == "cuda":
        from lightning.fabric.utilities.throughput import get_available_flops

        # For float32, Lightning itself switches to the TF32 figure when matmul_precision allows it.
        value = get_available_flops(device, dtype)
        if value:
            kind = "tf32" if dtype == torch.float32 and matmul_precision != "highest" else str(dtype)[6:]
            return float(value), f"datasheet ({torch.cuda.get_device_name(device)}, {kind})"
    else:
        dtype = torch.float32  # a CPU's low-precision matmul is no ceiling worth quoting (chapter 02)
    rate = measure_matmul_flops(device, dtype)
    return rate, f"measured: {str(dtype)[6:]} matrix product on this device"


def measure_matmul_flops(device: torch.device, dtype: torch.dtype, n: int = 0, repeats: int = 10) -> float:
    """FLOP/s of an n x n x n matrix product, the fastest of `repeats` timed products after two untimed
    ones that warm caches and kernels: a peak is what the device can do, and on a shared machine the
    median drifts far more than the best."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for _ in range(2 + repeats):
        _synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _synchronize(device)  # a GPU's product runs asynchronously: the time is the kernel's, finished
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times[2:])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
