"""One training job, in one rank: config -> Lightning Trainer -> result record (rank 0 writes it).

Every rank runs `train`. torchrun starts the ranks (the launcher, or `python -m fasttrain.run`, which
hands a multi-device job on one machine to torchrun; on a cluster, torchrun or SLURM on every node).

With checkpoint_every_steps > 0 the job saves its state (weights, optimizer, schedule, data position,
the per-step measurements so far) in the run folder; started again with the same config after a
crash or a pre-emption, it continues from there, and the record covers every step.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from fasttrain import rundir
from fasttrain.config import ConfigError, TrainConfig, config_from_argv
from fasttrain.devices import threads_per_rank
from fasttrain.paths import runs_dir
from fasttrain.rank import trace
from fasttrain.rank.callbacks import FaultInjector, LossScaleRecorder, Progress, StepRecorder, TrainTimeLimit
from fasttrain.rank.checkpoint import (
    AtomicCheckpointIO,
    CheckpointWriteError,
    check_room_for_checkpoints,
    checkpoint_callback,
    usable_checkpoint,
)
from fasttrain.rank.checks import check_hardware
from fasttrain.rank.comm import CommHook, CommTimer
from fasttrain.rank.evaluate import full_test
from fasttrain.rank.record import add_optional_parts, build_record
from fasttrain.results import write_record


def uses_ddp(config: TrainConfig) -> bool:
    return config.world_size > 1 or config.strategy == "ddp"


def checkpoint_dir(record_path: str | None, config: TrainConfig) -> Path:
    """Where a job keeps its checkpoint: the launcher's run folder, else beside the record, else the run
    folder the launcher would use. Every rank must reach the same decision: ModelCheckpoint takes part in
    collectives, so a callback on rank 0 alone (say, only node 0 was given --record) would hang the job."""
    if os.environ.get(rundir.ENV_RUN_DIR):
        return Path(os.environ[rundir.ENV_RUN_DIR]) / rundir.CHECKPOINTS
    if record_path:
        return Path(record_path).with_name(Path(record_path).stem + ".checkpoints")
    return rundir.folder_for(config.to_dict(), runs_dir()) / rundir.CHECKPOINTS


def configure_process(config: TrainConfig) -> None:
    """Threads, numerics and warnings of this rank, before anything is built."""
    if not config.on_gpu:  # each rank gets its own cores, so N ranks do not fight over the same ones
        torch.set_num_threads(threads_per_rank(config.devices, config.threads_per_rank))
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


def comm_timer(config: TrainConfig) -> CommTimer | None:
    exchanges = config.comm_hook in ("timed", "bf16")
    if config.measure_noise_scale and (not uses_ddp(config) or config.world_size < 2 or not exchanges):
        raise ConfigError(
            "measure_noise_scale compares one rank's gradient with the all-reduced one: it "
            "needs 2 or more ranks (devices x num_nodes) and comm_hook 'timed' or 'bf16'."
        )
    if not uses_ddp(config) or config.comm_hook == "none":
        return None
    compression = {"bf16": "bf16", "noop": "noop"}.get(config.comm_hook, "fp32")
    return CommTimer(compression, grad_norms=config.measure_noise_scale)


def build_callbacks(config: TrainConfig, recorder: StepRecorder, folder: Path) -> list:
    from lightning.pytorch.callbacks import EarlyStopping

    callbacks: list = [recorder, Progress(recorder, config.max_steps, config.global_batch_size), FaultInjector()]
    if recorder.comm is not None:
        callbacks.append(CommHook(recorder.comm))
    if config.target_accuracy is not None:
        # Stop at the first validation that reaches the target (accuracy is all-reduced: every rank stops).
        callbacks.append(
            EarlyStopping("val_acc", mode="max", stopping_threshold=config.target_accuracy, patience=10**9)
        )
    if config.max_train_time_s:
        callbacks.append(TrainTimeLimit(recorder, config.max_train_time_s))
    if config.checkpoint_every_steps:
        callbacks.append(checkpoint_callback(config, folder, recorder))
    return callbacks


def build_trainer(config: TrainConfig, callbacks: list, profiler=None):
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.strategies import DDPStrategy

    strategy: Any = "auto"
    if uses_ddp(config):
        strategy = DDPStrategy(
            timeout=datetime.timedelta(seconds=config.process_group_timeout_s),
            bucket_cap_mb=config.bucket_cap_mb,
            static_graph=config.static_graph,
        )
    precision: str | None = config.precision
    plugins: list = [AtomicCheckpointIO()]
    if config.precision == "16-mixed":
        # Built here rather than by Lightning, which would turn 16-mixed into bf16-mixed on a CPU, and
        # so that the GradScaler's growth interval comes from the config.
        from lightning.pytorch.plugins.precision import MixedPrecision

        device = "cuda" if config.on_gpu else "cpu"
        scaler = torch.amp.GradScaler(device, growth_interval=config.loss_scale_growth_interval)
        plugins.append(MixedPrecision("16-mixed", device, scaler))
        precision = None
    return Trainer(
        accelerator="gpu" if config.accelerator == "cuda" else config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=strategy,
        precision=precision,
        plugins=plugins,
        max_steps=config.max_steps,
        max_epochs=-1,
        accumulate_grad_batches=config.grad_accumulation,
        sync_batchnorm=config.sync_batchnorm and config.on_gpu,  # CPU: GlooSyncBatchNorm (module.py)
        val_check_interval=(config.val_every_steps or config.max_steps) * config.grad_accumulation,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        profiler=profiler,
    )


def train(config: TrainConfig, record_path: str | None = None) -> dict[str, Any] | None:
    """Run the job in this rank; rank 0 returns the record (and writes it to record_path)."""
    from lightning.pytorch import seed_everything

    from fasttrain.rank.data import build_datamodule
    from fasttrain.rank.module import ResNetClassifier

    config.validate()
    check_hardware(config)
    configure_process(config)
    seed_everything(config.seed, workers=True, verbose=False)
    folder = checkpoint_dir(record_path, config)
    if config.checkpoint_every_steps:
        check_room_for_checkpoints(folder, config)
    if record_path:
        check_record_folder(Path(record_path))
    usable = usable_checkpoint(folder / "last.ckpt") if config.resume else None
    recorder, scales = StepRecorder(config.global_batch_size, config.max_steps, comm_timer(config)), LossScaleRecorder()
    callbacks = [*build_callbacks(config, recorder, folder), scales]
    traces = trace.trace_dir(record_path) if config.trace_steps else None
    if traces:
        callbacks.append(trace.StepMarker())
    trainer = build_trainer(config, callbacks, trace.profiler(config, traces) if traces else None)
    datamodule, module = build_datamodule(config), ResNetClassifier(config)
    if config.compile:
        module.model = torch.compile(module.model)

    if uses_ddp(config):
        _bound_the_rendezvous(config)
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(usable) if usable else None)
    except torch.distributed.DistError as exc:
        if recorder.step_times:  # the ranks had met: a failure in training, not in the rendezvous
            raise
        raise RendezvousError(rendezvous_message(config, exc)) from exc
    if not recorder.validation or recorder.validation[-1]["step"] != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    wall_time = time.perf_counter() - start
    test = full_test(module, datamodule, trainer) if config.test_full else None  # collective: every rank
    losses = recorder.gathered_losses(trainer)  # collectives: every rank takes part
    local_sq = recorder.gathered_local_sq_norms(trainer)
    _close_process_group()
    if not trainer.is_global_zero:
        return None
    resumed = recorder.resumed_from_step if usable else None
    record = build_record(config, recorder, trainer, losses, wall_time_s=wall_time, resumed_from_step=resumed)
    add_optional_parts(record, config, recorder, scales, local_sq)
    if traces:
        record["trace"] = trace.trace_record(config, traces)
    if test:
        record["test"] = test
    if config.save_weights and record_path:
        weights = Path(record_path).with_name("weights.pt")
        torch.save({k: v.detach().cpu() for k, v in module.model.state_dict().items()}, weights)
        record["weights_path"] = str(weights)
    if record_path:
        write_record(record, record_path)
        print(f"[fasttrain] record written to {record_path}", flush=True)
        shutil.rmtree(folder, ignore_errors=True)  # the record is the finished work; a re-run starts afresh
    return record


class RendezvousError(RuntimeError):
    """The ranks of a job did not all meet within the process-group timeout."""


def rendezvous_message(config: TrainConfig, exc: BaseException) -> str:
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    node = os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0"))
    return (
        f"the job's {config.world_size} ranks did not all meet at {where} within process_group_timeout_s="
        f"{config.process_group_timeout_s} s (this is node {node} of {config.num_nodes}; {type(exc).__name__}: "
        f"{first}). Start every node with the same MASTER_ADDR, MASTER_PORT and num_nodes (NODE_RANK 0 to "
        f"{config.num_nodes - 1}); check that nothing else listens on that port and that node 0 is reachable."
    )


def _bound_the_rendezvous(config: TrainConfig) -> None:
    """torch bounds most of the rendezvous by the process-group timeout, but not a store client that
    reached something else listening on MASTER_PORT (it waits for an answer that never comes): past the
    timeout, and a margin for torch's own error, this rank says what it waited for and exits."""
    import threading

    import torch.distributed as dist

    limit = 1.5 * config.process_group_timeout_s + 5

    def watch() -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if dist.is_initialized():
                return
            time.sleep(0.2)
        error = RendezvousError(rendezvous_message(config, TimeoutError(f"no answer within {limit:.0f} s")))
        print(f"fasttrain: rendezvous: {error}", file=sys.stderr, flush=True)
        _record_for_torchrun(error)
        os._exit(2)

    threading.Thread(target=watch, name="fasttrain-rendezvous-watch", daemon=True).start()


