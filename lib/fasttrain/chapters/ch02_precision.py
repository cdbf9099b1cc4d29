"""Mixed precision, measured: number formats, where real gradients fall in them, master weights, loss
scaling, autocast's op lists, the speed of low-precision maths, and runs compared across precisions.

The analysis functions work in the caller's process on one model and one batch (no DDP), which is
what a histogram of gradients or a matrix-product benchmark needs. Training runs go through
`launch.run` like every other chapter's; `precision_runs` and `parity_summary` collect and compare
their records.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from fasttrain.config import ConfigError, TrainConfig


# ---------------------------------------------------------------------- the formats
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
LOW_PRECISION = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


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


# ---------------------------------------------------------------------- gradients of a real step
@dataclass
class Captured:
    """One training step's tensors, flattened: what the format analysis looks at."""

    weights: torch.Tensor  # every parameter before the step
    weight_grads: torch.Tensor  # their gradients
    activation_grads: torch.Tensor  # gradients flowing out of every convolution (what fp16 backward carries)
    loss: float
    lr: float
    step: int  # training steps taken before this one


def real_batches(config: TrainConfig, batch_size: int, count: int, device: torch.device):
    """`count` batches of Fashion-MNIST training images, preprocessed exactly as training does."""
    from fasttrain.rank.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, InMemoryImages, load_fashion_mnist

    images, labels = load_fashion_mnist("train", config.data_dir, config.download)
    data = InMemoryImages(images, labels, config.image_size, config.in_channels, FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.seed))
    for i in range(count):
        x, y = data[order[i * batch_size : (i + 1) * batch_size].tolist()]
        yield x.to(device), y.to(device)


