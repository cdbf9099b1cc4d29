"""One training job on any devices and nodes -> one result record.

    python -m fasttrain.run --profile smoke --accelerator cpu --devices 2 --record build/r.json
    python -m fasttrain.run --config my.yaml --lr 0.2          # a file, then flags on top
    torchrun --nnodes 2 --nproc-per-node 4 ... -m fasttrain.run --num_nodes 2 --devices 4 ...

With devices > 1, Lightning's DDP strategy re-runs this module once per extra rank, unless something
started them all (fasttrain.launch on one machine, torchrun or SLURM); every rank runs `main`, rank 0
writes the record.

With checkpoint_every_steps > 0 the job saves its state (weights, optimizer, schedule, data position,
the per-step measurements so far) in the run folder; started again with the same config after a
crash or a pre-emption, it continues from there, and the record covers every step.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

from fasttrain.config import ConfigError, TrainConfig, config_from_argv
from fasttrain.launch import note_if_killed, write_error_note
from fasttrain.rank.measure import (
    CommTimer,
    LossScaleRecorder,
    StepRecorder,
    noise_scale,
    noise_scale_over,
    peak_flops,
    peak_memory_bytes,
    summarize,
)
from fasttrain.references import CPU_BF16_SLOWDOWN
from fasttrain.results import environment, now_iso, write_record

_RUNNING: dict[str, Any] = {}  # this process's config and trainer, for reports on ranks that died silently


def check_hardware(config: TrainConfig) -> None:
    """Mistakes Lightning would report late or obscurely, reported first and plainly."""
    if config.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator={config.accelerator!r} but this machine has no usable CUDA GPU; "
            "use accelerator='cpu' (or 'auto')."
        )
    on_gpu = config.on_gpu
    if on_gpu and config.devices > torch.cuda.device_count():
        raise ConfigError(f"devices={config.devices} but this machine has {torch.cuda.device_count()} GPU(s).")
    cores = os.cpu_count() or 1
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
            "precision='16-mixed' on a CPU runs, but slowly: CPUs have few fast fp16 kernels (the "
            "weight-gradient convolution falls back to a slow path), so expect each step to take many "
            "times as long as in '32-true'. For speed on a CPU use '32-true' (or 'bf16-mixed' on a CPU "
            "with bf16 units); keep 16-mixed CPU runs to a handful of steps. Measured: "
            f"{CPU_BF16_SLOWDOWN.cite()}, and fp16 slower still.",
        )
    if not on_gpu and config.precision.startswith("bf16") and _cpu_has_bf16_units() is False:
        _warn(
            config,
            f"precision={config.precision!r} on a CPU without bf16 units (no AVX512_BF16 or AMX in "
            f"/proc/cpuinfo): expect it to be much slower than '32-true'. Measured: "
            f"{CPU_BF16_SLOWDOWN.cite()}.",
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
    _check_master_port(config)


def _warn(config: TrainConfig, message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)
    if _global_rank(config) == 0:
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
    if not port or not uses_ddp or _global_rank(config) != 0 or "TORCHELASTIC_RUN_ID" in os.environ:
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


def _configure_threads(config: TrainConfig) -> None:
    if not config.on_gpu:
        # Each rank gets its own cores, so N ranks do not fight over the same ones.
        torch.set_num_threads(config.threads_per_rank or max(1, (os.cpu_count() or 1) // config.devices))


def _ddp_strategy_class():
    from lightning.pytorch.strategies import DDPStrategy

    class HookedDDPStrategy(DDPStrategy):
        """Lightning registers DDP comm hooks on CUDA only, a limit of torch 1.8's; torch >= 1.9 runs
        them on gloo too, and the course measures CPU communication with one."""

        def _register_ddp_hooks(self) -> None:
            if self._ddp_comm_hook is not None:
                self.model.register_comm_hook(state=self._ddp_comm_state, hook=self._ddp_comm_hook)

    return HookedDDPStrategy


def checkpoint_dir(record_path: str | None, config: TrainConfig | None = None) -> Path | None:
    """Where a job keeps its checkpoint: the launcher's run folder, else beside the record, else the run
    folder the launcher would use. Every rank must reach the same decision: ModelCheckpoint takes part in
    collectives, so a callback on rank 0 alone (say, only node 0 was given --record) would hang the job."""
    if os.environ.get("FASTTRAIN_RUN_DIR"):
        return Path(os.environ["FASTTRAIN_RUN_DIR"]) / "checkpoints"
    if record_path:
        return Path(record_path).with_name(Path(record_path).stem + ".checkpoints")
    if config is None:
        return None
    from fasttrain.launch import config_hash
    from fasttrain.paths import runs_dir

    return Path(config.out_dir or runs_dir()) / f"{config.name or 'run'}-{config_hash(config)}" / "checkpoints"


def _checkpoint_callback(config: TrainConfig, folder: Path, recorder: StepRecorder):
    from lightning.pytorch.callbacks import ModelCheckpoint

    class OffTheClockCheckpoint(ModelCheckpoint):
        """Lightning's ModelCheckpoint (only last.ckpt, rewritten atomically every N steps), whose saving time
        is taken off the step clock: a checkpoint is bookkeeping, not training. At a step that validates,
        it saves after the validation, so a resumed job keeps that accuracy; at the last step not at all."""

        deferred = False

        def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
            step = trainer.global_step
            if step >= config.max_steps:
                return
            if config.val_every_steps and step % config.val_every_steps == 0:
                self.deferred = step % config.checkpoint_every_steps == 0
                return
            started = time.perf_counter()
            super().on_train_batch_end(trainer, *args, **kwargs)
            recorder.exclude_time(time.perf_counter() - started)

        def on_validation_end(self, trainer, pl_module) -> None:
            super().on_validation_end(trainer, pl_module)
            if self.deferred and not trainer.sanity_checking:
                self.deferred = False
                trainer.save_checkpoint(self.format_checkpoint_name({}, self.CHECKPOINT_NAME_LAST))

    return OffTheClockCheckpoint(
        dirpath=str(folder),
        every_n_train_steps=config.checkpoint_every_steps,
        save_top_k=0,
        save_last=True,
        enable_version_counter=False,
    )


def build_trainer(config: TrainConfig, callbacks: list, comm: CommTimer | None):
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    uses_ddp = config.world_size > 1 or config.strategy == "ddp"
    if uses_ddp:
        hook = dict(ddp_comm_state=comm, ddp_comm_hook=CommTimer.hook) if comm else {}
        strategy: Any = _ddp_strategy_class()(
            timeout=datetime.timedelta(seconds=config.process_group_timeout_s),
            bucket_cap_mb=config.bucket_cap_mb,
            static_graph=config.static_graph,
            **hook,
        )
    else:
        strategy = "auto"
    accelerator = "gpu" if config.accelerator == "cuda" else config.accelerator
    precision: str | None = config.precision
    plugins = None
    if config.precision == "16-mixed":
        # Built here rather than by Lightning, which would turn 16-mixed into bf16-mixed on a CPU, and
        # so that the GradScaler's growth interval comes from the config.
        from lightning.pytorch.plugins.precision import MixedPrecision

        device = "cuda" if config.on_gpu else "cpu"
        scaler = torch.amp.GradScaler(device, growth_interval=config.loss_scale_growth_interval)
        plugins, precision = [MixedPrecision("16-mixed", device, scaler)], None
    steps_per_val = (config.val_every_steps or config.max_steps) * config.grad_accumulation
    return Trainer(
        accelerator=accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=strategy,
        precision=precision,
        plugins=plugins,
        max_steps=config.max_steps,
        max_epochs=-1,
        accumulate_grad_batches=config.grad_accumulation,
        sync_batchnorm=config.sync_batchnorm and config.on_gpu,  # CPU: GlooSyncBatchNorm (module.py)
        val_check_interval=steps_per_val,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )


def train(config: TrainConfig, record_path: str | None = None) -> dict[str, Any] | None:
    """Run the job in this process (and the ranks Lightning starts); rank 0 returns the record."""
    from lightning.pytorch import seed_everything

    from fasttrain.rank.data import build_datamodule
    from fasttrain.rank.models import flops_per_image, resnet50
    from fasttrain.rank.module import ResNetClassifier

    config.validate()
    _RUNNING["config"] = config
    check_hardware(config)
    _configure_threads(config)
    torch.set_float32_matmul_precision(config.matmul_precision)
    # cuDNN convolutions use TF32 by default on Ampere and newer; "highest" must mean true fp32 there too.
    torch.backends.cudnn.allow_tf32 = config.matmul_precision != "highest"
    torch.backends.cudnn.benchmark = True
    # Whole batches come from memory: a DataLoader worker would only add start-up time.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*The number of training batches.*")
    # Our loaders resume mid-epoch by the restored global step (data.py), which Lightning cannot see.
    warnings.filterwarnings("ignore", ".*your dataloader is not resumable.*")
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
    seed_everything(config.seed, workers=True, verbose=False)
    _stop_with_parent()
    _observe_ranks_ourselves()

    uses_ddp = config.world_size > 1 or config.strategy == "ddp"
    exchanges = config.comm_hook in ("timed", "bf16")
    if config.measure_noise_scale and (not uses_ddp or config.world_size < 2 or not exchanges):
        raise ConfigError(
            "measure_noise_scale compares one rank's gradient with the all-reduced one: it "
            "needs 2 or more ranks (devices x num_nodes) and comm_hook 'timed' or 'bf16'."
        )
    comm = None
    if uses_ddp and config.comm_hook != "none":
        comm = CommTimer(
            {"bf16": "bf16", "noop": "noop"}.get(config.comm_hook, "fp32"), grad_norms=config.measure_noise_scale
        )
    recorder = StepRecorder(config.global_batch_size, config.max_steps, comm, config.target_accuracy)
    scale_recorder = LossScaleRecorder()  # records only when a GradScaler runs (16-mixed)
    callbacks: list = [recorder, scale_recorder]
    folder = checkpoint_dir(record_path, config)
    if config.checkpoint_every_steps and folder is not None:
        callbacks.append(_checkpoint_callback(config, folder, recorder))
    last = folder / "last.ckpt" if folder is not None else None
    resume_from = str(last) if config.resume and last is not None and last.exists() else None
    trainer = build_trainer(config, callbacks, comm)
    _RUNNING["trainer"] = trainer
    datamodule = build_datamodule(config)
    module = ResNetClassifier(config)
    if config.compile:
        module.model = torch.compile(module.model)

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if not recorder.validation or recorder.validation[-1]["step"] != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    wall_time = time.perf_counter() - start
    losses = recorder.gathered_losses(trainer)  # collectives: every rank takes part
    local_sq = recorder.gathered_local_sq_norms(trainer)
    _close_process_group()
    if not trainer.is_global_zero:
        return None

    resumed_from = recorder.resumed_from_step if resume_from else None
    device = recorder.device  # not module.device: Lightning moves the module back to the CPU at teardown
    timed = recorder.step_times[config.timing_warmup_steps :]
    step = summarize(timed)
    images_per_s = config.global_batch_size / step["median"] if timed else float("nan")
    flops = flops_per_image(
        lambda: resnet50(config.num_classes, config.in_channels, config.width, config.small_input),
        config.image_size,
        config.in_channels,
    )
    peak, peak_source = peak_flops(device, config.precision, config.matmul_precision)
    per_device = images_per_s / config.world_size
    memory, memory_kind = peak_memory_bytes(device)
    comm_timed = recorder.comm_times[config.timing_warmup_steps :]
    final = recorder.validation[-1]
    record = dict(
        name=config.name,
        created=now_iso(),
        config=config.to_dict(),
        environment=_environment(device, trainer.world_size),
        steps=trainer.global_step,
        resumed_from_step=resumed_from,
        timing=dict(
            step_time_s=step,
            step_times_s=recorder.step_times,
            timing_warmup_steps=config.timing_warmup_steps,
            wall_time_s=wall_time,
            train_time_s=sum(recorder.step_times),
        ),
        throughput=dict(images_per_s=images_per_s, images_per_s_per_device=per_device),
        communication=dict(
            hook=config.comm_hook if comm else "none (no DDP)",
            measured_on="rank 0: launch to completion of each bucket's all-reduce",
            comm_time_s=summarize(comm_timed),
            comm_times_s=recorder.comm_times,
            bytes_per_step=recorder.comm_bytes[-1] if recorder.comm_bytes else 0,
            buckets_per_step=recorder.comm_buckets[-1] if recorder.comm_buckets else 0,
            exposed_measured_on="rank 0: last bucket's launch to the end of backward "
            "(waiting for the network and for peers)",
            exposed_time_s=summarize(recorder.exposed_times[config.timing_warmup_steps :]),
            exposed_times_s=recorder.exposed_times,
        ),
        flops=dict(
            per_image_train=flops,
            achieved_per_s_per_device=flops * per_device,
            peak_per_s=peak,
            peak_source=peak_source,
            mfu=(flops * per_device / peak) if peak else None,
        ),
        loss=dict(steps=list(range(1, len(losses) + 1)), values=losses),
        validation=recorder.validation,
        final_val_accuracy=final["accuracy"],
        target_accuracy=config.target_accuracy,
        time_to_target_s=recorder.time_to_target_s,
        memory=dict(peak_bytes=memory, kind=memory_kind),
    )
    loss_scale = scale_recorder.summary(config.loss_scale_growth_interval)
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
    if config.save_weights and record_path:
        weights = Path(record_path).with_name("weights.pt")
        torch.save({k: v.detach().cpu() for k, v in module.model.state_dict().items()}, weights)
        record["weights_path"] = str(weights)
    if record_path:
        write_record(record, record_path)
        print(f"[fasttrain] record written to {record_path}", flush=True)
        if folder is not None and folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # the record is the finished work; a re-run starts afresh
    return record


def _close_process_group() -> None:
    """Every rank leaves the process group once the last collective is done. A rank that exits with gloo's
    group still open can abort in interpreter teardown ("terminate called without an active exception",
    SIGABRT; pytorch/pytorch#190489), which fails a job that had finished its work."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # no rank tears its end down while a peer still receives the last gather
        dist.destroy_process_group()


def _environment(device: torch.device, world_size: int) -> dict[str, Any]:
    env = environment()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else env["cpu"]
    return {**env, "device": str(device), "device_name": name, "world_size": world_size}


def _global_rank(config: TrainConfig | None) -> int:
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    devices = config.devices if config else 1
    return int(os.environ.get("NODE_RANK", 0)) * devices + int(os.environ.get("LOCAL_RANK", 0))


def main(argv: list[str] | None = None) -> int:
    config = None
    try:
        config, record_path = config_from_argv(argv)
        train(config, record_path)
        return 0
    except ConfigError as exc:
        print(f"fasttrain: configuration error: {exc}", file=sys.stderr, flush=True)
        _write_error(config, f"ConfigError: {exc}\n")
        return 2
    except BaseException:
        text = traceback.format_exc()
        _report_killed_ranks(config)
        _write_error(config, text)
        raise


def _stop_with_parent() -> None:
    """Ranks started by the launcher stop within a second of their parent's death (the launcher, or rank 0
    for the ranks Lightning starts), so a killed notebook kernel leaves no job training unseen."""
    if not os.environ.get("FASTTRAIN_LAUNCHER_PID"):
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:  # an orphan is handed to init (or a subreaper) at once
            time.sleep(0.5)
        _write_error(_RUNNING.get("config"), f"the parent process {parent} is gone (launcher killed?); stopping\n")
        os._exit(3)

    threading.Thread(target=watch, name="fasttrain-parent-watch", daemon=True).start()


def _report_killed_ranks(config: TrainConfig | None, procs: list | None = None) -> list[int]:
    """A rank killed by a signal (OOM killer, kill -9, pre-emption) writes no traceback; rank 0 started the
    other ranks of its node, so it reports them before its own error, which is only a consequence.
    Returns the global ranks of this node's children that have failed."""
    if procs is None:
        trainer = _RUNNING.get("trainer")
        procs = getattr(getattr(getattr(trainer, "strategy", None), "launcher", None), "procs", None) or []
    node_rank, failed = int(os.environ.get("NODE_RANK", 0)), []
    run_dir = os.environ.get("FASTTRAIN_RUN_DIR")
    for local_rank, proc in enumerate(procs, start=1):
        code = proc.poll()
        rank = node_rank * (config.devices if config else 1) + local_rank
        if code:
            failed.append(rank)
        if run_dir:
            try:
                note_if_killed(Path(run_dir), rank, code)
            except OSError:
                pass
    return failed


def _observe_ranks_ourselves() -> None:
    """Lightning's rank 0 looks at the ranks it started every 5 s and, when one has failed, SIGKILLs them all
    and itself without a word. Ours looks every 0.2 s, reports a rank that died without a traceback, and
    leaves a note from rank 0 before stopping the job the same way, so the launcher can name the cause."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    def launch_observer(procs: list) -> None:
        def watch() -> None:
            while True:
                time.sleep(0.2)
                failed = _report_killed_ranks(_RUNNING.get("config"), procs)
                if failed:
                    _write_error(_RUNNING.get("config"), f"rank 0 stopped the job because rank(s) {failed} ended\n")
                    for proc in procs:
                        if proc.poll() is None:
                            proc.kill()
                    os.kill(os.getpid(), signal.SIGKILL)
                if all(proc.poll() == 0 for proc in procs):
                    return

        threading.Thread(target=watch, name="fasttrain-rank-observer", daemon=True).start()

    subprocess_script._launch_process_observer = launch_observer


def _write_error(config: TrainConfig | None, text: str, rank: int | None = None) -> None:
    """Each rank leaves its traceback where the launcher looks, so the error names the rank that failed."""
    if not os.environ.get("FASTTRAIN_RUN_DIR"):
        return
    try:
        rank = _global_rank(config) if rank is None else rank
        write_error_note(Path(os.environ["FASTTRAIN_RUN_DIR"]), rank, text)
    except OSError:
        pass
