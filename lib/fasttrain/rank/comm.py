"""Gradient communication, timed from inside DDP: a comm hook and the callback that registers it.

`CommTimer.hook` wraps the all-reduce of each gradient bucket (plain fp32, bf16-compressed, or none at
all, for the headroom analysis of chapter 01) and records when each was launched and completed and how
many bytes it carried. A step's communication time is the union of those intervals, not their sum:
buckets launched while an earlier one is still on the wire wait in the backend's queue, and summing
would count that wait once per bucket queued behind it. gloo's collectives run on the CPU, so the host
clock times them. An NCCL future completes when its kernel is enqueued (its callbacks run then), so on a
GPU the interval is two CUDA events instead, recorded in stream order where the bucket's all-reduce may
start and where its result is first used, and read once the step has synchronised: no host clock times a
CUDA collective, and nothing in the hook waits for the device.
`CommHook` registers it through DDP's public `register_comm_hook` once Lightning has wrapped the model
(on_fit_start), on gloo as on NCCL.
"""

from __future__ import annotations

import time

import torch
from lightning.pytorch import Callback

from fasttrain.intervals import busy_seconds


class CommTimer:
    """State for a timed DDP comm hook; `hook` is what DistributedDataParallel.register_comm_hook takes."""

    def __init__(self, compression: str = "fp32", grad_norms: bool = False):
        self.compression = compression
        self.grad_norms = grad_norms  # also |g_local|^2 and |g_global|^2, for the gradient noise scale
        self.process_group = None  # the default group, as torch's own hooks expect
        self.last_launch: float | None = None  # when the latest bucket was handed to the network (host clock)
        self.clock: HostClock | CudaClock | None = None  # chosen by the first bucket's device
        self._reset()

    def _reset(self) -> None:
        self.intervals: list[tuple[float, float]] = []  # (launched, completed) per bucket, this step
        self.step_bytes, self.step_buckets = 0, 0
        self.local_sq_norm, self.global_sq_norm = 0.0, 0.0

    def take_step(self) -> dict[str, float]:
        """Communication of the step just finished; resets the counters."""
        out = dict(
            seconds=self.clock.seconds(self.intervals) if self.intervals else 0.0,
            bytes=self.step_bytes,
            buckets=self.step_buckets,
            local_sq_norm=float(self.local_sq_norm),  # the step is over: reading the device costs no stall now
            global_sq_norm=float(self.global_sq_norm),
        )
        self._reset()
        return out

    @staticmethod
    def hook(state, bucket):  # no annotations: torch compares them with dist.GradBucket itself
        buffer = bucket.buffer()
        state.last_launch = time.perf_counter()
        if state.clock is None:
            state.clock = CudaClock() if buffer.is_cuda else HostClock()
        if state.grad_norms:
            # This rank's gradient before averaging: the "small batch" of McCandlish et al.'s estimator.
            # Kept on the device: float() here would stall the backward pass until the GPU caught up.
            state.local_sq_norm += buffer.float().pow(2).sum()
        start = state.clock.mark()
        fut, nbytes = _exchange(state, bucket, buffer)

        def done(f: torch.futures.Future) -> torch.Tensor:
            # CUDA-aware futures run this with the current stream waiting for the all-reduce to finish
            state.intervals.append((start, state.clock.mark()))
            state.step_bytes += nbytes
            state.step_buckets += 1
            averaged = f.value()
            if state.grad_norms:  # the all-reduced gradient: the "big batch"
                state.global_sq_norm += averaged.float().pow(2).sum()
            return averaged

        return fut.then(done)


class HostClock:
    """gloo: the collective runs on the CPU, so the host clock at launch and at completion times it."""

    def mark(self) -> float:
        return time.perf_counter()

    def seconds(self, intervals: list[tuple[float, float]]) -> float:
        return busy_seconds(intervals)


class CudaClock:
    """NCCL: CUDA events in stream order, read only after the step's device synchronisation."""

    def __init__(self):
        self.origin = None  # the step's first event: every interval is read relative to it

    def mark(self):
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        if self.origin is None:
            self.origin = event
        return event

    def seconds(self, intervals: list[tuple]) -> float:
        origin, self.origin = self.origin, None
        return busy_seconds([(origin.elapsed_time(a) / 1e3, origin.elapsed_time(b) / 1e3) for a, b in intervals])


def _exchange(state: CommTimer, bucket, buffer: torch.Tensor) -> tuple[torch.futures.Future, int]:
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    if state.compression == "bf16":
        return default_hooks.bf16_compress_hook(state.process_group, bucket), buffer.numel() * 2
    if state.compression == "noop":
        # torch's debugging noop_hook: keep the local gradient, send nothing. The ranks' weights drift
        # apart, so only the step time means anything: N ranks computing side by side.
        fut = torch.futures.Future()
        fut.set_result(buffer)
        return fut, 0
    return default_hooks.allreduce_hook(state.process_group, bucket), buffer.numel() * buffer.element_size()


class CommHook(Callback):
    """Registers a CommTimer on the DDP-wrapped model, through DDP's public API, before the first step."""

    def __init__(self, timer: CommTimer):
        self.timer = timer

    def on_fit_start(self, trainer, pl_module) -> None:
        model = trainer.strategy.model  # DistributedDataParallel once the strategy has set up
        if not hasattr(model, "register_comm_hook"):
            raise RuntimeError("the comm hook needs a DDP strategy; this job runs without one")
        model.register_comm_hook(state=self.timer, hook=CommTimer.hook)
