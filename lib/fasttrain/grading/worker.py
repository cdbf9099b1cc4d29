"""The grader's worker: runs one plan inside the sandbox, in one IPython shell, and emits plain data.

    python -m fasttrain.grading.worker     # the plan (JSON) on stdin; results as JSON lines on its result_fd

The plan is the lab's cells with the learner's exercise cells in place of the solutions, in the order
the grader chose. For each cell the worker emits how it ended (its error's type, message and frame
locations, never its objects); inside test cells `expect` emits the learner's values. Nothing here is
trusted: learner code runs in this process and can rewrite any of it, so the grader treats every line
as a claim about this learner only, and judges values against expected ones this run never saw.
"""

from __future__ import annotations

import importlib
import json
import linecache
import os
import signal
import sys
import traceback

from . import probe


class CellTimeout(BaseException):
    """Raised by the alarm in a cell that runs past its limit (BaseException: `except Exception` can't eat it)."""


def _shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell.instance(config=config)


def _hide(names: list[str]) -> None:
    """Replace library names a lab asks learners to write themselves, e.g. torch.amp.GradScaler."""
    for dotted in names:
        module_name, _, attr = dotted.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue

        def hidden(*args, _name=dotted, **kwargs):
            raise RuntimeError(f"{_name} is not available while this lab is graded: the exercise asks you to write it")

        if hasattr(module, attr):
            setattr(module, attr, hidden)


def _error(exc: BaseException, cells: dict[str, str]) -> dict:
    """Type, message and where: cell frames by the lab's cell label, library frames by file and line."""
    frames = []
    for f in traceback.extract_tb(exc.__traceback__):
        if f.filename.endswith("interactiveshell.py"):
            continue
        if f.filename in cells:
            frames.append({"cell": cells[f.filename], "line": f.lineno})
        else:
            frames.append({"file": f.filename, "line": f.lineno, "name": f.name})
    return {"type": type(exc).__name__, "message": str(exc)[:300], "frames": frames[-12:]}


def grade(plan: dict, emit) -> None:
    shell = _shell()
    timeout = float(plan["cell_timeout"])
    cells: dict[str, str] = {}  # linecache name of a compiled cell -> the cell's label

    def on_alarm(signum, frame):
        raise CellTimeout()

    _hide(plan.get("hide_names", []))
    for cell in plan["cells"]:
        label, kind = cell["label"], cell["kind"]
        probe._EMIT["test"] = cell["grade_id"] if kind == "test" else None
        before = set(linecache.cache)
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            result = shell.run_cell(cell["source"], store_history=False, silent=False)
            error = result.error_before_exec or result.error_in_exec
            if error is None and kind == "parameters":  # what papermill injects after the parameters cell
                error = shell.run_cell(f"profile = {plan['profile']!r}", store_history=False).error_in_exec
        except CellTimeout as exc:  # the alarm landed outside the cell's own code
            error = exc
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for name in set(linecache.cache) - before:
            if name.startswith("<"):  # IPython's name for the cell's code, not a module it imported
                cells[name] = label
        record = {"kind": "cell", "cell": label, "grade_id": cell["grade_id"], "type": kind, "status": "passed"}
        if isinstance(error, CellTimeout):
            record["status"] = "timeout"
        elif error is not None:
            record.update(status="failed", error=_error(error, cells))
        emit(record)
    probe._EMIT["test"] = None


def main() -> int:
    plan = json.loads(sys.stdin.buffer.read())
    sys.stdin = open(os.devnull)
    fd = plan["result_fd"]
    probe._EMIT.update(fd=fd, reference=bool(plan.get("reference")))

    def emit(record: dict) -> None:
        os.write(fd, (json.dumps(record) + "\n").encode())

    grade(plan, emit)
    emit({"kind": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
