"""TrainConfig.validate()'s checks: every mistake we have seen a newcomer make, as a message that says what to do.

Kept apart from config.py so that the configuration itself (fields, profiles, parsing) stays short.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields
from typing import TYPE_CHECKING, get_type_hints

from fasttrain.config import (
    ACCELERATORS,
    COMM_HOOKS,
    DATASETS,
    OPTIMIZERS,
    PRECISION_ALIASES,
    PRECISIONS,
    PROFILES,
    SCHEDULES,
    STRATEGIES,
    ConfigError,
    _unknown,
)

if TYPE_CHECKING:
    from fasttrain.config import TrainConfig


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_config(config: TrainConfig) -> None:
    _check_types(config)
    _check_choices(config)
    _check_sizes(config)
    _check_training(config)
    _check_gpu_profile(config)
    check_memory(config)


def _check_types(config: TrainConfig) -> None:
    """Numbers that a dataclass, unlike from_dict, takes as given: a boolean (True == 1 to Python) or an
    infinity (int(64 * inf) raises OverflowError deep in the model)."""
    hints = get_type_hints(type(config))
    for f in fields(config):
        value, hint = getattr(config, f.name), str(hints[f.name])
        if "bool" in hint or not ("int" in hint or "float" in hint) or value is None:
            continue
        check(not isinstance(value, bool), f"{f.name}={value!r}: a boolean is not a number; give a number.")
        check(
            not isinstance(value, float) or math.isfinite(value),
            f"{f.name}={value!r}: give a finite number" + (" (1.0 is ResNet-50)." if f.name == "width" else "."),
        )


def _check_choices(config: TrainConfig) -> None:
    check(
        config.precision not in PRECISION_ALIASES,
        f"precision={config.precision!r}: {config.precision!r} is Lightning's short name for "
        f"{PRECISION_ALIASES.get(config.precision)!r}; write that (TrainConfig.from_dict and the command line "
        "translate it for you).",
    )
    check(config.data in DATASETS, _unknown("data", config.data, DATASETS))
    check(config.optimizer in OPTIMIZERS, _unknown("optimizer", config.optimizer, OPTIMIZERS))
    check(config.schedule in SCHEDULES, _unknown("schedule", config.schedule, SCHEDULES))
    check(config.comm_hook in COMM_HOOKS, _unknown("comm_hook", config.comm_hook, COMM_HOOKS))
    check(config.precision in PRECISIONS, _unknown("precision", config.precision, PRECISIONS))
    check(config.accelerator in ACCELERATORS, _unknown("accelerator", config.accelerator, ACCELERATORS))
    check(config.strategy in STRATEGIES, _unknown("strategy", config.strategy, STRATEGIES))
    check(
        not (config.strategy == "single" and config.world_size > 1),
        f"strategy='single' runs one process, but devices x num_nodes = {config.world_size}.",
    )
    check(config.profile in PROFILES, _unknown("profile", config.profile, tuple(PROFILES)))


def _check_sizes(config: TrainConfig) -> None:
    check(config.devices >= 1, f"devices={config.devices}: use 1 or more devices (processes per node).")
    check(config.num_nodes >= 1, f"num_nodes={config.num_nodes}: use 1 or more nodes.")
    check(config.width > 0, f"width={config.width}: the width factor must be positive (1.0 is ResNet-50).")
    check(config.image_size >= 8, f"image_size={config.image_size}: use 8 pixels or more.")
    check(config.in_channels in (1, 3), f"in_channels={config.in_channels}: use 1 (grey) or 3 (RGB).")
    check(config.max_steps >= 1, f"max_steps={config.max_steps}: train for at least one step.")
    check(config.global_batch_size >= 1, "global_batch_size must be at least 1.")
    check(config.grad_accumulation >= 1, "grad_accumulation must be at least 1.")
    per_step = config.world_size * config.grad_accumulation
    check(
        config.global_batch_size % per_step == 0,
        f"global_batch_size={config.global_batch_size} does not split evenly over "
        f"{config.world_size} rank(s) x {config.grad_accumulation} accumulation step(s); pick a "
        f"multiple of {per_step}, e.g. {max(per_step, config.global_batch_size // per_step * per_step)}.",
    )


def _check_training(config: TrainConfig) -> None:
    check(config.lr > 0, f"lr={config.lr}: the learning rate must be positive.")
    check(
        0 <= config.warmup_steps < config.max_steps or config.warmup_steps == 0,
        f"warmup_steps={config.warmup_steps} must be shorter than max_steps={config.max_steps}.",
    )
    check(
        config.timing_warmup_steps < config.max_steps,
        f"timing_warmup_steps={config.timing_warmup_steps} leaves no timed step of "
        f"max_steps={config.max_steps}; lower it or train longer.",
    )
    check(
        config.trace_steps == 0 or config.timing_warmup_steps + config.trace_steps + 2 <= config.max_steps,
        f"trace_steps={config.trace_steps}: the profiler records after the {config.timing_warmup_steps} warm-up "
        f"steps and one of its own, and stops during the step after, so max_steps must be at least "
        f"{config.timing_warmup_steps + config.trace_steps + 2} (it is {config.max_steps}).",
    )
    check(
        0 <= config.label_smoothing < 1,
        f"label_smoothing={config.label_smoothing}: give a fraction below 1, e.g. 0.1 (0: plain cross-entropy).",
    )
    check(
        not config.test_full or config.data == "fashion_mnist",
        f"test_full=True measures the whole Fashion-MNIST test split; with data={config.data!r} leave it off "
        "(validation covers val_samples of the held-out images).",
    )
    check(
        config.max_train_time_s is None or config.max_train_time_s > 0,
        f"max_train_time_s={config.max_train_time_s}: give seconds, or None for no time limit.",
    )
    check(config.trace_steps >= 0, f"trace_steps={config.trace_steps}: use 0 (no trace) or a number of steps.")
    check(
        config.threads_per_rank is None or config.threads_per_rank >= 1,
        "threads_per_rank must be 1 or more (or None for cores / ranks).",
    )
    check(
        config.target_accuracy is None or 0 < config.target_accuracy <= 1,
        f"target_accuracy={config.target_accuracy}: give a fraction, e.g. 0.85.",
    )
    check(
        config.matmul_precision in ("highest", "high", "medium"),
        _unknown("matmul_precision", config.matmul_precision, ("highest", "high", "medium")),
    )
    check(
        config.checkpoint_every_steps >= 0,
        f"checkpoint_every_steps={config.checkpoint_every_steps}: use 0 (no checkpoints) or a number of steps.",
    )
    check(
        config.val_every_steps >= 0,
        f"val_every_steps={config.val_every_steps}: use 0 (validate once, at the end) or a number of steps.",
    )
    check(
        config.process_group_timeout_s >= 1,
        f"process_group_timeout_s={config.process_group_timeout_s}: use 1 second or more (default 300).",
    )
    check(
        config.train_samples is None or config.train_samples >= config.global_batch_size,
        f"train_samples={config.train_samples} is fewer than one global batch of {config.global_batch_size}; "
        "use more samples (None: the whole training set) or a smaller global_batch_size.",
    )
    check(
        config.val_samples is None or config.val_samples >= 1,
        f"val_samples={config.val_samples}: use 1 or more (None: the whole validation set).",
    )
    check(
        config.loss_scale_growth_interval >= 1,
        f"loss_scale_growth_interval={config.loss_scale_growth_interval}: use 1 or more steps "
        "(torch's GradScaler default is 2000).",
    )


def _check_gpu_profile(config: TrainConfig) -> None:
    """The gpu profile is ResNet-50 at full width for 1,000 steps: hours on a CPU, so only when asked for."""
    if config.profile != "gpu" or config.accept_hours_on_cpu or config.on_gpu:
        return
    why = "accelerator='cpu'" if config.accelerator == "cpu" else "this machine has no usable CUDA GPU"
    p = PROFILES["gpu"]
    raise ConfigError(
        f"profile='gpu' is the full-size run (ResNet-50 at width {p['width']}, batch {p['global_batch_size']}, "
        f"{p['max_steps']} steps), but this job would train on the CPU ({why}): hours of work (about 4.7 on a "
        "2-core machine). Use profile='cpu' (minutes) or 'smoke' (seconds), or 'auto' to pick by the hardware; "
        "to train it on the CPU anyway, pass accept_hours_on_cpu=True (--accept_hours_on_cpu true)."
    )


# ---------------------------------------------------------------------- memory
def resnet50_parameters(num_classes: int, in_channels: int, width: float, small_input: bool) -> int:
    """ResNet-50's parameter count at a width factor, counted from its shapes (rank/models.py) without
    building it: a width that needs terabytes must be refused before anything allocates them."""
    base = max(8, int(round(64 * width)))
    total = in_channels * base * (3 * 3 if small_input else 7 * 7) + 2 * base  # stem convolution + batch norm
    inplanes = base
    for i, blocks in enumerate((3, 4, 6, 3)):
        planes = base * 2**i
        for block in range(blocks):
            total += inplanes * planes + planes * planes * 9 + planes * planes * 4 + 2 * (planes + planes + 4 * planes)
            if block == 0 and (i > 0 or inplanes != 4 * planes):  # the downsample path
                total += inplanes * 4 * planes + 2 * 4 * planes
            inplanes = 4 * planes
    return total + inplanes * num_classes + num_classes  # the classifier


def available_memory(on_gpu: bool) -> tuple[int, str] | None:
    """(bytes, how it was measured) a rank may use: a GPU's memory, or the host's available memory."""
    if on_gpu:
        import torch

        if not torch.cuda.is_available():
            return None
        total = torch.cuda.get_device_properties(0).total_memory
        return total, f"{total / 2**30:.1f} GiB on {torch.cuda.get_device_name(0)}"
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        free = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return free, f"{free / 2**30:.1f} GiB available on this machine"


def check_memory(config: TrainConfig) -> None:
    """A lower bound, weights + gradients + optimizer state in fp32 (activations come on top), against the
    memory there is. The hardware is asked only for a model above 1 GiB, so the common case costs nothing."""
    params = resnet50_parameters(config.num_classes, config.in_channels, config.width, config.small_input)
    copies = 4 if config.optimizer == "adamw" else 3  # adamw keeps two moments; sgd and lars one momentum
    need = params * 4 * copies
    if need < 2**30:
        return
    on_gpu = config.on_gpu
    ranks = 1 if on_gpu else config.devices  # CPU ranks share the host's memory; each GPU has its own
    have = available_memory(on_gpu)
    if have is None or need * ranks <= have[0]:
        return
    per = f"{ranks} ranks x " if ranks > 1 else ""
    raise ConfigError(
        f"width={config.width}: ResNet-50 at this width has {params:,} parameters, which need at least "
        f"{per}{need / 2**30:.1f} GiB for weights, gradients and {config.optimizer} state in fp32 (activations "
        f"come on top), but there are {have[1]}. Lower width (1.0 is ResNet-50: 23.5M parameters for 10 "
        "classes; the parameter count grows with width squared)."
    )
