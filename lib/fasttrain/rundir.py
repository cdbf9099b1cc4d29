"""The run folder: the one contract between the launcher (a notebook's kernel, a shell) and the ranks.

    build/runs/<name>-<config hash>/
        config.json       the job's parameters (written by the launcher, read by every rank)
        record.json       the result record (rank 0, written whole or not at all)
        log.txt           everything the ranks printed
        job.lock          held (fcntl.flock) by the launcher while the job runs: one folder, one job
        checkpoints/      last.ckpt while the job runs (removed once the record is written)
        torchrun/         torchrun's per-rank error files (`@record`)
        failures.json     the failed ranks as torchrun saw them (written by fasttrain.launch.agent)
        traces/           a job with trace_steps > 0: each rank's torch.profiler trace (rank/trace.py)

Both sides import this module and nothing of each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

LIB_DIR = Path(__file__).resolve().parent.parent

# The variables the two sides pass each other.
ENV_RUN_DIR = "FASTTRAIN_RUN_DIR"  # the ranks' run folder: checkpoints and error notes go there
ENV_LAUNCHER_PID = "FASTTRAIN_LAUNCHER_PID"  # set by the launcher: its agent stops when that process dies
ENV_CODE_VERSION = "FASTTRAIN_CODE_VERSION"  # the git commit, for a copy of the tree without .git
ENV_BUILD_DIR = "FASTTRAIN_BUILD_DIR"  # where build/ is (paths.py)
ENV_RECOMPUTE = "FASTTRAIN_RECOMPUTE"  # 1: train again even where a finished record exists
ENV_FAULT = "FASTTRAIN_FAULT"  # the tests' fault injection, KIND:RANK:STEP (rank/faults.py)
ENV_PROGRESS = "FASTTRAIN_PROGRESS"  # "text": a plain progress bar even in a notebook (papermill runs)

CONFIG, RECORD, LOG, LOCK, CHECKPOINTS, TORCHRUN_LOGS, FAILURES = (
    "config.json",
    "record.json",
    "log.txt",
    "job.lock",
    "checkpoints",
    "torchrun",
    "failures.json",
)

TRACES = "traces"
STEP_RANGE = "fasttrain step "  # + the step's index: the record_function range of each traced step

# Variables that describe one rank of a job: inherited by a new job, they would describe the wrong one.
RANK_VARIABLES = (
    "LOCAL_RANK",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "NODE_RANK",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_ERROR_FILE",
    "MASTER_ADDR",
    "MASTER_PORT",
)

# What cannot change the result stays out of the hash: a run is resumed, or reused, under another
# checkpoint interval, name or output folder.
_NOT_HASHED = ("name", "out_dir", "checkpoint_every_steps", "resume")


def config_hash(values: dict[str, Any]) -> str:
    """The run folder's suffix: a hash of the parameters that decide the result (TrainConfig.to_dict())."""
    kept = {k: v for k, v in values.items() if k not in _NOT_HASHED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:10]


def folder_for(values: dict[str, Any], runs_dir: Path) -> Path:
    """The run folder of a job: <out_dir or runs_dir>/<name>-<config hash>."""
    base = Path(values.get("out_dir") or runs_dir)
    return base / f"{values.get('name') or 'run'}-{config_hash(values)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_environment(extra: dict[str, str] | None = None, *, new_job: bool = True) -> dict[str, str]:
    """The environment of a process the course starts (a job, a benchmark): this one's, with the course
    library importable, unbuffered output, and no rank variables left from another job."""
    env = dict(os.environ)
    if new_job:
        for key in RANK_VARIABLES:
            env.pop(key, None)
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(LIB_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def torchrun_command(nproc: int, module_args: list[str], *, run_dir: Path | None = None, agent: str = "") -> list[str]:
    """`torchrun --standalone --nproc-per-node N -m <module> ...` for one machine, as a command line.

    agent: the module that runs torchrun (default torch.distributed.run itself; the launcher uses its
    own thin wrapper, fasttrain.launch.agent, which also reports the failed ranks as JSON)."""
    logs = ["--log-dir", str(run_dir / TORCHRUN_LOGS)] if run_dir is not None else []
    return [
        sys.executable,
        "-m",
        agent or "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(nproc),
        "--max-restarts",
        "0",
        *logs,
        "-m",
        *module_args,
    ]


class JobRunning(RuntimeError):
    """Another process holds the run folder's lock."""


class JobLock:
    """One run folder, one job: an OS lock (fcntl.flock) on job.lock, released when its holder exits,
    however it exits. The holder writes its pid and host into the file, so a waiting caller can say who."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def acquire(self, wait_s: float, on_wait=None) -> JobLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline, told = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise JobRunning(self.holder()) from None
                if on_wait is not None and not told:
                    on_wait(self.holder())
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        return self

    def holder(self) -> str:
        try:
            pid, _, host = self.path.read_text().strip().partition(" ")
        except OSError:
            return "another process"
        return f"process {pid} on {host}" if pid else "another process"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the lock
            self.fd = None

    def __enter__(self) -> JobLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_failures(run_dir: Path) -> list[dict[str, Any]]:
    """The failed ranks of the last attempt, as the launcher's torchrun agent wrote them (failures.json)."""
    try:
        return json.loads((Path(run_dir) / FAILURES).read_text())
    except (OSError, ValueError):
        return []
