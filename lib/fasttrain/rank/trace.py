"""A torch.profiler timeline of a few training steps, one Chrome/Perfetto trace per rank.

With `trace_steps > 0` the job hands Lightning's `PyTorchProfiler` (torch.profiler underneath, CPU and,
on a GPU, CUDA activity) a schedule that skips the timing warm-up and records the next steps. Lightning
wraps its hooks in record_function ranges ("[Strategy]...training_step" is the forward pass,
"...backward" the backward pass, "...optimizer_step" the closure and the update); `StepMarker` adds
one range per training batch, named "fasttrain step <i>" with i the step's index in the record's
per-step lists, so a trace's steps line up with the hook's numbers. gloo's collectives appear as
"gloo:all_reduce" ranges on its worker threads, NCCL's as kernels on the communication stream.

The traces land in the run folder's traces/ (beside the record when the job has no run folder),
named by local rank: fit-trace-<rank>-...pt.trace.json, with Lightning's per-rank summary table.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch import Callback

from fasttrain import rundir
from fasttrain.config import TrainConfig
from fasttrain.rundir import STEP_RANGE, TRACES


def trace_dir(record_path: str | None) -> Path:
    if os.environ.get(rundir.ENV_RUN_DIR):
        return Path(os.environ[rundir.ENV_RUN_DIR]) / TRACES
    if record_path:
        return Path(record_path).with_name(Path(record_path).stem + "." + TRACES)
    return Path(TRACES)


def traced_steps(config: TrainConfig) -> range:
    """The steps the trace covers whole: the profiler warms up on the first step after the timing
    warm-up and stops during the step after the last one recorded, so neither counts."""
    first = config.timing_warmup_steps + 1
    return range(first, first + config.trace_steps)


def profiler(config: TrainConfig, folder: Path):
    """Lightning's PyTorchProfiler on the steps of `traced_steps`, or None when the job traces nothing."""
    if not config.trace_steps:
        return None
    from lightning.pytorch.profilers import PyTorchProfiler

    schedule = torch.profiler.schedule(
        skip_first=config.timing_warmup_steps, wait=0, warmup=1, active=config.trace_steps + 1, repeat=1
    )
    activities = [torch.profiler.ProfilerActivity.CPU]
    if config.on_gpu:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    # record_module_names=False: a range per module call would add thousands of events per step and
    # slow the very steps being looked at.
    return PyTorchProfiler(
        dirpath=folder, filename="trace", record_module_names=False, schedule=schedule, activities=activities
    )


class StepMarker(Callback):
    """One record_function range per training batch, named by the step's index in the record."""

    def __init__(self):
        self._range = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._range = torch.profiler.record_function(f"{STEP_RANGE}{trainer.global_step}")
        self._range.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._range is not None:
            self._range.__exit__(None, None, None)
            self._range = None


def trace_record(config: TrainConfig, folder: Path) -> dict:
    """What the record says about the traces: where they are and which steps they cover whole."""
    return dict(
        folder=str(folder.resolve()),
        steps=list(traced_steps(config)),
        tool="torch.profiler through Lightning's PyTorchProfiler",
        files=sorted(p.name for p in folder.glob("*.pt.trace.json")),
    )
