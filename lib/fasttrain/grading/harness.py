"""The grader's worker: runs inside the sandbox process that autograde starts for one submission.

    python -m fasttrain.grading.harness grade     # plan (JSON) on stdin, results on the fd it names
    python -m fasttrain.grading.harness execute   # papermill the submission as submitted, summary on the fd

`grade` runs the lab in its own order: the grader's cells (setup, tests with hidden checks) and the
learner's exercise cells, in one IPython shell. The plan arrives on stdin, so no file in the working
folder holds the hidden tests. Each test's outcome goes to a pipe that only the grader reads, stamped
with a nonce, the moment the test ends: what the notebook prints never counts. Before every test the
grader's names and every library callable are put back as they were after the grader's last cell, so
a learner's cell cannot swap out `math.isclose` or a test helper; a swap made while a test runs voids
that test ("tampered").
"""

from __future__ import annotations

import ast
import importlib
import json
import linecache
import os
import signal
import sys
import traceback
import warnings
from types import ModuleType

MISSING = object()


class CellTimeout(BaseException):
    """Raised by the alarm in a cell that runs past its limit (BaseException: `except Exception` can't eat it)."""


class Guard:
    """A snapshot of sys.modules and every module's (and class's) callables, to put back what a learner swapped.

    Libraries patch themselves lazily too (torch wraps Optimizer.step and manual_seed on first use), so
    only replacements the learner made count: functions and classes from the learner's cells, or
    objects of such classes, or wrappers around them.
    """

    def __init__(self):
        self.modules = dict(sys.modules)
        self.owners = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, mod in list(sys.modules.items()):
                attrs = getattr(mod, "__dict__", None)
                if not isinstance(attrs, dict):
                    continue
                snap = {k: v for k, v in attrs.items() if callable(v) or isinstance(v, ModuleType)}
                self.owners.append((mod, name, snap))
                for k, v in snap.items():
                    if isinstance(v, type) and getattr(v, "__module__", None) == name:
                        methods = {
                            m: f
                            for m, f in vars(v).items()
                            if callable(f) or isinstance(f, (staticmethod, classmethod, property))
                        }
                        self.owners.append((v, f"{name}.{k}", methods))

    def restore(self, learner_files: set) -> list[str]:
        """Put back what the learner's code replaced; returns what, e.g. ['math.isclose']."""
        changed = []
        for name, mod in self.modules.items():
            now = sys.modules.get(name, MISSING)
            if now is not mod and now is not MISSING and getattr(now, "__spec__", None) is None:
                sys.modules[name] = mod
                changed.append(f"sys.modules[{name!r}]")
        for owner, label, snap in self.owners:
            now = vars(owner)
            for k, v in snap.items():
                new = now.get(k, MISSING)
                if new is not v and new is not MISSING and _learner_made(new, learner_files):
                    try:
                        setattr(owner, k, v)
                        changed.append(f"{label}.{k}")
                    except (AttributeError, TypeError):
                        pass
        return changed


def _learner_made(value, files: set) -> bool:
    """Whether `value` is (or wraps) a function or class from the learner's cells, or an object of such a class."""
    try:
        for _ in range(8):
            code = getattr(value, "__code__", None)
            if code is not None and code.co_filename in files:
                return True
            if isinstance(value, type) and value.__module__ == "__main__":
                return True
            if type(value).__module__ == "__main__":
                return True
            value = (
                getattr(value, "__func__", None) or getattr(value, "func", None) or getattr(value, "__wrapped__", None)
            )
            if value is None:
                return False
    except Exception:  # noqa: BLE001 - an object that fights introspection is not ours
        return True
    return False


def _imports(sources: list[str]) -> list[str]:
    """Modules the grader's cells import: loaded (and guarded) before any learner code runs."""
    names = []
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
                names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell.instance(config=config)


def _describe(exc: BaseException, labels: dict[str, str], timeout: float) -> dict:
    """Status, a one-line reason and a traceback whose cell frames are named after the lab's cells."""
    if isinstance(exc, CellTimeout):
        return {"status": "timeout", "reason": f"timed out after {timeout:g} s"}
    frames = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in frames if not f.filename.endswith(("interactiveshell.py",))]
    for f in frames:
        f.filename = labels.get(f.filename, f.filename)
    where = next((f for f in reversed(frames) if f.filename.startswith("<cell ")), None)
    message = f"{type(exc).__name__}: {exc}".rstrip(": ") if str(exc) else type(exc).__name__
    reason = message
    if isinstance(exc, AssertionError) and where is not None:
        reason = f"{message} at {where.filename[1:-1]}, line {where.lineno}: {where.line}"
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(exc), exc))
    return {"status": "failed", "reason": reason, "traceback": "Traceback (most recent call last):\n" + text}


