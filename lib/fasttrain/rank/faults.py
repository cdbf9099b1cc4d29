"""Fault injection for the course's tests: FASTTRAIN_FAULT='KIND:RANK:STEP'.

KIND is crash (an exception), hang (sleeps) or kill (SIGKILL to itself: the OOM killer, a pre-empted node).
"""

from __future__ import annotations

import os
import signal
import time

from fasttrain.rundir import ENV_FAULT


def maybe_inject_fault(global_rank: int, global_step: int) -> None:
    spec = os.environ.get(ENV_FAULT)
    if not spec:
        return
    kind, rank, step = spec.split(":")
    if global_rank == int(rank) and global_step == int(step):
        if kind == "crash":
            raise RuntimeError(f"injected fault ({ENV_FAULT}={spec}) on rank {rank} at step {step}")
        if kind == "hang":
            time.sleep(10**6)
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
