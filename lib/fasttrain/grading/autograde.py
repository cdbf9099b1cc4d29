"""Grade a class's lab notebooks: a gradebook (CSV and JSON) and a feedback file per learner.

    python -m fasttrain.grading autograde submissions/ --out build/grades --jobs 2

Per lab, the instructor's source runs once in a sandbox (the reference run): it yields every check's
expected value. Per submission, one run in a fresh sandbox (sandbox.py) executes the lab's cells with
the learner's exercise cells and test cells whose answers are blanked (plan.py); it emits the
learner's values as plain data, and the verdict is computed here (verdict.py). Submissions run in
parallel (--jobs); each one's rows and feedback are written as it finishes (gradebook.py). Grading the
same files twice gives byte-identical gradebooks: no times, paths or random names in them.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import sandbox
from .discover import Submission, discover
from .gradebook import Output, feedback_names
from .plan import Lab, grading_plan
from .release import SOURCE_DIR, sources
from .verdict import Reference, feedback, judge, parse

WORKER = ["python", "-m", "fasttrain.grading.worker"]


@dataclass
class Limits:
    profile: str = "smoke"
    cell_timeout: float = 120  # seconds per cell
    notebook_timeout: float = 600  # seconds per run of a notebook
    memory_mb: int = 8192  # address space per process; torch alone maps ~3.3 GB
    jobs: int = 1  # submissions graded at once
    processes: int = 256  # processes and threads per submission (when the grader runs as root)
    sandbox: bool = True  # False: --unsafe-no-sandbox, for trusted notebooks only

    def __post_init__(self):
        if self.cell_timeout <= 0 or self.notebook_timeout <= 0:
            raise ValueError("cell_timeout and notebook_timeout must be positive seconds")
        if self.memory_mb < 256:
            raise ValueError(
                f"memory_mb={self.memory_mb} is too small to start Python: use at least 256 "
                "(8192 fits a lab that imports torch)"
            )
        if self.jobs < 1 or self.processes < 16:
            raise ValueError("jobs must be at least 1 and processes at least 16")

    def recorded(self) -> dict:
        """What the gradebook records: what changes a score, not how fast it was computed."""
        return {k: getattr(self, k) for k in ("profile", "cell_timeout", "notebook_timeout", "memory_mb")}


def load_labs(source_dir: str | Path = SOURCE_DIR) -> dict[str, Lab]:
    return {p.stem: Lab.load(p) for p in sources(source_dir)}


def execute(lab: Lab, cells: list[dict], limits: Limits, reference: bool, slot: int = 0):
    plan = {"cells": cells, "cell_timeout": limits.cell_timeout, "profile": limits.profile, "reference": reference}
    if not reference:
        plan["hide_names"] = lab.hide_names
    if not limits.sandbox:
        return sandbox.run_unsafe([sys.executable, *WORKER[1:]], plan, limits, lab.data)
    return sandbox.run(WORKER, plan, [] if reference else lab.hide_modules, limits, slot, lab.data)


def reference(lab: Lab, limits: Limits) -> Reference:
    """The expected value of every check, from the instructor's source; fails loudly if the source fails."""
    cells, _ = grading_plan(lab)
    ended = execute(lab, cells, limits, reference=True)
    return Reference.build(lab, parse(ended.output), ended)


def grade_submission(sub: Submission, lab: Lab | None, ref: Reference | None, limits: Limits, slot: int = 0):
    """Gradebook rows for one submission, and its feedback's text parts."""
    if sub.error or lab is None or ref is None:
        return judge(sub, lab, None, None, None, [sub.error or "not a lab notebook"], limits)
    cells, notes = grading_plan(lab, sub.nb)
    ended = execute(lab, cells, limits, reference=False, slot=slot)
    return judge(sub, lab, ref, parse(ended.output), ended, notes, limits)