def capture_step(
    config: TrainConfig, batch_size: int = 64, warm_steps: int = 2, device: torch.device | None = None
) -> Captured:
    """Train ResNet-50 in fp32 for `warm_steps` SGD steps on real data, then capture the next step's tensors.

    A few steps first because at initialisation the last batch norm of every block has weight zero
    (zero-init residual), so whole layers have exactly zero gradient; training moves them off zero.
    """
    from fasttrain.rank.models import resnet50

    if warm_steps < 0 or batch_size < 1:
        raise ConfigError(f"capture_step needs warm_steps >= 0 and batch_size >= 1 (got {warm_steps}, {batch_size}).")
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(config.seed)
    model = resnet50(config.num_classes, config.in_channels, config.width, config.small_input).to(device)
    lr = config.effective_lr
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum)
    batches = list(real_batches(config, batch_size, warm_steps + 1, device))
    for x, y in batches[:warm_steps]:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    activation_grads: list[torch.Tensor] = []

    def keep_grad(module, inputs, output):
        output.register_hook(lambda g: activation_grads.append(g.detach().flatten()))

    hooks = [m.register_forward_hook(keep_grad) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        x, y = batches[warm_steps]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    params = [p for p in model.parameters() if p.grad is not None]
    return Captured(
        weights=torch.cat([p.detach().flatten() for p in params]),
        weight_grads=torch.cat([p.grad.flatten() for p in params]),
        activation_grads=torch.cat(activation_grads),
        loss=float(loss.detach()),
        lr=lr,
        step=warm_steps,
    )


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


# ---------------------------------------------------------------------- master weights
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


# ---------------------------------------------------------------------- autocast's op lists
def _probes(device: torch.device) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    g = torch.Generator(device="cpu").manual_seed(0)

    def param(*shape):
        return torch.randn(*shape, generator=g).to(device)  # fp32, as a model's parameters are

    w_conv, w_lin, bn_w, bn_b = param(8, 8, 3, 3), param(10, 8 * 4 * 4), param(8), param(8)
    mean, var = torch.zeros(8, device=device), torch.ones(8, device=device)
    target = torch.zeros(4, dtype=torch.long, device=device)
    return {
        "conv2d": lambda x: F.conv2d(x, w_conv, padding=1),
        "linear": lambda x: F.linear(x.flatten(1), w_lin),
        "matmul": lambda x: x.flatten(1) @ x.flatten(1).T,
        "batch_norm": lambda x: F.batch_norm(x, mean, var, bn_w, bn_b, training=True),
        "relu": F.relu,
        "add (residual)": lambda x: x + x,
        "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, 1),
        "sum": lambda x: x.sum(),
        "exp": torch.exp,
        "softmax": lambda x: F.softmax(x.flatten(1), dim=1),
        "log_softmax": lambda x: F.log_softmax(x.flatten(1), dim=1),
        "cross_entropy": lambda x: F.cross_entropy(x.flatten(1)[:, :10], target),
        "layer_norm": lambda x: F.layer_norm(x, x.shape[1:]),
        "mse_loss": lambda x: F.mse_loss(x, torch.zeros_like(x)),
    }


def autocast_table(device_type: str, dtype: torch.dtype) -> list[dict[str, str]]:
    """What each op returns under torch.autocast(device_type, dtype): fed fp32 (as after the input) and fed
    the low-precision dtype (as after a convolution). `kind` is read from those two results."""
    device = torch.device(device_type)
    low = str(dtype).replace("torch.", "")
    x32 = torch.randn(4, 8, 4, 4, device=device)
    rows = []
    for name, op in _probes(device).items():
        out = {}
        for label, x in (("from_fp32", x32), ("from_low", x32.to(dtype))):
            try:
                with torch.autocast(device_type, dtype=dtype):
                    out[label] = str(op(x).dtype).replace("torch.", "")
            except Exception as exc:  # an op this device's kernels lack in that dtype
                out[label] = f"error ({type(exc).__name__})"
        if out["from_fp32"] == low:
            kind = f"cast down: runs in {low}"
        elif out["from_low"] == "float32":
            kind = "kept in float32"
        elif out["from_low"] == low and out["from_fp32"] == "float32":
            kind = "follows its input"
        else:
            kind = "other"
        rows.append(dict(op=name, **out, kind=kind))
    return rows


# ---------------------------------------------------------------------- speed of the maths
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


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up call."""
    times = []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_speed(device: torch.device, mode: str, n: int, repeats: int = 3) -> dict[str, float]:
    """FLOP/s of an n x n x n product in `mode`, and its error against the same product in fp64."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(device), torch.randn(n, n, generator=g).to(device)
    exact = a.double() @ b.double()
    with math_mode(mode) as dtype:
        a_, b_ = a.to(dtype), b.to(dtype)
        seconds = _timed(lambda: a_ @ b_, device, repeats)
        error = float((a_ @ b_).double().sub(exact).abs().max() / exact.abs().max())
    return dict(mode=mode, n=n, seconds=seconds, flops_per_s=2 * n**3 / seconds, rel_error=error)


def conv_speed(
    device: torch.device,
    mode: str,
    batch: int,
    channels: int,
    size: int,
    direction: str = "forward",
    channels_last: bool = False,
    repeats: int = 3,
) -> dict[str, Any]:
    """FLOP/s of a 3x3 convolution (channels in = out, same padding): the forward pass, or the weight
    gradient that backward computes ('weight_grad')."""
    if direction not in ("forward", "weight_grad"):
        raise ValueError(f"direction must be 'forward' or 'weight_grad', not {direction!r}")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator(device="cpu").manual_seed(0)
    with math_mode(mode) as dtype:
        x = torch.randn(batch, channels, size, size, generator=g).to(device, dtype).contiguous(memory_format=fmt)
        w = torch.randn(channels, channels, 3, 3, generator=g).to(device, dtype).contiguous(memory_format=fmt)
        if direction == "forward":
            seconds = _timed(lambda: F.conv2d(x, w, padding=1), device, repeats)
        else:
            w.requires_grad_(True)
            grad_out = torch.ones(batch, channels, size, size, device=device, dtype=dtype).contiguous(memory_format=fmt)
            seconds = _timed(lambda: torch.autograd.grad(F.conv2d(x, w, padding=1), w, grad_out), device, repeats)
    flops = 2 * batch * channels * channels * 9 * size * size
    return dict(
        mode=mode, direction=direction, channels_last=channels_last, seconds=seconds, flops_per_s=flops / seconds
    )


# ---------------------------------------------------------------------- runs across precisions
def precision_runs(
    config: TrainConfig,
    precisions: Iterable[str],
    seeds: int,
    prefix: str = "mp",
    cache: dict | None = None,
    **launch_kw: Any,
) -> dict[str, list[dict]]:
    """One training job per precision and seed, all else equal; records grouped by precision."""
    cache = {} if cache is None else cache
    if seeds < 1:
        raise ConfigError(f"seeds={seeds}: run each precision at least once (2 or more show the spread).")
    runs: dict[str, list[dict]] = {}
    for precision in precisions:
        for seed in range(seeds):
            name = f"{prefix}-{precision}-seed{seed}"
            runs.setdefault(precision, []).append(
                run_cached(config.replace(precision=precision, seed=seed), name, cache, **launch_kw)
            )
    return runs


def run_cached(config: TrainConfig, name: str, cache: dict, **launch_kw: Any) -> dict:
    """launch.run, once per configuration: a speed comparison reuses a parity run that has the same config."""
    from fasttrain import launch

    key = launch.config_hash(config)
    if key not in cache:
        cache[key] = launch.run(config, name=name, **launch_kw)
    return cache[key]


def _spread(values: list[float]) -> dict[str, float]:
    return dict(mean=statistics.fmean(values), min=min(values), max=max(values))


def parity_summary(runs: dict[str, list[dict]], last_steps: int = 0) -> list[dict[str, Any]]:
    """Per precision: final validation accuracy and final training loss (mean of the last `last_steps`
    steps, default a quarter of the run) over seeds, step time, throughput, memory, skipped steps."""
    rows = []
    for precision, records in runs.items():
        k = last_steps or max(1, len(records[0]["loss"]["values"]) // 4)
        rows.append(
            dict(
                precision=precision,
                seeds=len(records),
                accuracy=_spread([r["final_val_accuracy"] for r in records]),
                final_loss=_spread([statistics.fmean(r["loss"]["values"][-k:]) for r in records]),
                step_time_s=statistics.median(r["timing"]["step_time_s"]["median"] for r in records),
                images_per_s=statistics.median(r["throughput"]["images_per_s"] for r in records),
                peak_memory_bytes=max(r["memory"]["peak_bytes"] for r in records),
                skipped_steps=[r.get("loss_scale", {}).get("skipped_steps", 0) for r in records],
            )
        )
    return rows


def parity_verdict(rows: list[dict], reference: str = "32-true") -> list[str]:
    """Whether each precision's accuracy range overlaps the reference's run-to-run range, from the numbers."""
    ref = next(r for r in rows if r["precision"] == reference)
    lines = []
    for r in rows:
        if r is ref:
            continue
        a, b = r["accuracy"], ref["accuracy"]
        gap = 100 * (a["mean"] - b["mean"])
        overlap = a["min"] <= b["max"] and b["min"] <= a["max"]
        where = (
            "inside the seed-to-seed range, so no difference is measurable at this budget"
            if overlap
            else "outside the seed-to-seed range: a real difference at this budget"
        )
        lines.append(
            f"{r['precision']}: accuracy {100 * a['mean']:.1f}% vs {reference} {100 * b['mean']:.1f}% "
            f"({gap:+.1f} points), ranges [{100 * a['min']:.1f}, {100 * a['max']:.1f}] and "
            f"[{100 * b['min']:.1f}, {100 * b['max']:.1f}]: {where}"
        )
    return lines


def timed_steps(records: list[dict]) -> list[float]:
    """Every step time after each record's warm-up, pooled over records (e.g. the seeds of one setting)."""
    return [t for r in records for t in r["timing"]["step_times_s"][r["timing"]["timing_warmup_steps"] :]]


def speedups(runs: dict[str, list[dict]], baseline: str) -> list[dict[str, Any]]:
    """Throughput (global batch / median of the pooled timed steps) and peak memory of each labelled set of
    records against the baseline's, computed from the records."""

    def rate(records):
        return records[0]["config"]["global_batch_size"] / statistics.median(timed_steps(records))

    base = runs[baseline]
    base_memory = max(r["memory"]["peak_bytes"] for r in base)
    rows = []
    for label, records in runs.items():
        ratio = rate(records) / rate(base)
        memory = max(r["memory"]["peak_bytes"] for r in records)
        rows.append(
            dict(
                label=label,
                runs=len(records),
                timed_steps=len(timed_steps(records)),
                images_per_s=rate(records),
                step_time_s=statistics.median(timed_steps(records)),
                speedup=ratio,
                verdict="baseline" if label == baseline else ("faster" if ratio > 1 else "slower"),
                peak_memory_bytes=memory,
                memory_kind=records[0]["memory"]["kind"],
                memory_ratio=memory / base_memory,
            )
        )
    return rows


def reference_speedups(records: list[dict]) -> list[dict[str, Any]]:
    """Recorded runs (results/reference/) against the strict-fp32 record of the same device and image size."""

    def key(r):
        return r["environment"]["device_name"], r["config"]["image_size"], r["config"]["width"]

    def is_fp32(r):
        c = r["config"]
        return c["precision"] in ("32-true", "32") and c["matmul_precision"] == "highest" and not c["channels_last"]

    baselines: dict[Any, dict] = {}
    for r in sorted(records, key=lambda r: r["config"]["global_batch_size"]):
        if is_fp32(r):
            baselines.setdefault(key(r), r)
    rows = []
    for r in records:
        base = baselines.get(key(r))
        c = r["config"]
        rows.append(
            dict(
                name=r.get("name"),
                device=r["environment"]["device_name"],
                precision=c["precision"],
                matmul_precision=c["matmul_precision"],
                channels_last=c["channels_last"],
                batch=c["global_batch_size"],
                image_size=c["image_size"],
                images_per_s=r["throughput"]["images_per_s_per_device"],
                peak_memory_bytes=r["memory"]["peak_bytes"],
                speedup=(
                    r["throughput"]["images_per_s_per_device"] / base["throughput"]["images_per_s_per_device"]
                    if base
                    else None
                ),
            )
        )
    return rows


# ---------------------------------------------------------------------- tables and figures
def markdown_table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows])


