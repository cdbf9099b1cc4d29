"""Why a job failed, in words a learner can act on: the rank that failed first, its traceback or signal."""

from __future__ import annotations

import signal
from pathlib import Path

from fasttrain.rundir import read_failures

KILLED_MARK = "Killed by signal"  # how a rank that died without a traceback is reported
_SIGNAL_CAUSES = {
    "SIGKILL": "the kernel's OOM killer, kill -9 or a pre-empted job",
    "SIGABRT": "aborted inside native code, e.g. a C++ std::terminate; the last lines of the log show where",
    "SIGSEGV": "a crash inside native code (PyTorch, a driver or an extension)",
}

# How gloo and NCCL word a collective that waited past the process-group timeout (gloo's wording depends on
# where the wait was: "Timed out waiting ... for recv", "Application timeout caused pair closure").
_COLLECTIVE_TIMEOUT = ("timed out", "application timeout", "collective operation timeout")


class TrainingJobError(RuntimeError):
    """The training job failed; `rank`, `traceback` and `log_path` say where and why."""

    def __init__(self, message: str, rank: int | None = None, traceback: str = "", log_path: Path | None = None):
        super().__init__(message)
        self.rank, self.traceback, self.log_path = rank, traceback, log_path


class TrainingTimeout(TrainingJobError):
    """The job ran past its time limit and was stopped."""


def killed_by(signal_name: str) -> str:
    """The report for a rank that a signal ended without a traceback, with its likely cause (only where known)."""
    cause = _SIGNAL_CAUSES.get(signal_name)
    return f"{KILLED_MARK} {signal_name}" + (f" (likely {cause})" if cause else "") + "; it left no traceback\n"


def first_failure(rows: list[dict]) -> dict:
    """The cause among the failed ranks: a rank a signal ended comes first (it wrote nothing, so torchrun
    saw it later than the errors of the peers it left waiting), then the earliest error."""
    return min(rows, key=lambda r: (r.get("signal") is None, r.get("timestamp", 0), r["rank"]))


def job_failure(label: str, run_dir: Path, returncode: int, tail: list[str], log_path: Path) -> TrainingJobError:
    rows = read_failures(run_dir)
    if not rows:
        how = f"was killed by signal {signal.Signals(-returncode).name}" if returncode < 0 else f"exited ({returncode})"
        return TrainingJobError(
            f"Training job {label}: torchrun {how} and wrote no record. Last output:\n"
            f"{''.join(tail[-20:])}\nFull log: {log_path}",
            log_path=log_path,
        )
    first = first_failure(rows)
    rank = first["rank"]
    if first.get("signal"):
        last = killed_by(first["signal"]).strip()
        text = f"{last}\nLast output of the job:\n" + "".join(tail[-10:])
    else:
        text = first.get("traceback") or first.get("message") or f"exit code {first['exitcode']}\n"
        words = (first.get("message") or text).strip()
        last = words.splitlines()[-1] if words else "no message"
        if any(mark in text.lower() for mark in _COLLECTIVE_TIMEOUT):
            last += (
                " (a collective timed out: this rank waited for a peer longer than the job's "
                "process_group_timeout_s; a rank that stalled or died is the cause, look for it in the log)"
            )
    others = sorted(r["rank"] for r in rows if r["rank"] != rank)
    also = f" (rank(s) {others} failed after it)" if others else ""
    return TrainingJobError(
        f"Training job {label}: rank {rank} failed first{also}: {last}\n\n"
        f"Traceback of rank {rank}:\n{text}\nFull log: {log_path}",
        rank=rank,
        traceback=text,
        log_path=log_path,
    )
