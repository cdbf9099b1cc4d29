"""launch.run: one training job, from a notebook or a script, through torchrun; its record returned."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from fasttrain import rundir
from fasttrain.config import ConfigError, TrainConfig
from fasttrain.launch.failures import TrainingJobError, TrainingTimeout, job_failure
from fasttrain.launch.progress import JobProgress
from fasttrain.launch.reuse import finished_record
from fasttrain.launch.supervise import supervise
from fasttrain.paths import runs_dir
from fasttrain.results import read_record

_RECOMPUTED: set[Path] = set()  # run folders this process has trained again (recompute asked for)


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

    show: "progress" shows a progress bar and a summary line, "all" everything the job prints, "none"
    nothing; the full log is kept in the run folder either way. timeout: seconds before every process
    of the job is stopped. recompute: train again even if the run folder holds a finished record of the
    same config and training code (also FASTTRAIN_RECOMPUTE=1), and ignore a crashed attempt's checkpoint.
    """
    timeout = _check_arguments(show, timeout)
    config = _job_config(config, profile, name, overrides)
    run_dir = rundir.folder_for(config.to_dict(), runs_dir())
    # A chapter may ask twice for one run (chapter 01's largest job is in both series): it trains once.
    wanted = recompute or os.environ.get(rundir.ENV_RECOMPUTE, "") not in ("", "0")
    recompute = wanted and run_dir.resolve() not in _RECOMPUTED
    label = config.name or run_dir.name
    _prepare_folder(run_dir)

    def say_waiting(holder: str) -> None:
        if show != "none":
            print(f"[launch] {label}: waiting for {holder}, which is running this job in {run_dir}", flush=True)

    try:
        lock = rundir.JobLock(run_dir).acquire(wait_s=timeout, on_wait=say_waiting)
    except rundir.JobRunning as exc:
        raise TrainingJobError(
            f"Training job {label} is still running in {run_dir} ({exc}) after {timeout:.0f} s of waiting. "
            f"Wait for it to finish (its record will be reused), or stop that process."
        ) from None
    with lock:
        finished = None if recompute else finished_record(run_dir, config)
        if finished is not None:
            if show != "none":
                print(f"[launch] {label}: reusing the finished run in {run_dir} (recompute=True trains again)")
            return finished
        record = _train(config, run_dir, label, timeout, show, env or {}, recompute, lock)
        if wanted:
            _RECOMPUTED.add(run_dir.resolve())
        return record


def _check_arguments(show: str, timeout: Any) -> float:
    if show not in ("progress", "all", "none"):
        raise ConfigError(f"show={show!r}: use 'progress', 'all' or 'none'.")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigError(f"timeout={timeout!r}: give the job's time limit in seconds as a number, e.g. 1800.")
    return float(timeout)


def _job_config(config: TrainConfig | None, profile: str, name: str | None, overrides: dict) -> TrainConfig:
    if config is None:
        config = TrainConfig.from_profile(profile, **overrides)
    elif overrides:
        config = config.replace(**overrides)
    if name:
        config = config.replace(name=name)
    config.validate()
    if config.num_nodes > 1:  # the launcher starts one machine's ranks; other machines start their own
        raise ConfigError(
            f"num_nodes={config.num_nodes}: launch.run starts the ranks of one machine. On a cluster, start "
            "`torchrun --nnodes N --nproc-per-node D ... -m fasttrain.run` on every node"
            " (README: 'More than one machine')."
        )
    from fasttrain.rank.checks import check_hardware  # before any process starts: a plain error, at once

    check_hardware(config, port=False)
    return config


def _prepare_folder(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()  # a unique probe: two callers may check at once
    except OSError as exc:
        raise ConfigError(
            f"cannot write the run folder {run_dir} ({exc.strerror}): give a writable out_dir=..., "
            f"or set FASTTRAIN_BUILD_DIR to a folder you can write."
        ) from None


def _train(config, run_dir, label, timeout, show, env, recompute, lock) -> dict[str, Any]:
    record_path, log_path = run_dir / rundir.RECORD, run_dir / rundir.LOG
    if recompute:
        shutil.rmtree(run_dir / rundir.CHECKPOINTS, ignore_errors=True)
    shutil.rmtree(run_dir / rundir.TORCHRUN_LOGS, ignore_errors=True)
    for stale in (record_path, run_dir / rundir.FAILURES, *run_dir.glob(".record.json.*.tmp")):
        stale.unlink(missing_ok=True)
    (run_dir / rundir.CONFIG).write_text(_json(config))
    module_args = ["fasttrain.run", "--config", str(run_dir / rundir.CONFIG), "--record", str(record_path)]
    command = rundir.torchrun_command(config.devices, module_args, run_dir=run_dir, agent="fasttrain.launch.agent")
    child_env = rundir.child_environment(
        {
            **env,
            rundir.ENV_RUN_DIR: str(run_dir.resolve()),
            rundir.ENV_LAUNCHER_PID: str(os.getpid()),
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),  # the ranks set their own threads
        }
    )
    progress = JobProgress(label, config.max_steps, show)
    started = time.perf_counter()
    try:
        outcome = supervise(command, child_env, log_path, timeout, progress.feed, pass_fds=(lock.fd,))
    finally:
        progress.close()
    if outcome.timed_out:
        raise TrainingTimeout(
            f"Training job {label} did not finish within {timeout:.0f} s (reached step {progress.step} of "
            f"{config.max_steps}); all its processes were stopped. Give it more time (timeout=...), or fewer "
            f"steps / the 'smoke' profile. Log: {log_path}",
            log_path=log_path,
        )
    if outcome.returncode or not record_path.exists():
        raise job_failure(label, run_dir, outcome.returncode, outcome.tail, log_path)
    record = read_record(record_path)
    if show != "none":
        print(_summary(label, record, time.perf_counter() - started), flush=True)
    return record


def _json(config: TrainConfig) -> str:
    import json

    return json.dumps(config.to_dict(), indent=1, default=str)


def _summary(label: str, record: dict, seconds: float) -> str:
    accuracy = record.get("final_val_accuracy")
    rate = record["throughput"]["images_per_s"]
    loss = record["loss"]["values"][-1] if record["loss"]["values"] else float("nan")
    return (
        f"[launch] {label}: done in {seconds:.1f} s: {record['steps']} steps, final loss {loss:.3f}, "
        f"validation accuracy {accuracy:.3f}, {rate:,.0f} images/s ({record['environment']['world_size']} rank(s))"
    )
