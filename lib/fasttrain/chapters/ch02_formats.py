"""Number formats, measured: what each layout holds, where values fall in it, what a cast or an update loses.

The functions work on tensors in the caller's process (e.g. one training step's gradients from
`ch02_gradients.capture_step`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Format:
    name: str
    exponent_bits: int
    mantissa_bits: int
    dtype: torch.dtype | None  # None: TF32 is a tensor-core compute mode, not a storage dtype

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits


FORMATS = (
    Format("fp32", 8, 23, torch.float32),
    Format("tf32", 8, 10, None),
    Format("bf16", 8, 7, torch.bfloat16),
    Format("fp16", 5, 10, torch.float16),
)
FORMAT_BY_NAME = {f.name: f for f in FORMATS}


def format_limits(exponent_bits: int, mantissa_bits: int) -> dict[str, float]:
    """What an IEEE-style layout can hold: the exponent bits set the range, the mantissa bits the precision."""
    bias = 2 ** (exponent_bits - 1) - 1
    return dict(
        max=(2 - 2.0**-mantissa_bits) * 2.0**bias,
        smallest_normal=2.0 ** (1 - bias),
        smallest_subnormal=2.0 ** (1 - bias - mantissa_bits),
        eps=2.0**-mantissa_bits,
    )


def format_table() -> list[dict[str, Any]]:
    """Range and precision of each format from its bit layout, checked against torch.finfo where one exists."""
    rows = []
    for f in FORMATS:
        limits = format_limits(f.exponent_bits, f.mantissa_bits)
        agrees = None
        if f.dtype is not None:
            info = torch.finfo(f.dtype)
            agrees = (info.max, info.tiny, info.smallest_normal, info.eps) == (
                limits["max"],
                limits["smallest_normal"],
                limits["smallest_normal"],
                limits["eps"],
            )
        rows.append(
            dict(
                name=f.name,
                bits=f.bits,
                exponent_bits=f.exponent_bits,
                mantissa_bits=f.mantissa_bits,
                **limits,
                finfo_agrees=agrees,
            )
        )
    return rows


def exponent_histogram(values: torch.Tensor) -> tuple[list[int], list[int]]:
    """How many nonzero values have each binary exponent e, i.e. 2^e <= |v| < 2^(e+1)."""
    v = values[(values != 0) & torch.isfinite(values)].float()
    _, exp = torch.frexp(v)  # v = m * 2^exp with 0.5 <= |m| < 1, so floor(log2|v|) = exp - 1
    exp = exp - 1
    lo, hi = int(exp.min()), int(exp.max())
    counts = torch.bincount(exp - lo, minlength=hi - lo + 1)
    return list(range(lo, hi + 1)), counts.tolist()


def cast_fractions(values: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> dict[str, float]:
    """Of the nonzero values, the fraction that becomes 0 (underflow) or inf (overflow) when scaled and cast."""
    v = values[values != 0].float()
    if v.numel() == 0:
        raise ValueError("cast_fractions needs at least one nonzero value")
    cast = (v * scale).to(dtype)
    n = v.numel()
    return dict(
        scale=scale, nonzero=n, underflow=float((cast == 0).sum()) / n, overflow=float(torch.isinf(cast).sum()) / n
    )


def scale_sweep(values: torch.Tensor, scales: Iterable[float], dtype: torch.dtype = torch.float16) -> list[dict]:
    return [cast_fractions(values, dtype, s) for s in scales]


def largest_safe_scale(values: torch.Tensor, dtype: torch.dtype = torch.float16) -> float:
    """The largest power of two that scales every value without overflowing `dtype`."""
    biggest = float(values.abs().max())
    exponent = 0
    while biggest * 2.0 ** (exponent + 1) <= torch.finfo(dtype).max and exponent < 126:
        exponent += 1
    while biggest * 2.0**exponent > torch.finfo(dtype).max:
        exponent -= 1
    return 2.0**exponent


# Master weights: why the optimizer keeps an fp32 copy.
def lost_updates(weights: torch.Tensor, updates: torch.Tensor, fmt: str) -> dict[str, float]:
    """Of the nonzero updates, the fraction that leaves the weight unchanged when both are held in `fmt`.

    `rule` is the prediction from the mantissa alone: an update smaller than |w| x 2^-(mantissa+1)
    rounds away (1/2048 for fp16, Micikevicius et al.); `measured` adds them in that format.
    """
    f = FORMAT_BY_NAME[fmt]
    if f.dtype is None:
        raise ValueError(f"{fmt} is a compute mode, not a storage format; use fp32, bf16 or fp16")
    nz = updates != 0
    w, u = weights[nz], updates[nz]
    held = w.to(f.dtype)
    measured = float(((held + u.to(f.dtype)) == held).float().mean())
    rule = float((u.abs() < w.abs() * 2.0 ** -(f.mantissa_bits + 1)).float().mean())
    return dict(format=fmt, updates=int(nz.sum()), measured=measured, rule=rule)