def check_sandbox(limits: Limits) -> None:
    if limits.sandbox:
        sandbox.bwrap()  # raises NoSandbox with how to install it


def autograde(
    paths: list[str | Path],
    out: str | Path,
    source_dir: str | Path = SOURCE_DIR,
    limits: Limits | None = None,
    log=print,
) -> dict:
    """Grade every submission under `paths`; writes out/gradebook.{csv,json} and out/feedback/<learner>.md."""
    limits = limits or Limits()
    check_sandbox(limits)
    labs = load_labs(source_dir)
    if not labs:
        raise FileNotFoundError(f"No instructor labs in {source_dir}")
    skipped: list[str] = []
    subs = discover(paths, labs, skipped)
    for line in skipped:
        log(line)
    if not subs:
        raise FileNotFoundError(f"No notebooks (*.ipynb) in {', '.join(map(str, paths))}")
    output = Output(Path(out))
    output.claim()  # before any grading: a planted file is refused now, not after an hour of work
    started = time.monotonic()
    used = sorted({s.lab for s in subs if s.lab in labs})
    for name in used:
        sandbox.check_hidden(labs[name].hide_modules)
    with ThreadPoolExecutor(max_workers=limits.jobs) as pool:
        refs = dict(zip(used, pool.map(lambda name: reference(labs[name], limits), used)))
    names = feedback_names(sorted({s.learner for s in subs}))
    results: dict[int, tuple] = {}
    lock, slots = threading.Lock(), list(range(limits.jobs))

    def one(i: int, sub: Submission):
        with lock:
            slot = slots.pop()
        began = time.monotonic()
        try:
            rows, parts = grade_submission(sub, labs.get(sub.lab or ""), refs.get(sub.lab or ""), limits, slot)
        except Exception as exc:  # noqa: BLE001 - one file the grader chokes on must not stop the class
            note = f"the grader could not grade this file ({type(exc).__name__}: {exc})"
            rows, parts = judge(sub, labs.get(sub.lab or ""), None, None, None, [note], limits, status="crashed")
        finally:
            with lock:
                slots.append(slot)
        with lock:
            results[i] = (sub, rows, parts)
            _write(output, results, names, limits, sub.learner)
            got, of = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
            log(f"{sub.learner:<24} {sub.lab or 'unknown':<28} {got:5g} / {of:g}   {time.monotonic() - began:5.1f} s")

    with ThreadPoolExecutor(max_workers=limits.jobs) as pool:
        list(pool.map(lambda pair: one(*pair), enumerate(subs)))
    seconds = time.monotonic() - started
    log(f"{len(subs)} notebook(s) in {seconds:.1f} s: {seconds / len(subs):.1f} s per notebook (jobs={limits.jobs})")
    return gradebook([r for _, rows, _ in results.values() for r in rows], limits)


def gradebook(rows: list[dict], limits: Limits) -> dict:
    rows = sorted(rows, key=lambda r: (r["learner"], r["lab"], r["order"]))
    totals = {}
    for r in rows:
        t = totals.setdefault(
            (r["learner"], r["lab"]), {"learner": r["learner"], "lab": r["lab"], "points": 0.0, "max_points": 0.0}
        )
        t["points"] += r["points"]
        t["max_points"] += r["max_points"]
    clean = [{k: v for k, v in r.items() if k != "order"} for r in rows]
    return {"limits": limits.recorded(), "rows": clean, "totals": list(totals.values())}


def _write(output: Output, results: dict, names: dict, limits: Limits, learner: str) -> None:
    """The gradebook so far and this learner's feedback: after each submission, atomically."""
    rows = [r for _, sub_rows, _ in results.values() for r in sub_rows]
    output.write_book(gradebook(rows, limits))
    entries = sorted(
        (v for v in results.values() if v[0].learner == learner), key=lambda v: (v[0].lab or "", str(v[0].path))
    )
    output.write_feedback(names[learner], feedback(learner, entries))
