"""Measuring a training job from the inside: step times, gradient communication, memory, peak FLOP/s.

- `CommTimer` is a DDP communication hook: it wraps the all-reduce of each gradient bucket (plain
  fp32, bf16-compressed, or none at all for headroom analysis) and records how long each took from
  launch to completion and how many bytes it carried.
- `StepRecorder` is a Lightning callback: wall time of every optimizer step (start to start, so data
  loading is included), the loss of every step, validation accuracy over training, and early stop
  at a target accuracy. Its lists travel in the job's checkpoint, so a resumed job reports every step.
"""

from __future__ import annotations

import os
import resource
import signal
import statistics
import sys
import time
from typing import Any

import torch
from lightning.pytorch import Callback


# ---------------------------------------------------------------------- communication
class CommTimer:
    """State for a timed DDP comm hook; `hook` is what DDPStrategy(ddp_comm_hook=...) registers."""

    def __init__(self, compression: str = "fp32", grad_norms: bool = False):
        self.compression = compression
        self.grad_norms = grad_norms  # also |g_local|^2 and |g_global|^2, for the gradient noise scale
        self.process_group = None  # the default group, as torch's own hooks expect
        self.last_launch: float | None = None  # when the latest bucket was handed to the network
        self._reset()

    def _reset(self) -> None:
        self.step_seconds, self.step_bytes, self.step_buckets = 0.0, 0, 0
        self.local_sq_norm, self.global_sq_norm = 0.0, 0.0

    def take_step(self) -> dict[str, float]:
        """Communication of the step just finished; resets the counters."""
        out = dict(
            seconds=self.step_seconds,
            bytes=self.step_bytes,
            buckets=self.step_buckets,
            local_sq_norm=self.local_sq_norm,
            global_sq_norm=self.global_sq_norm,
        )
        self._reset()
        return out

    @staticmethod
    def hook(state, bucket):  # no annotations: torch compares them with dist.GradBucket itself
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        buffer = bucket.buffer()
        state.last_launch = time.perf_counter()
        if state.grad_norms:
            # This rank's gradient before averaging: the "small batch" of McCandlish et al.'s estimator.
            state.local_sq_norm += float(buffer.float().pow(2).sum())
        start = time.perf_counter()
        if state.compression == "bf16":
            fut = default_hooks.bf16_compress_hook(state.process_group, bucket)
            nbytes = buffer.numel() * 2
        elif state.compression == "noop":
            # torch's debugging noop_hook: keep the local gradient, send nothing. The ranks' weights
            # drift apart, so only the step time means anything: N ranks computing side by side.
            fut = torch.futures.Future()
            fut.set_result(buffer)
            nbytes = 0
        else:
            fut = default_hooks.allreduce_hook(state.process_group, bucket)
            nbytes = buffer.numel() * buffer.element_size()

        def done(f: torch.futures.Future) -> torch.Tensor:
            state.step_seconds += time.perf_counter() - start
            state.step_bytes += nbytes
            state.step_buckets += 1
            averaged = f.value()
            if state.grad_norms:  # the all-reduced gradient: the "big batch"
                state.global_sq_norm += float(averaged.float().pow(2).sum())
            return averaged

        return fut.then(done)


# ---------------------------------------------------------------------- statistics
def summarize(values: list[float]) -> dict[str, float]:
    """Median and spread, the way every speed claim in the course is reported."""
    if not values:
        return dict(
            n=0,
            median=float("nan"),
            mean=float("nan"),
            std=float("nan"),
            p10=float("nan"),
            p90=float("nan"),
            min=float("nan"),
            max=float("nan"),
        )
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return dict(
        n=len(values),
        median=statistics.median(values),
        mean=statistics.fmean(values),
        std=statistics.pstdev(values) if len(values) > 1 else 0.0,
        p10=pct(0.1),
        p90=pct(0.9),
        min=ordered[0],
        max=ordered[-1],
    )


