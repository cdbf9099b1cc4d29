"""What notebooks call: start a real (multi-process) training job in a subprocess, return its record.

    from fasttrain import launch
    record = launch.run(profile="smoke", devices=2, accelerator="cpu", name="ddp2")

Why a subprocess: Lightning refuses strategy="ddp" inside an IPython kernel, and fork-based DDP
breaks once CUDA is touched. A subprocess is also exactly what one runs by hand on a cluster.
On one machine the launcher starts every rank itself, as torchrun does; it streams the job's progress
lines, enforces a timeout (killing every rank), stops the job as soon as one rank fails, and raises an
error carrying the traceback of the rank that failed first.

Finished work is kept: a job whose run folder (build/runs/<name>-<config hash>/) holds a valid record
made by the same code is not run again (recompute=True, or FASTTRAIN_RECOMPUTE=1, runs it anyway), and
a job that died part-way continues from its last checkpoint when it is run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fasttrain.config import ConfigError, TrainConfig
from fasttrain.paths import runs_dir
from fasttrain.results import code_version, library_hash, read_record

KILLED_MARK = "Killed by signal"  # how a rank that died without a traceback is reported (run.py writes it too)
INHERITED_RANK_VARIABLES = (
    "LOCAL_RANK",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "NODE_RANK",
    "TORCHELASTIC_RUN_ID",
)
_SIGNAL_CAUSES = {
    signal.SIGKILL: "the kernel's OOM killer, kill -9 or a pre-empted job",
    signal.SIGABRT: "aborted inside native code, e.g. a C++ std::terminate; the last lines of the log show where",
    signal.SIGSEGV: "a crash inside native code (PyTorch, a driver or an extension)",
}
RANKS_EXIT_GRACE_S = 5.0  # how long the other ranks may outlive rank 0 before they are stopped
PREVIOUS_JOB_GRACE_S = 10.0  # how long a job left by a killed launcher may take to stop (it takes ~1-3 s)

LIB_DIR = Path(__file__).resolve().parent.parent


class TrainingJobError(RuntimeError):
    """The training job failed; `rank`, `traceback` and `log_path` say where and why."""

    def __init__(self, message: str, rank: int | None = None, traceback: str = "", log_path: Path | None = None):
        super().__init__(message)
        self.rank, self.traceback, self.log_path = rank, traceback, log_path


class TrainingTimeout(TrainingJobError):
    """The job ran past its time limit and was stopped."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_hash(config: TrainConfig) -> str:
    # What cannot change the result stays out: a run resumes, or is reused, under another checkpoint interval.
    ignored = ("name", "out_dir", "checkpoint_every_steps", "resume")
    values = {k: v for k, v in config.to_dict().items() if k not in ignored}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]


