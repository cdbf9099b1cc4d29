"""torchrun, as the launcher runs it: `python -m fasttrain.launch.agent <torchrun's arguments>`.

It is torch.distributed.run (the same arguments, the same agent, the same per-rank error files) with
two additions the launcher needs: the agent stops when the process that started it dies (a notebook
kernel killed mid-job leaves nothing training), and the failed ranks as torchrun saw them are written
to the run folder's failures.json, so the launcher names the rank and its traceback without parsing
torchrun's printed summary.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from fasttrain import rundir


def _stop_with_launcher() -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:  # an orphan is handed to init (or a subreaper) at once
            time.sleep(0.2)
        os._exit(3)  # the ranks watch this process in turn (fasttrain.run)

    threading.Thread(target=watch, name="fasttrain-launcher-watch", daemon=True).start()


def failure_rows(failures) -> list[dict]:
    """torchrun's ProcessFailure objects as plain data: rank, exit code, signal, message, traceback."""
    rows = []
    for rank, failure in sorted(failures.items()):
        data = failure.error_file_data or {}
        message = data.get("message", {})
        extra = message.get("extraInfo", {}) if isinstance(message, dict) else {}
        rows.append(
            dict(
                rank=rank,
                local_rank=failure.local_rank,
                exitcode=failure.exitcode,
                signal=failure.signal_name() if failure.exitcode < 0 else None,
                message=message.get("message", "") if isinstance(message, dict) else str(failure.message),
                traceback=extra.get("py_callstack", ""),
                timestamp=failure.timestamp,
            )
        )
    return rows


MONITOR_INTERVAL_S = 1.0


def main(argv: list[str] | None = None) -> int:
    _stop_with_launcher()  # before importing torch: that alone takes seconds on a small machine
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    argv = sys.argv[1:] if argv is None else argv
    if not any(a.startswith(("--monitor-interval", "--monitor_interval")) for a in argv):
        # torchrun polls its ranks every 0.1 s by default: a few percent of a core that a 2-core machine's
        # ranks need. Once a second still stops the others within seconds of a rank's crash.
        argv = ["--monitor-interval", str(MONITOR_INTERVAL_S), *argv]
    args = torchrun.parse_args(argv)
    run_dir = Path(os.environ[rundir.ENV_RUN_DIR])
    try:
        torchrun.run(args)
    except ChildFailedError as exc:
        rows = failure_rows(exc.failures)
        (run_dir / rundir.FAILURES).write_text(json.dumps(rows, indent=1))
        print(exc.format_msg(), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    # The ranks have exited and torchrun has closed its store: skip the interpreter's teardown of torch,
    # which the launcher would otherwise wait for after every job.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