def noise_scale(local_sq: list[float], global_sq: list[float], b_small: int, b_big: int) -> dict[str, list]:
    """McCandlish et al. 2018's two-batch estimator of the gradient noise scale B_simple, per step.

    |G|^2 ~ (B_big |g_big|^2 - B_small |g_small|^2) / (B_big - B_small)
    S     ~ (|g_small|^2 - |g_big|^2) / (1/B_small - 1/B_big);   B_simple = S / |G|^2
    Single steps are noisy (|G|^2 can even come out negative); average S and |G|^2 over many steps
    before dividing, as `noise_scale_over` does.
    """
    g2 = [(b_big * gb - b_small * gs) / (b_big - b_small) for gs, gb in zip(local_sq, global_sq)]
    s = [(gs - gb) / (1 / b_small - 1 / b_big) for gs, gb in zip(local_sq, global_sq)]
    return dict(true_grad_sq=g2, trace_sigma=s)


def noise_scale_over(estimates: dict[str, list], start: int = 0, stop: int | None = None) -> float:
    """B_simple from the means of S and |G|^2 over steps [start, stop)."""
    g2 = estimates["true_grad_sq"][start:stop]
    s = estimates["trace_sigma"][start:stop]
    if not g2:
        return float("nan")
    mean_g2 = statistics.fmean(g2)
    return statistics.fmean(s) / mean_g2 if mean_g2 > 0 else float("inf")


def peak_memory_bytes(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "cuda max_memory_allocated"
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss_kb * (1 if sys.platform == "darwin" else 1024)), "process max RSS (CPU)"


def peak_flops(device: torch.device, precision: str, matmul_precision: str) -> tuple[float | None, str]:
    """The device's peak FLOP/s for this precision: Lightning's datasheet table on GPUs it knows,
    otherwise measured here as the rate of a large matrix product in that precision."""
    dtype = {
        "bf16-mixed": torch.bfloat16,
        "bf16-true": torch.bfloat16,
        "16-mixed": torch.float16,
        "16-true": torch.float16,
    }.get(precision, torch.float32)
    if device.type == "cuda":
        from lightning.fabric.utilities.throughput import get_available_flops

        # For float32, Lightning itself switches to the TF32 figure when matmul_precision allows it.
        value = get_available_flops(device, dtype)
        if value:
            kind = "tf32" if dtype == torch.float32 and matmul_precision != "highest" else str(dtype)[6:]
            return float(value), f"datasheet ({torch.cuda.get_device_name(device)}, {kind})"
    else:
        dtype = torch.float32  # a CPU's low-precision matmul is no ceiling worth quoting (chapter 02)
    rate = measure_matmul_flops(device, dtype)
    return rate, f"measured: {str(dtype)[6:]} matrix product on this device"