def check_record_folder(record_path: Path) -> None:
    """Before training: the record's folder can be written, so a job does not find out at its end."""
    try:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=record_path.parent).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot write the record {record_path} ({exc.strerror}): give --record a path in a folder you can "
            "write (or set FASTTRAIN_BUILD_DIR)."
        ) from None


def _close_process_group() -> None:
    """Every rank leaves the process group once the last collective is done. A rank that exits with gloo's
    group still open can abort in interpreter teardown ("terminate called without an active exception",
    SIGABRT; pytorch/pytorch#190489), which fails a job that had finished its work."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # no rank tears its end down while a peer still receives the last gather
        dist.destroy_process_group()


def _needs_torchrun(config: TrainConfig) -> bool:
    """A multi-device job on one machine that nothing started rank by rank: torchrun starts its ranks."""
    started = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "NODE_RANK", "GROUP_RANK")
    return config.num_nodes == 1 and config.devices > 1 and not any(k in os.environ for k in started)


_PLAIN_ERRORS = (
    (ConfigError, "configuration error"),
    (CheckpointWriteError, "checkpoint error"),
    (RendezvousError, "rendezvous"),
)


def main(argv: list[str] | None = None) -> int:
    """`python -m fasttrain.run ...`: returns the exit code; an unexpected error raises (with its traceback)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        config, record_path = config_from_argv(args)
        if _needs_torchrun(config):
            command = rundir.torchrun_command(config.devices, ["fasttrain.run", *args])
            os.execve(command[0], command, rundir.child_environment(new_job=False))
        train(config, record_path)
        return 0
    except (ConfigError, CheckpointWriteError, RendezvousError) as exc:
        what = next(w for kind, w in _PLAIN_ERRORS if isinstance(exc, kind))
        print(f"fasttrain: {what}: {exc}", file=sys.stderr, flush=True)
        _record_for_torchrun(exc)
        return 2


def _record_for_torchrun(exc: BaseException) -> None:
    """An error this rank reports plainly (and exits on) still reaches torchrun's error file, so the
    launcher names the rank and the message as for any other failure."""
    if os.environ.get("TORCHELASTIC_ERROR_FILE"):
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(exc)
