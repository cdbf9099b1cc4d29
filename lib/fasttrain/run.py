"""The rank entry point: what `python -m fasttrain.run` and `torchrun ... -m fasttrain.run` run in every rank.

    python -m fasttrain.run --profile smoke --accelerator cpu --record build/r.json
    python -m fasttrain.run --profile smoke --accelerator cpu --devices 2 --record build/r.json  # via torchrun
    torchrun --standalone --nproc-per-node 2 -m fasttrain.run --devices 2 --profile smoke --record build/r.json
    python -m fasttrain.run --config my.yaml --lr 0.2          # a file, then flags on top

The job is fasttrain.rank.job; this module only guards the process around it. Started by torchrun, a
rank stops within a fraction of a second when its agent dies (imports included), and at once when
the agent stops it (SIGTERM), even while it waits inside a collective. An uncaught error is recorded
in torchrun's error file (`@record`), which names the rank and its traceback in the launcher.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

# Held while the rank writes torchrun's error file: a SIGTERM then waits until the file is whole, since
# torchrun's agent fails to parse a half-written one and the job's failure would lose its cause.
_WRITING_ERROR = threading.Lock()


def _guard_rank() -> None:
    """Set up before torch is imported (seconds on a small machine), so the guards hold from the start."""
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:  # an orphan is handed to init (or a subreaper) at once
            time.sleep(0.2)
        os._exit(3)

    def stop_when_asked() -> None:
        signal.sigwait({signal.SIGTERM})
        with _WRITING_ERROR:
            os._exit(128 + signal.SIGTERM)

    # SIGTERM is blocked in this thread and every thread started after it, so only sigwait receives it:
    # a Python handler would wait for the main thread, which may sit in a collective for minutes.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    threading.Thread(target=watch_parent, name="fasttrain-parent-watch", daemon=True).start()
    threading.Thread(target=stop_when_asked, name="fasttrain-sigterm", daemon=True).start()


if __name__ == "__main__":
    if "TORCHELASTIC_RUN_ID" in os.environ:
        _guard_rank()
    from torch.distributed.elastic.multiprocessing.errors import record

    from fasttrain.rank.job import main

    def main_then_error_file() -> int:
        try:
            return main()
        except BaseException:
            _WRITING_ERROR.acquire()  # released once @record has written the error file
            raise

    try:
        code = record(main_then_error_file)()
    finally:
        if _WRITING_ERROR.locked():
            _WRITING_ERROR.release()
    # The record is written and the process group closed: skip the interpreter's teardown of torch and
    # Lightning (~1.5 s per rank on the 2-core machine, freeing memory the OS takes back anyway).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