def _save(fig, name: str | None):
    from fasttrain.plots import _save as save

    return save(fig, name)


def plot_exponents(histograms: dict[str, tuple[list[int], list[int]]], save_as: str | None = None):
    """Histogram of binary exponents with fp16's limits: below 2^-24 a value flushes to zero."""
    import matplotlib.pyplot as plt

    fp16 = format_limits(5, 10)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for name, (exps, counts) in histograms.items():
        total = sum(counts)
        ax.step(exps, [c / total for c in counts], where="mid", label=name)
    # Bins are integer exponents e (2^e <= |g| < 2^(e+1)), drawn at x = e.
    ax.axvspan(-150, -25.5, color="red", alpha=0.08, label="fp16: rounds to zero (|g| < 2^-25)")
    ax.axvspan(-25.5, -14.5, color="orange", alpha=0.08, label="fp16: subnormal, fewer bits (2^-25 .. 2^-14)")
    ax.axvline(15.5, color="red", ls="--", lw=1, label=f"fp16 max {fp16['max']:,.0f}: 2^16 and above overflow")
    lo = min(min(e) for e, _ in histograms.values())
    ax.set(
        xlim=(min(lo, -30) - 1, 18),
        xlabel="binary exponent e (2^e <= |g| < 2^(e+1))",
        ylabel="fraction of nonzero values",
        title="where real gradients fall against fp16's range",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, save_as)