def run(
    config: TrainConfig | None = None,
    *,
    profile: str = "auto",
    name: str | None = None,
    timeout: float = 1800,
    show: str = "progress",
    env: dict[str, str] | None = None,
    recompute: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Run one training job to completion and return its result record.

    show: "progress" prints the job's own progress lines, "all" everything it prints, "none" nothing.
    The full log is kept in the run's folder either way.
    recompute: train again even if this run folder holds a finished record of the same config and code
    (also forced by FASTTRAIN_RECOMPUTE=1), and ignore any checkpoint a crashed attempt left.
    """
    if show not in ("progress", "all", "none"):
        raise ConfigError(f"show={show!r}: use 'progress', 'all' or 'none'.")
    if not timeout or timeout <= 0:
        raise ConfigError(f"timeout={timeout!r}: give the job's time limit in seconds, e.g. 1800.")
    if config is None:
        config = TrainConfig.from_profile(profile, **overrides)
    elif overrides:
        config = config.replace(**overrides)
    if name:
        config = config.replace(name=name)
    config.validate()
    recompute = recompute or os.environ.get("FASTTRAIN_RECOMPUTE", "") not in ("", "0")
    run_dir = Path(config.out_dir or runs_dir()) / f"{config.name or 'run'}-{config_hash(config)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path, record_path, log_path = run_dir / "config.json", run_dir / "record.json", run_dir / "log.txt"
    label = config.name or run_dir.name
    _wait_for_previous_job(run_dir, label)
    finished = None if recompute else finished_record(run_dir, config)
    if finished is not None:
        if show != "none":
            print(
                f"[launch] {label}: reusing the finished run in {run_dir} (same config and code; "
                f"recompute=True trains again)",
                flush=True,
            )
        return finished
    stale = [*run_dir.glob("rank*.error.txt"), *run_dir.glob(".record.json.*.tmp"), record_path]
    if recompute:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    for path in stale:
        path.unlink(missing_ok=True)
    config_path.write_text(json.dumps(config.to_dict(), indent=1))

    inherited = dict(os.environ)
    if config.num_nodes == 1:
        # The launcher sets the ranks' variables itself (_start_ranks). One left in this process (by torchrun,
        # or by a Lightning run inside this kernel) would describe another job: with a stale LOCAL_RANK, the
        # rank 0 of a job the launcher leaves to Lightning would wait for peers that nobody starts.
        for key in INHERITED_RANK_VARIABLES:
            inherited.pop(key, None)
    child_env = {**inherited, **(env or {})}
    child_env.update(
        PYTHONUNBUFFERED="1",
        FASTTRAIN_RUN_DIR=str(run_dir.resolve()),
        PYTHONPATH=os.pathsep.join([str(LIB_DIR), child_env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    child_env["FASTTRAIN_LAUNCHER_PID"] = str(os.getpid())  # ranks stop if this process dies (run.py)
    child_env.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in (env or {}):
        child_env["MASTER_PORT"] = str(free_port())  # a fresh port: no clash with a job just finished
    command = [sys.executable, "-m", "fasttrain.run", "--config", str(config_path), "--record", str(record_path)]
    if show != "none":
        print(
            f"[launch] {label}: {config.world_size} rank(s) on {config.accelerator}, "
            f"{config.max_steps} steps, global batch {config.global_batch_size}",
            flush=True,
        )

    started = time.perf_counter()
    with open(log_path, "w") as log:
        procs, output = _start_ranks(command, child_env, config)
        rank0 = procs[0]
        (run_dir / "job.pid").write_text(str(rank0.pid))  # the ranks' process group: see _wait_for_previous_job
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(output, lines), daemon=True)
        reader.start()
        tail: list[str] = []
        timed_out = stopped = False
        exited_at: float | None = None
        try:
            while True:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    line = ""
                    stopped = stopped or _stop_if_a_rank_failed(procs, run_dir)
                    if exited_at is None and rank0.poll() is not None:
                        exited_at = time.perf_counter()
                    if not stopped and exited_at is not None and time.perf_counter() - exited_at > RANKS_EXIT_GRACE_S:
                        # Rank 0 is gone but another rank still holds the output open (stuck in a
                        # collective, or asleep): stop the whole group rather than wait for it.
                        _note_stragglers(procs, run_dir)
                        _kill_group(procs)
                        stopped = True
                    if time.perf_counter() - started > timeout:
                        timed_out = stopped = True
                        _kill_group(procs)
                        break
                    continue
                if line is None:
                    break
                log.write(line)
                log.flush()  # `tail -f log.txt` shows a long job as it goes
                tail = (tail + [line])[-40:]
                if show == "all" or (show == "progress" and line.startswith(("[fasttrain]", "fasttrain:"))):
                    print(line, end="", flush=True)
        except BaseException:
            # An interrupted cell (KeyboardInterrupt) or a failing notebook must not leave the job running on
            # unseen; its checkpoint stays, so running the cell again resumes.
            _kill_group(procs)
            raise
        if not stopped:
            _stop_if_a_rank_failed(procs, run_dir)
        returncodes = [proc.wait() for proc in procs]
        reader.join(timeout=5)
        if not _group_alive(rank0.pid):
            (run_dir / "job.pid").unlink(missing_ok=True)

    elapsed = time.perf_counter() - started
    if timed_out:
        progress = [l for l in tail if l.startswith("[fasttrain] step")]
        reached = progress[-1].strip() if progress else "no step finished"
        raise TrainingTimeout(
            f"Training job {label} did not finish within {timeout:.0f} s ({reached}); all its processes "
            f"were stopped. Give it more time (timeout=...), or fewer steps / the 'smoke' profile. "
            f"Log: {log_path}",
            log_path=log_path,
        )
    if any(returncodes) or not record_path.exists():
        raise _failure(label, returncodes[0], run_dir, tail, log_path)
    if show != "none":
        print(f"[launch] {label}: done in {elapsed:.1f} s", flush=True)
    return read_record(record_path)


def finished_record(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The run folder's record if it is a finished run of this config by this code, else None.

    Records are written whole or not at all (results.write_record); a leftover temporary file, an
    unreadable or foreign record is never taken as finished."""
    try:
        record = read_record(run_dir / "record.json")
        env = record["environment"]
        same_config = config_hash(TrainConfig.from_dict(record["config"])) == config_hash(config)
        same_code = env.get("code_version") == code_version() and env.get("code_hash") == library_hash()
        finished = record["steps"] >= 1 and len(record["loss"]["values"]) == record["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if same_config and same_code and finished else None


def _wait_for_previous_job(run_dir: Path, label: str) -> None:
    """A job of this run folder may still be running: one whose launcher was killed stops within a second or
    two (run.py watches its parent); one that goes on is another launcher's, and we must not run beside it."""
    try:
        pgid = int((run_dir / "job.pid").read_text())
    except (OSError, ValueError):
        return
    deadline = time.perf_counter() + PREVIOUS_JOB_GRACE_S
    while _group_alive(pgid):
        if time.perf_counter() > deadline:
            raise TrainingJobError(
                f"Training job {label} is already running in {run_dir} (process group {pgid}), started by "
                f"another notebook or shell. Wait for it to finish (its record will be reused), or stop it "
                f"with: kill -- -{pgid}"
            )
        time.sleep(0.2)
    (run_dir / "job.pid").unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pump(stream, lines: queue.Queue[str | None]) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def _start_ranks(command: list[str], env: dict[str, str], config: TrainConfig) -> tuple[list[subprocess.Popen], Any]:
    """Start the job's processes in a process group of their own; returns them (rank 0 first) and the one
    stream that carries all their output.

    On one node the launcher starts every rank at once, as torchrun does: each rank spends seconds importing
    torch and Lightning, and started by rank 0 (Lightning's way) they would do so one after the other.
    Otherwise (several nodes, or more ranks than this machine has devices, which rank 0 then reports) it
    starts rank 0 and Lightning starts the rest."""
    read_end, write_end = os.pipe()
    ranks = config.devices if config.num_nodes == 1 and 1 < config.devices <= _local_devices(config) else 1
    procs: list[subprocess.Popen] = []
    try:
        for local_rank in range(ranks):
            rank_env = (
                env
                if ranks == 1
                else {**env, "NODE_RANK": "0", "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(ranks)}
            )
            # Rank 0 leads a new process group, the others join it: one killpg stops the whole job.
            procs.append(
                subprocess.Popen(
                    command,
                    stdout=write_end,
                    stderr=write_end,
                    env=rank_env,
                    process_group=procs[0].pid if procs else 0,
                )
            )
    except BaseException:
        if procs:
            _kill_group(procs)
        os.close(read_end)
        raise
    finally:
        os.close(write_end)  # the ranks hold it now; the stream ends when the last of them exits
    return procs, os.fdopen(read_end, "r", buffering=1)


def _local_devices(config: TrainConfig) -> int:
    if config.on_gpu:
        import torch

        return torch.cuda.device_count()
    return os.cpu_count() or 1


def _stop_if_a_rank_failed(procs: list[subprocess.Popen], run_dir: Path) -> bool:
    """When one of the ranks the launcher started has failed, stop the others at once (they would wait for it in
    their next collective). A rank that a signal ended wrote no traceback: its note says so. Call it until it
    returns True (the job was stopped), not after: the ranks it stops are not the cause."""
    if len(procs) == 1:  # Lightning started the other ranks, and rank 0 watches them (run.py)
        return False
    failed = [(rank, proc.returncode) for rank, proc in enumerate(procs) if proc.poll() not in (None, 0)]
    for rank, code in failed:
        note_if_killed(run_dir, rank, code)
    if failed and any(proc.poll() is None for proc in procs):
        _kill_group(procs)
    return bool(failed)


def _note_stragglers(procs: list[subprocess.Popen], run_dir: Path) -> None:
    for rank, proc in enumerate(procs[1:], start=1):
        if proc.poll() is None and not error_note(run_dir, rank).exists():
            write_error_note(
                run_dir,
                rank,
                f"still running {RANKS_EXIT_GRACE_S:.0f} s after rank 0 ended; the "
                "launcher stopped it (stuck in a collective or in teardown?)\n",
            )


def error_note(run_dir: Path, rank: int) -> Path:
    """Where a rank leaves its traceback (run.py), or the launcher a note on a rank that left none."""
    return run_dir / f"rank{rank}.error.txt"


def write_error_note(run_dir: Path, rank: int, text: str) -> None:
    error_note(run_dir, rank).write_text(f"{time.time():.6f}\n{text}")  # the time orders the failures


def note_if_killed(run_dir: Path, rank: int, returncode: int | None) -> None:
    """A rank that a signal ended wrote no traceback: leave the note that says so, unless it left one."""
    if returncode is not None and returncode < 0 and not error_note(run_dir, rank).exists():
        write_error_note(run_dir, rank, killed_by(-returncode))


def _kill_group(procs: list[subprocess.Popen]) -> None:
    """Stop every rank of the job, and any process a rank started (they share rank 0's process group)."""
    group = procs[0].pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline:
            for proc in procs:
                proc.poll()  # reap our own children, so a zombie does not count as alive
            try:
                os.killpg(group, 0)  # anyone left in the group?
            except ProcessLookupError:
                return
            time.sleep(0.1)


def killed_by(signum: int) -> str:
    """The report for a rank that a signal ended without a traceback, with its likely cause."""
    cause = _SIGNAL_CAUSES.get(signum, "sent by another process or the system")
    return f"{KILLED_MARK} {signal.Signals(signum).name} ({cause}); it left no traceback\n"


def _failure(label: str, returncode: int, run_dir: Path, tail: list[str], log_path: Path) -> TrainingJobError:
    errors = []
    for path in run_dir.glob("rank*.error.txt"):
        stamp, _, text = path.read_text().partition("\n")
        errors.append((float(stamp or 0), int(path.name[4:].split(".")[0]), text))
    if returncode < 0 and returncode != -signal.SIGTERM and all(r != 0 for _, r, _ in errors):
        # Rank 0 was killed from outside without a word (when it stops a job itself, it leaves a note first;
        # our own stop uses SIGTERM first): the other ranks' errors follow from it.
        errors.append((0.0, 0, killed_by(-returncode)))
    if errors:
        # The first rank to fail is the cause; the others usually fail because their peer vanished. A rank
        # killed by a signal left no traceback, so its death is noticed later than its peers' errors: it comes first.
        _, _, rank, text = min((not text.startswith(KILLED_MARK), stamp, r, text) for stamp, r, text in errors)
        others = sorted({r for _, r, _ in errors if r != rank})
        also = f" (rank(s) {others} failed after it)" if others else ""
        last = text.strip().splitlines()[-1] if text.strip() else "no message"
        if text.startswith(KILLED_MARK):
            text += "Last output of the job:\n" + "".join(tail[-10:])
        return TrainingJobError(
            f"Training job {label}: rank {rank} failed first{also}: {last}\n\n"
            f"Traceback of rank {rank}:\n{text}\nFull log: {log_path}",
            rank=rank,
            traceback=text,
            log_path=log_path,
        )
    how = (
        f"was killed by signal {signal.Signals(-returncode).name}"
        if returncode < 0
        else f"exited with code {returncode}"
    )
    hint = " (out of memory? try a smaller global_batch_size or width)" if returncode in (-9, 137) else ""
    return TrainingJobError(
        f"Training job {label} {how}{hint} and wrote no record. Last output:\n"
        f"{''.join(tail[-20:])}\nFull log: {log_path}",
        log_path=log_path,
    )