def measure_matmul_flops(device: torch.device, dtype: torch.dtype, n: int = 0, repeats: int = 10) -> float:
    """FLOP/s of an n x n x n matrix product, the fastest of `repeats`: a peak is what the device can do,
    and on a shared machine the median drifted by 2x between one job and the next."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        if i:  # the first product warms caches and kernels
            times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------- the per-step recorder
class StepRecorder(Callback):
    """Per-step times and losses, validation over training, early stop at a target accuracy."""

    def __init__(
        self,
        global_batch_size: int,
        max_steps: int,
        comm: CommTimer | None = None,
        target_accuracy: float | None = None,
        print_every: int = 0,
    ):
        self.global_batch_size = global_batch_size
        self.max_steps = max_steps
        self.comm = comm
        self.target_accuracy = target_accuracy
        self.print_every = print_every or max(1, max_steps // 10)
        self.step_times: list[float] = []
        self.comm_times: list[float] = []
        self.comm_bytes: list[int] = []
        self.comm_buckets: list[int] = []
        self.exposed_times: list[float] = []  # per step: backward waiting on the all-reduce (see on_after_backward)
        self._exposed = 0.0
        self._backward_start: float | None = None
        self.local_sq_norms: list[float] = []
        self.global_sq_norms: list[float] = []
        self.losses: list[torch.Tensor] = []
        self.validation: list[dict[str, Any]] = []
        self.time_to_target_s: float | None = None
        self._last_start: float | None = None
        self._fit_start: float | None = None
        self._train_time = 0.0
        self._device = torch.device("cpu")
        self._trainer = None
        self._global_losses: list[float] = []  # steps already averaged over ranks (at a checkpoint)
        self._global_local_sq: list[float] = []
        self.resumed_from_step: int | None = None  # the step a restored checkpoint had reached

    # Checkpointed state. Only rank 0's copy is written and every rank loads it, so per-rank values
    # (each rank's own loss) are averaged over ranks first: every rank takes part in saving.
    _STATE = (
        "step_times",
        "comm_times",
        "comm_bytes",
        "comm_buckets",
        "exposed_times",
        "global_sq_norms",
        "validation",
        "time_to_target_s",
        "_train_time",
    )

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        if self.losses:
            self._global_losses += _mean_over_ranks(self._trainer, torch.stack(self.losses).to(self._device))
            self.losses = []
        if self.local_sq_norms:
            self._global_local_sq += _mean_over_ranks(
                self._trainer, torch.tensor(self.local_sq_norms, dtype=torch.float64, device=self._device)
            )
            self.local_sq_norms = []
        state = {k: getattr(self, k) for k in self._STATE}
        return dict(state, losses=list(self._global_losses), local_sq_norms=list(self._global_local_sq))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in self._STATE:
            setattr(self, key, state[key])
        self._global_losses, self._global_local_sq = list(state["losses"]), list(state["local_sq_norms"])
        self.losses, self.local_sq_norms = [], []
        self.resumed_from_step = len(self.step_times)

    def exclude_time(self, seconds: float) -> None:
        """Leave `seconds` spent since the last step (saving a checkpoint) out of the next step's time."""
        if self._last_start is not None:
            self._last_start += seconds

    # Optimizer steps begin with the first micro-batch; a step's time runs start to start.
    def on_train_start(self, trainer, pl_module) -> None:
        self._device = pl_module.device
        self._fit_start = time.perf_counter()
        if self.resumed_from_step is not None and trainer.is_global_zero:
            print(
                f"[fasttrain] resumed from the checkpoint at step {self.resumed_from_step}/{self.max_steps}", flush=True
            )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _maybe_inject_fault(trainer, batch_idx)
        if self._last_start is None:
            _sync(self._device)
            self._last_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Lightning counts optimizer steps in global_step; with accumulation, only every k-th batch steps.
        if trainer.global_step == len(self.step_times):
            return
        _sync(self._device)
        now = time.perf_counter()
        elapsed = now - self._last_start
        self._last_start = now
        self.step_times.append(elapsed)
        self._train_time += elapsed
        if self.comm is not None:
            taken = self.comm.take_step()
            self.comm_times.append(taken["seconds"])
            self.comm_bytes.append(taken["bytes"])
            self.comm_buckets.append(taken["buckets"])
            self.exposed_times.append(self._exposed)
            self._exposed = 0.0
            if self.comm.grad_norms:
                self.local_sq_norms.append(taken["local_sq_norm"])
                self.global_sq_norms.append(taken["global_sq_norm"])
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(loss.detach().float() * trainer.accumulate_grad_batches)
        step = trainer.global_step
        if trainer.is_global_zero and (step % self.print_every == 0 or step == self.max_steps):
            rate = self.global_batch_size / elapsed
            print(
                f"[fasttrain] step {step}/{self.max_steps}  loss {loss.item():.4f}  "
                f"{rate:,.0f} img/s  ({elapsed * 1e3:.0f} ms/step)",
                flush=True,
            )

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._backward_start = time.perf_counter()

    def on_after_backward(self, trainer, pl_module) -> None:
        # DDP's backward returns only once every bucket's all-reduce has finished. The last bucket is
        # launched when the backward pass has computed its last gradients, so from that launch to here
        # the rank does nothing but wait for the network (and for slower peers): communication the
        # backward did not hide. On a GPU the launch is a CPU timestamp, so this is an upper bound.
        launch = self.comm.last_launch if self.comm is not None else None
        if launch is not None and self._backward_start is not None and launch >= self._backward_start:
            _sync(self._device)
            self._exposed += time.perf_counter() - launch

    def on_validation_start(self, trainer, pl_module) -> None:
        _sync(self._device)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        acc = float(metrics["val_acc"])
        entry = dict(
            step=trainer.global_step, train_time_s=self._train_time, accuracy=acc, loss=float(metrics["val_loss"])
        )
        self.validation.append(entry)
        if trainer.is_global_zero:
            print(
                f"[fasttrain] validation at step {entry['step']}: accuracy {acc:.4f}  loss {entry['loss']:.4f}",
                flush=True,
            )
        if self.target_accuracy is not None and acc >= self.target_accuracy and self.time_to_target_s is None:
            self.time_to_target_s = self._train_time
            trainer.should_stop = True  # accuracy is all-reduced, so every rank stops together
        # Validation time is not training time: the next step starts its clock afresh.
        self._last_start = None

    @property
    def device(self) -> torch.device:
        """The device training ran on (captured at the start of fit)."""
        return self._device

    def gathered_losses(self, trainer) -> list[float]:
        """The loss of each step averaged over ranks: the loss of the global batch."""
        if not self.losses:
            return list(self._global_losses)
        return self._global_losses + _mean_over_ranks(trainer, torch.stack(self.losses).to(self._device))

    def gathered_local_sq_norms(self, trainer) -> list[float]:
        """|g_local|^2 per step, averaged over ranks (a lower-variance 'small batch' estimate)."""
        if not self.local_sq_norms:
            return list(self._global_local_sq)
        return self._global_local_sq + _mean_over_ranks(
            trainer, torch.tensor(self.local_sq_norms, dtype=torch.float64, device=self._device)
        )