def plot_scale_sweep(sweeps: dict[str, list[dict]], save_as: str | None = None):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    for name, rows in sweeps.items():
        x = [torch.tensor(r["scale"]).log2().item() for r in rows]
        (line,) = ax.plot(x, [100 * r["underflow"] for r in rows], "o-", label=f"{name}: flushed to zero")
        ax.plot(x, [100 * r["overflow"] for r in rows], "x--", color=line.get_color(), label=f"{name}: overflow to inf")
    ax.set(
        xlabel="static loss scale (log2)", ylabel="% of nonzero gradient values", title="static loss scaling in fp16"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, save_as)


def plot_loss_scale(records: list[dict], save_as: str | None = None):
    """The dynamic loss scale after every step of 16-mixed runs; skipped steps marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for r in records:
        ls = r["loss_scale"]
        steps, values = [0] + ls["steps"], [ls["initial"]] + ls["values"]
        (line,) = ax.step(steps, values, where="post", label=f"{r.get('name')} ({ls['skipped_steps']} skipped)")
        skipped = [s for s, k in zip(ls["steps"], ls["skipped"]) if k]
        ax.plot(skipped, [v for v, k in zip(ls["values"], ls["skipped"]) if k], "x", color=line.get_color(), ms=9)
    ax.set_yscale("log", base=2)
    ax.set(
        xlabel="optimizer step", ylabel="loss scale", title="GradScaler: x = overflow found, step skipped, scale halved"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, save_as)


def plot_parity(runs: dict[str, list[dict]], save_as: str | None = None):
    """Training loss per step (mean over seeds, band = min..max) and final validation accuracy per precision."""
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (precision, records) in enumerate(runs.items()):
        losses = [r["loss"]["values"] for r in records]
        n = min(len(v) for v in losses)
        steps = list(range(1, n + 1))
        per_step = list(zip(*[v[:n] for v in losses]))
        (line,) = ax_loss.plot(
            steps, [statistics.fmean(s) for s in per_step], label=f"{precision} ({len(records)} seeds)"
        )
        ax_loss.fill_between(
            steps, [min(s) for s in per_step], [max(s) for s in per_step], color=line.get_color(), alpha=0.2
        )
        accs = [r["final_val_accuracy"] for r in records]
        ax_acc.plot([i] * len(accs), accs, "o", color=line.get_color())
        ax_acc.errorbar(
            [i],
            [statistics.fmean(accs)],
            yerr=[[statistics.fmean(accs) - min(accs)], [max(accs) - statistics.fmean(accs)]],
            fmt="_",
            color=line.get_color(),
            capsize=8,
            ms=20,
        )
    ax_loss.set(xlabel="optimizer step", ylabel="training loss", title="loss: mean over seeds, band = min..max")
    ax_acc.set(
        xticks=range(len(runs)),
        xticklabels=list(runs),
        ylabel="final validation accuracy",
        title="accuracy: each seed, and the mean",
    )
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_loss.legend()
    fig.tight_layout()
    return _save(fig, save_as)


def plot_rates(rows: list[dict], key: str, title: str, save_as: str | None = None):
    """Bars of FLOP/s (or images/s) by label."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    labels = [r["label"] for r in rows]
    ax.bar(labels, [r[key] for r in rows], color="tab:blue")
    ax.set(title=title, ylabel=key.replace("_", " "))
    ax.tick_params(axis="x", rotation=20)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, save_as)
