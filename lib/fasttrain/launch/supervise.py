"""Run one torchrun agent for a job and watch it: stream its output, stop it on timeout or interrupt.

The agent (fasttrain.launch.agent) starts the ranks, stops them all when one fails, and writes the
failed ranks to the run folder. What is left to the launcher is what torchrun cannot know: the time
limit of a notebook cell, and a kernel interrupt. Stopping is SIGTERM to the agent (which stops its
ranks), then SIGKILL to its process group; a rank whose agent is gone exits on its own (fasttrain.run).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

STOP_GRACE_S = 3.0  # how long the agent may take to stop its ranks before it is killed


@dataclass
class Outcome:
    returncode: int
    timed_out: bool
    tail: list[str] = field(default_factory=list)  # the last lines of output


def supervise(
    command: list[str], env: dict[str, str], log_path, timeout: float, on_line: Callable[[str], None], pass_fds=()
) -> Outcome:
    """Run `command` (the agent) to its end or to `timeout` seconds, every output line to log_path and on_line."""
    agent = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,  # its own process group: one killpg stops it and what it started there
        pass_fds=pass_fds,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(agent.stdout, lines), daemon=True).start()
    started, tail = time.monotonic(), []
    try:
        with open(log_path, "w") as log:
            while True:
                try:
                    line = lines.get(timeout=max(0.05, min(0.5, timeout - (time.monotonic() - started))))
                except queue.Empty:
                    if time.monotonic() - started > timeout:
                        stop(agent)
                        return Outcome(agent.wait(), True, tail)
                    continue
                if line is None:
                    break
                log.write(line)
                log.flush()  # `tail -f log.txt` shows a long job as it goes
                tail = (tail + [line])[-40:]
                on_line(line)
    except BaseException:
        # An interrupted cell (KeyboardInterrupt) or a failing notebook must not leave the job running on
        # unseen; its checkpoint stays, so running the cell again resumes.
        stop(agent)
        raise
    return Outcome(agent.wait(), False, tail)


def _pump(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def stop(agent: subprocess.Popen) -> None:
    """SIGTERM to the agent (it stops its ranks), then SIGKILL to its group if it is still there."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(agent.pid, sig)
        except ProcessLookupError:
            return
        try:
            agent.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
