"""Mistakes Lightning would report late or obscurely, checked in every rank before training, and said plainly."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import torch

from fasttrain.config import ConfigError, TrainConfig
from fasttrain.devices import cpu_cores, gpu_count
from fasttrain.references import CPU_BF16_SLOWDOWN


def check_hardware(config: TrainConfig, port: bool = True) -> None:
    """Mistakes Lightning would report late or obscurely, reported first and plainly."""
    if config.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator={config.accelerator!r} but this machine has no usable CUDA GPU; "
            "use accelerator='cpu' (or 'auto')."
        )
    on_gpu = config.on_gpu
    if on_gpu and config.devices > gpu_count():
        raise ConfigError(f"devices={config.devices} but this machine has {gpu_count()} GPU(s).")
    cores = cpu_cores()
    if not on_gpu and config.devices > cores:
        raise ConfigError(
            f"devices={config.devices} CPU processes on a machine with {cores} cores: each "
            f"rank needs at least one core of its own. Use devices <= {cores}."
        )
    if not on_gpu and config.precision == "16-true":
        raise ConfigError(
            f"precision={config.precision!r}: fp16 is a GPU format; on a CPU use 'bf16-mixed' "
            "(expect it to be slower without bf16 units: chapter 02 measures why) or '32-true'."
        )
    if not on_gpu and config.precision == "16-mixed":
        # It runs (fp16 autocast and a GradScaler, as on a GPU), so chapter 02 can show loss scaling on a CPU.
        _warn(
            config,
            "precision='16-mixed' on a CPU runs, but slowly: most CPUs have few fast fp16 kernels (the "
            "weight-gradient convolution falls back to a slow path), so expect each step to take many "
            "times as long as in '32-true' (chapter 02 measures it on this machine). For speed on a CPU "
            "use '32-true' (or 'bf16-mixed' on a CPU with bf16 units); keep 16-mixed CPU runs to a handful "
            f"of steps. Reference figure, for bf16: {CPU_BF16_SLOWDOWN.cite()}.",
            in_job=port,
        )
    if not on_gpu and config.precision.startswith("bf16") and _cpu_has_bf16_units() is False:
        _warn(
            config,
            f"precision={config.precision!r} on a CPU without bf16 units (no AVX512_BF16 or AMX in "
            f"/proc/cpuinfo): expect it to be much slower than '32-true' (chapter 02 measures it on this "
            f"machine). Reference figure: {CPU_BF16_SLOWDOWN.cite()}.",
            in_job=port,
        )
    if config.num_nodes > 1 and not _in_cluster_environment():
        raise ConfigError(
            f"num_nodes={config.num_nodes} needs a cluster environment: start one process per "
            "node with torchrun, srun, or NODE_RANK/MASTER_ADDR/MASTER_PORT set (README: "
            "'More than one machine')."
        )
    if on_gpu and config.precision.startswith("bf16") and not torch.cuda.is_bf16_supported(including_emulation=False):
        name = torch.cuda.get_device_name(0)
        raise ConfigError(
            f"precision={config.precision!r}: {name} has no bf16 units (they came with Ampere, compute "
            "capability 8.0); torch would emulate bf16 slowly. Use '16-mixed' (fp16 with loss "
            "scaling, chapter 02) or '32-true'."
        )
    if port:  # the launcher checks before starting anything; the port is then torchrun's to pick
        _check_master_port(config)


def _warn(config: TrainConfig, message: str, in_job: bool = True) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)
    if in_job and global_rank(config) == 0:  # into the job's log (and beside its progress bar)
        print(f"[fasttrain] warning: {message}", flush=True)


def _cpu_has_bf16_units() -> bool | None:
    """Whether this CPU has bf16 arithmetic (AVX512_BF16 or AMX); None where /proc/cpuinfo cannot say."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return None
    if not flags:
        return None
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def _check_master_port(config: TrainConfig) -> None:
    """A MASTER_PORT that something else holds makes rank 0 fail obscurely (or its peers wait): say so first."""
    port = os.environ.get("MASTER_PORT")
    uses_ddp = config.world_size > 1 or config.strategy == "ddp"
    # torchrun's agent itself listens on the port; on other nodes and ranks the port is someone else's to open.
    if not port or not uses_ddp or global_rank(config) != 0 or "TORCHELASTIC_RUN_ID" in os.environ:
        return
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free to reuse
        try:
            s.bind(("", int(port)))
        except OSError as exc:
            raise ConfigError(
                f"MASTER_PORT={port} is already in use on this machine ({exc.strerror}): another "
                "training job (or one that has not exited yet) holds it. Pick another port, or "
                "leave MASTER_PORT unset and the launcher picks a free one."
            ) from None


def _in_cluster_environment() -> bool:
    return any(k in os.environ for k in ("NODE_RANK", "GROUP_RANK", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID"))


def global_rank(config: TrainConfig | None) -> int:
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    devices = config.devices if config else 1
    return int(os.environ.get("NODE_RANK", 0)) * devices + int(os.environ.get("LOCAL_RANK", 0))