class LossScaleRecorder(Callback):
    """The GradScaler's loss scale after every optimizer step, and which steps it skipped (16-mixed only).

    GradScaler halves the scale exactly when it found an inf/nan gradient and skipped the step, and
    otherwise keeps or grows it; so "the scale went down" is "the step was skipped", read through
    the public `get_scale()` alone.
    """

    def __init__(self) -> None:
        self.initial: float | None = None
        self.values: list[float] = []
        self.skipped: list[bool] = []
        self._before: float | None = None

    @staticmethod
    def scaler(trainer):
        return getattr(trainer.precision_plugin, "scaler", None)

    def on_train_start(self, trainer, pl_module) -> None:
        if self.scaler(trainer) is not None:
            self.initial = self.scaler(trainer).get_scale()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # Lightning calls this after unscaling, before GradScaler.step() and update().
        if self.scaler(trainer) is not None:
            self._before = self.scaler(trainer).get_scale()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.scaler(trainer) is None or self._before is None or trainer.global_step == len(self.values):
            return
        after = self.scaler(trainer).get_scale()
        self.values.append(after)
        self.skipped.append(after < self._before)
        self._before = None

    def state_dict(self) -> dict[str, Any]:
        return dict(initial=self.initial, values=self.values, skipped=self.skipped)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial, self.values, self.skipped = state["initial"], list(state["values"]), list(state["skipped"])

    def summary(self, growth_interval: int) -> dict[str, Any] | None:
        if not self.values:
            return None
        return dict(
            initial=self.initial,
            steps=list(range(1, len(self.values) + 1)),
            values=self.values,
            skipped=self.skipped,
            skipped_steps=sum(self.skipped),
            growth_interval=growth_interval,
        )


def _mean_over_ranks(trainer, values: torch.Tensor) -> list[float]:
    return [float(v) for v in trainer.strategy.reduce(values, reduce_op="mean").cpu()]


def _maybe_inject_fault(trainer, batch_idx: int) -> None:
    """Fault injection for the course's tests: FASTTRAIN_FAULT='KIND:RANK:STEP' with KIND crash (an
    exception), hang (sleeps) or kill (SIGKILL to itself: the OOM killer, a pre-empted node)."""
    spec = os.environ.get("FASTTRAIN_FAULT")
    if not spec:
        return
    kind, rank, step = spec.split(":")
    if trainer.global_rank == int(rank) and trainer.global_step == int(step):
        if kind == "crash":
            raise RuntimeError(f"injected fault (FASTTRAIN_FAULT={spec}) on rank {rank} at step {step}")
        if kind == "hang":
            time.sleep(10**6)
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
