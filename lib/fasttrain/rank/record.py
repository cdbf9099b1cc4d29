"""The result record a finished job writes: what chapters plot and readers check (rank 0 builds it)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from fasttrain.config import TrainConfig
from fasttrain.rank.cache import cached_number, key_of
from fasttrain.rank.callbacks import LossScaleRecorder, StepRecorder
from fasttrain.rank.measure import noise_scale, noise_scale_over, peak_flops, peak_memory_bytes, summarize
from fasttrain.results import environment, now_iso


def time_to_target(validation: list[dict], target: float | None) -> float | None:
    """Training seconds to the first validation at or above the target (None: never reached)."""
    if target is None:
        return None
    return next((v["train_time_s"] for v in validation if v["accuracy"] >= target), None)


def build_record(config: TrainConfig, recorder: StepRecorder, trainer, losses: list[float], **extra) -> dict[str, Any]:
    """The record of the job just trained; `extra` (wall_time_s, resumed_from_step) comes from the caller."""
    device = recorder.device  # not module.device: Lightning moves the module back to the CPU at teardown
    warm = config.timing_warmup_steps
    timed = recorder.step_times[warm:]
    step = summarize(timed)
    images_per_s = config.global_batch_size / step["median"] if timed else float("nan")
    env = environment()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else env["cpu"]
    memory, memory_kind = peak_memory_bytes(device)
    return dict(
        name=config.name,
        created=now_iso(),
        config=config.to_dict(),
        environment={**env, "device": str(device), "device_name": name, "world_size": trainer.world_size},
        steps=trainer.global_step,
        resumed_from_step=extra.get("resumed_from_step"),
        timing=dict(
            step_time_s=step,
            step_times_s=recorder.step_times,
            timing_warmup_steps=warm,
            wall_time_s=extra.get("wall_time_s"),
            train_time_s=sum(recorder.step_times),
        ),
        throughput=dict(images_per_s=images_per_s, images_per_s_per_device=images_per_s / config.world_size),
        communication=communication(config, recorder),
        flops=flops(config, device, images_per_s / config.world_size),
        loss=dict(steps=list(range(1, len(losses) + 1)), values=losses),
        validation=recorder.validation,
        final_val_accuracy=recorder.validation[-1]["accuracy"],
        target_accuracy=config.target_accuracy,
        time_to_target_s=time_to_target(recorder.validation, config.target_accuracy),
        memory=dict(peak_bytes=memory, kind=memory_kind),
    )


def communication(config: TrainConfig, recorder: StepRecorder) -> dict[str, Any]:
    warm = config.timing_warmup_steps
    return dict(
        hook=config.comm_hook if recorder.comm is not None else "none (no DDP)",
        measured_on="rank 0: union of each bucket's all-reduce, launch to completion",
        comm_time_s=summarize(recorder.comm_times[warm:]),
        comm_times_s=recorder.comm_times,
        bytes_per_step=recorder.comm_bytes[-1] if recorder.comm_bytes else 0,
        buckets_per_step=recorder.comm_buckets[-1] if recorder.comm_buckets else 0,
        exposed_measured_on="rank 0: last bucket's launch to the end of backward (waiting for the network and peers)",
        exposed_time_s=summarize(recorder.exposed_times[warm:]),
        exposed_times_s=recorder.exposed_times,
    )


def flops(config: TrainConfig, device: torch.device, images_per_s_per_device: float) -> dict[str, Any]:
    per_image = train_flops_per_image(config)
    peak, peak_source = peak_flops(device, config.precision, config.matmul_precision)
    achieved = per_image * images_per_s_per_device
    return dict(
        per_image_train=per_image,
        achieved_per_s_per_device=achieved,
        peak_per_s=peak,
        peak_source=peak_source,
        mfu=(achieved / peak) if peak else None,
    )


def train_flops_per_image(config: TrainConfig) -> int:
    """Lightning's count of one image's training FLOPs (models.flops_per_image), kept per machine: the
    count depends only on the model's shape, the image size and the counting code, all in the key."""
    import lightning
    import torchvision

    from fasttrain.rank import models

    args = (config.num_classes, config.in_channels, config.width, config.small_input)
    source = hashlib.sha256(Path(models.__file__).read_bytes()).hexdigest()
    versions = (torch.__version__, torchvision.__version__, lightning.__version__)  # the blocks, the counter
    key = key_of("train flops per image", *versions, source, args, config.image_size)

    def count() -> int:
        return models.flops_per_image(lambda: models.resnet50(*args), config.image_size, config.in_channels)

    return cached_number(key, count, "flops")


def add_optional_parts(
    record: dict, config: TrainConfig, recorder: StepRecorder, scales: LossScaleRecorder, local_sq: list[float]
) -> None:
    """The loss scale (16-mixed) and the gradient noise scale (measure_noise_scale), where the job had them."""
    loss_scale = scales.summary(config.loss_scale_growth_interval)
    if loss_scale:
        record["loss_scale"] = loss_scale
    if config.measure_noise_scale:
        b_small = config.global_batch_size // config.world_size
        estimates = noise_scale(local_sq, recorder.global_sq_norms, b_small, config.global_batch_size)
        record["gradient_noise"] = dict(
            b_small=b_small,
            b_big=config.global_batch_size,
            local_sq_norm=local_sq,
            global_sq_norm=recorder.global_sq_norms,
            **estimates,
            b_simple=noise_scale_over(estimates),
        )