def grade(plan: dict, report) -> None:
    shell = _shell()
    ns = shell.user_ns
    timeout = float(plan["cell_timeout"])
    labels: dict[str, str] = {}
    learner_files: set[str] = set()
    grader_names: dict[str, object] = {}

    def on_alarm(signum, frame):
        raise CellTimeout()

    def run(source: str, label: str, learner: bool = False):
        before = set(linecache.cache)
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            result = shell.run_cell(source, store_history=False, silent=False)
        except CellTimeout as exc:  # the alarm landed outside the cell's own code
            return exc
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for name in set(linecache.cache) - before:
            labels[name] = f"<cell {label}>"
            if learner:
                learner_files.add(name)
        return result.error_before_exec or result.error_in_exec

    def settle(before: dict):
        """Remember the names a grader cell bound, and trust the modules as they are now."""
        for k, v in ns.items():
            if before.get(k, MISSING) is not v and not k.startswith("_"):
                grader_names[k] = v
        return Guard()

    def restore(guard: Guard) -> list[str]:
        changed = guard.restore(learner_files)
        for k, v in grader_names.items():
            if ns.get(k, MISSING) is not v:
                ns[k] = v
                changed.append(k)
        return changed

    for name in _imports([c["source"] for c in plan["cells"] if c["kind"] != "solution"]):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    guard, restored = Guard(), set()
    for cell in plan["cells"]:
        kind, label = cell["kind"], cell["label"]
        if kind == "solution":
            error = run(cell["source"], label, learner=True)
            report(
                {
                    "event": "solution",
                    "grade_id": cell["grade_id"],
                    **({"status": "passed"} if error is None else _describe(error, labels, timeout)),
                }
            )
            continue
        restored.update(restore(guard))  # the grader's cells run as if no learner cell had touched them
        before = dict(ns)
        error = run(cell["source"], label)
        if kind == "parameters" and error is None:  # what papermill injects after the parameters cell
            error = run(f"profile = {plan['profile']!r}", "injected parameters")
        tampered = guard.restore(learner_files) if kind == "test" else []
        guard = settle(before)
        if kind != "test":
            if error is not None:
                report({"event": "setup", "label": label, **_describe(error, labels, timeout)})
            continue
        outcome = {"status": "passed"} if error is None else _describe(error, labels, timeout)
        if tampered and outcome["status"] == "passed":
            outcome = {
                "status": "tampered",
                "reason": "the code under test replaced " + ", ".join(sorted(tampered)) + " while the test ran",
            }
        report({"event": "test", "grade_id": cell["grade_id"], "restored": sorted(restored), **outcome})
        restored = set()


def execute(plan: dict, report) -> None:
    """The submission as submitted, under papermill: where it stops and why (feedback, not score)."""
    import papermill as pm

    summary = {"event": "executed", "status": "passed"}
    try:
        pm.execute_notebook(
            plan["notebook"],
            plan["output"],
            parameters={"profile": plan["profile"]},
            cwd=os.getcwd(),
            execution_timeout=plan["cell_timeout"],
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
        )
    except BaseException as exc:  # noqa: BLE001 - every way a notebook can fail is feedback
        name = type(exc).__name__
        if name == "PapermillExecutionError":
            summary = {
                "event": "executed",
                "status": "failed",
                "cell": exc.exec_count,
                "reason": f"{exc.ename}: {exc.evalue}".rstrip(": "),
                "traceback": _plain("\n".join(exc.traceback)),
            }
        elif "Timeout" in name or "timed out" in str(exc).lower():
            summary = {
                "event": "executed",
                "status": "timeout",
                "reason": f"a cell timed out after {plan['cell_timeout']:g} s",
            }
        else:
            summary = {"event": "executed", "status": "crashed", "reason": f"{name}: {exc}".strip()[:500]}
    report(summary)


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def main(argv=None) -> int:
    mode = (argv or sys.argv[1:])[0]
    plan = json.loads(sys.stdin.buffer.read())
    sys.stdin = open(os.devnull)
    fd, nonce = plan.pop("result_fd"), plan.pop("nonce")
    write, dumps = os.write, json.dumps  # bound now: later patches to os or json don't reach the channel

    def report(message: dict) -> None:
        write(fd, (dumps({**message, "nonce": nonce}) + "\n").encode())

    {"grade": grade, "execute": execute}[mode](plan, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
