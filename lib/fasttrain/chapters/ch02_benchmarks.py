"""The speed of low-precision maths: a matrix product and a 3x3 convolution in each mode, timed with
`torch.utils.benchmark.Timer` (PyTorch's own micro-benchmark tool: warm-up, CUDA synchronisation and
as many repeats as fit in `min_run_time`), reported as the median and interquartile range per call."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

MODES = ("fp32", "tf32", "bf16", "fp16")


@contextlib.contextmanager
def math_mode(mode: str):
    """fp32 maths as TF32 (on Ampere and newer GPUs) for mode 'tf32', strict fp32 otherwise; restored after."""
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if mode == "tf32" else "highest")
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        yield {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.allow_tf32 = saved[1]


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def timed(fn: Callable[[], Any], min_run_time: float, threads: int | None = None) -> dict[str, float]:
    """Median and interquartile range of one call's seconds (Timer.blocked_autorange); `threads`: CPU
    threads to time it with (default: this process's, where Timer's own default would be one)."""
    with _quiet("torch.utils.cpp_extension"):  # its import warns of CUDA_HOME on a CPU machine; nothing is compiled
        from torch.utils.benchmark import Timer

    timer = Timer("fn()", globals=dict(fn=fn), num_threads=threads or torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return dict(seconds=m.median, iqr_s=m.iqr, calls=m.number_per_run * len(m.times))


def matmul_speed(
    device: torch.device, mode: str, n: int, min_run_time: float = 0.2, threads: int | None = None
) -> dict[str, float]:
    """FLOP/s (2 n^3 per product) of an n x n x n product in `mode`, and its error against fp64."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(device), torch.randn(n, n, generator=g).to(device)
    exact = a.double() @ b.double()
    with math_mode(mode) as dtype:
        a_, b_ = a.to(dtype), b.to(dtype)
        time = timed(lambda: a_ @ b_, min_run_time, threads)
        error = float((a_ @ b_).double().sub(exact).abs().max() / exact.abs().max())
    return dict(mode=mode, n=n, **time, flops_per_s=2 * n**3 / time["seconds"], rel_error=error)


def conv_speed(
    device: torch.device,
    mode: str,
    batch: int,
    channels: int,
    size: int,
    direction: str = "forward",
    channels_last: bool = False,
    min_run_time: float = 0.2,
    threads: int | None = None,
) -> dict[str, Any]:
    """FLOP/s of a 3x3 convolution (channels in = out, same padding) in `mode`.

    direction 'forward' times the forward pass: 2 x N x C_out x H x W x C_in x 3 x 3 FLOPs.
    'weight_grad' times what a training step needs for the weight gradient, the forward pass and then
    the gradient with respect to the weights (the same number of FLOPs again): twice the forward's.
    """
    if direction not in ("forward", "weight_grad"):
        raise ValueError(f"direction must be 'forward' or 'weight_grad', not {direction!r}")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator(device="cpu").manual_seed(0)
    with math_mode(mode) as dtype:
        x = torch.randn(batch, channels, size, size, generator=g).to(device, dtype).contiguous(memory_format=fmt)
        w = torch.randn(channels, channels, 3, 3, generator=g).to(device, dtype).contiguous(memory_format=fmt)
        if direction == "forward":
            time = timed(lambda: F.conv2d(x, w, padding=1), min_run_time, threads)
        else:
            w.requires_grad_(True)
            grad_out = torch.ones(batch, channels, size, size, device=device, dtype=dtype).contiguous(memory_format=fmt)
            time = timed(lambda: torch.autograd.grad(F.conv2d(x, w, padding=1), w, grad_out), min_run_time, threads)
    forward_flops = 2 * batch * channels * size * size * channels * 3 * 3
    flops = forward_flops * (1 if direction == "forward" else 2)
    return dict(
        mode=mode,
        direction=direction,
        channels_last=channels_last,
        **time,
        flops=flops,
        flops_per_s=flops / time["seconds"],
    )
