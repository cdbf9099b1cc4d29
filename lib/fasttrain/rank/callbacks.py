"""Lightning callbacks that measure a job from the inside.

- `StepRecorder`: wall time of every optimizer step (start to start, so data loading is included),
  its gradient communication (from the CommTimer hook), the loss of every step, validation accuracy
  over training. Its lists travel in the job's checkpoint, so a resumed job reports every step.
- `Progress`: rank 0's progress lines, which the launcher turns into a progress bar.
- `FaultInjector`: the tests' injected faults (rank/faults.py).
- `LossScaleRecorder`: the GradScaler's loss scale and skipped steps (16-mixed).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch import Callback

from fasttrain.rank.comm import CommTimer
from fasttrain.rank.faults import maybe_inject_fault


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------- the per-step recorder
class StepRecorder(Callback):
    """Per-step times, communication and losses; validation over training."""

    def __init__(
        self,
        global_batch_size: int,
        max_steps: int,
        comm: CommTimer | None = None,
    ):
        self.global_batch_size = global_batch_size
        self.max_steps = max_steps
        self.comm = comm
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
            setattr(self, key, state.get(key, getattr(self, key)))
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

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
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


class Progress(Callback):
    """Rank 0's progress lines: `[fasttrain] step N/M  loss L  R img/s  (T ms/step)`, about 50 a job.

    The launcher reads them into its progress bar (launch/progress.py); in a shell they are the progress."""

    def __init__(self, recorder: StepRecorder, max_steps: int, global_batch_size: int):
        self.recorder, self.max_steps, self.global_batch_size = recorder, max_steps, global_batch_size
        self.every = max(1, max_steps // 50)

    def on_train_start(self, trainer, pl_module) -> None:
        resumed = self.recorder.resumed_from_step
        if resumed is not None and trainer.is_global_zero:
            print(f"[fasttrain] resumed from the checkpoint at step {resumed}/{self.max_steps}", flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or len(self.recorder.step_times) != step or not step:
            return
        if step % self.every == 0 or step == self.max_steps:
            elapsed = self.recorder.step_times[-1]
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            print(
                f"[fasttrain] step {step}/{self.max_steps}  loss {loss.item():.4f}  "
                f"{self.global_batch_size / elapsed:,.0f} img/s  ({elapsed * 1e3:.0f} ms/step)",
                flush=True,
            )

    def on_validation_end(self, trainer, pl_module) -> None:
        last = self.recorder.validation[-1] if self.recorder.validation else None
        if trainer.is_global_zero and last is not None and last["step"] == trainer.global_step:
            print(
                f"[fasttrain] validation at step {last['step']}: accuracy {last['accuracy']:.4f}  "
                f"loss {last['loss']:.4f}",
                flush=True,
            )


class TrainTimeLimit(Callback):
    """Ends fit once the training steps alone have taken `seconds` (rank 0's clock, broadcast so every
    rank stops at the same step). Lightning's Timer (Trainer(max_time=...)) counts validation and
    set-up too: a job capped at 67 s by it had trained for 46 s, so a capped run's "more than" time
    would say far less than its cap."""

    def __init__(self, recorder: StepRecorder, seconds: float):
        self.recorder, self.seconds = recorder, seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.strategy.broadcast(sum(self.recorder.step_times) >= self.seconds, src=0):
            trainer.should_stop = True


class FaultInjector(Callback):
    """The tests' injected faults, at the start of a training batch (rank/faults.py)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        maybe_inject_fault(trainer.global_rank, trainer.global_step)


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
