"""Verdicts, computed outside the sandbox from the plain data a run emitted and the reference's expected values.

Everything a learner's run emits is a claim the learner controls; a test passes only when the test
cell ran to its end and every check of the reference run got a value that `probe.matches` the
expected one, which never entered that run. Reasons name the learner's own line (read here from the
submission, not from the run), a library line with the learner's line that called it, a signal only
when the exit status shows one, and never the code of a hidden check.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass

from .plan import broken_rules, hidden_lines, theirs
from .probe import describe, matches

SIGNALS = {
    signal.SIGKILL: "SIGKILL, not sent by the grader (its time limit reads 'timeout'): sent from inside the "
    "submission, or the kernel's out-of-memory killer",
    signal.SIGXCPU: "SIGXCPU: the CPU-time limit was reached",
    signal.SIGSEGV: "SIGSEGV: a segmentation fault in native code",
    signal.SIGABRT: "SIGABRT: the process aborted itself",
}


def parse(output: bytes) -> list[dict]:
    """The run's JSON lines that are objects (anything else the run wrote is ignored)."""
    records = []
    for line in output.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@dataclass
class Reference:
    """Per test cell, its checks in order: label, expected value, tolerances, line, whether hidden."""

    checks: dict[str, list[dict]]

    @classmethod
    def build(cls, lab, records: list[dict], ended) -> Reference:
        problems = [f"cell {r['cell']}: {r.get('error', r['status'])}" for r in records if r.get("status") == "failed"]
        problems += [f"cell {r['cell']} timed out" for r in records if r.get("status") == "timeout"]
        if not any(r.get("kind") == "done" for r in records):
            problems.append(f"the run did not finish (exit status {ended.returncode}, timed out: {ended.timed_out})")
        checks: dict[str, list[dict]] = {ex["grade_id"]: [] for ex in lab.graded}
        for r in records:
            if r.get("kind") != "value" or r.get("test") not in checks:
                continue
            if "refused" in r or not matches(r["value"], r["want"], r["rel"], r["abs"]):
                problems.append(f"{r['test']}: check {r['label']!r} fails the instructor's solution")
            if any(c["label"] == r["label"] for c in checks[r["test"]]):
                problems.append(f"{r['test']}: two checks are labelled {r['label']!r}; labels must be unique")
            hidden = r["line"] in hidden_lines(lab, r["test"])
            checks[r["test"]].append({k: r[k] for k in ("label", "want", "rel", "abs", "line")} | {"hidden": hidden})
        problems += [f"{gid}: no expect(...) check ran" for gid, found in checks.items() if not found]
        if problems:
            raise RuntimeError(f"The instructor source of {lab.name} fails its own tests: " + "; ".join(problems[:5]))
        return cls(checks)


def _died(ended, limits) -> tuple[str, str]:
    if ended.timed_out:
        return "timeout", f"the notebook ran past its {limits.notebook_timeout:g} s limit before this test finished"
    code = ended.returncode
    if code is not None and code > 128 and code - 128 in SIGNALS:  # bwrap reports a signal as 128 + N
        code = -(code - 128)
    if code is not None and code < 0:
        why = SIGNALS.get(
            -code, f"signal {signal.Signals(-code).name}" if -code in signal.Signals._value2member_map_ else ""
        )
        return "crashed", f"the run was ended by {why or f'signal {-code}'} before this test finished"
    return "crashed", f"the run exited with code {code} before this test finished (the worker itself exits 0)"


def _where(error: dict, lab, learner_cells: dict, test_id: str) -> str:
    """Where an error happened, in words: the learner's line, or the library's line and the learner's call."""
    frames = [f for f in error.get("frames", []) if isinstance(f, dict)]
    theirs_ = [f for f in frames if f.get("cell") in learner_cells]
    last = frames[-1] if frames else {}
    if theirs_:
        mine = theirs_[-1]
        lines = learner_cells[mine["cell"]].splitlines()
        line = (
            lines[mine["line"] - 1].strip()
            if isinstance(mine.get("line"), int) and 0 < mine["line"] <= len(lines)
            else ""
        )
        at = f"your cell {mine['cell']}, line {mine['line']}" + (f": {line}" if line else "")
        if last is mine:
            return at
        if "file" in last:
            return (
                f"in {str(last['file']).rsplit('/', 1)[-1]}, line {last.get('line')} (library code), called from {at}"
            )
        return at
    if last.get("cell") == test_id and isinstance(last.get("line"), int):
        if last["line"] in hidden_lines(lab, test_id):
            return f"in a hidden check of test cell {test_id}"
        return f"test cell {test_id}, line {last['line']}"
    return ""


def _error_text(error: dict) -> str:
    kind, message = str(error.get("type", "Error"))[:60], str(error.get("message", ""))[:200]
    return f"{kind}: {message}" if message else kind


def _judge_test(ex, lab, ref, records, ended, limits, learner_cells) -> tuple[str, str]:
    gid = ex["grade_id"]
    cell_runs = {r.get("cell"): r for r in records if r.get("kind") == "cell"}
    for sol in ex["solutions"]:  # the exercise's own cell first: that is the learner's error
        run = cell_runs.get(sol, {})
        if run.get("status") == "timeout":
            return "timeout", f"your exercise cell {sol} timed out after {limits.cell_timeout:g} s"
        if run.get("status") == "failed" and isinstance(run.get("error"), dict):
            where = _where(run["error"], lab, learner_cells, gid)
            return "failed", f"your exercise cell {sol} raised {_error_text(run['error'])}" + (
                f" ({where})" if where else ""
            )
    run = cell_runs.get(gid)
    if run is None:
        return _died(ended, limits)
    if run.get("status") == "timeout":
        return "timeout", f"test cell {gid} timed out after {limits.cell_timeout:g} s (the cell limit)"
    values = {}
    for r in records:
        if r.get("kind") == "value" and r.get("test") == gid:
            values.setdefault(r.get("label"), r)
    for n, check in enumerate(ref.checks[gid], 1):
        got = values.get(check["label"])
        name = f"hidden check {n} of {len(ref.checks[gid])}" if check["hidden"] else f"check {check['label']!r}"
        if got is None:
            if run.get("status") == "failed" and isinstance(run.get("error"), dict):
                where = _where(run["error"], lab, learner_cells, gid)
                return "failed", f"{_error_text(run['error'])} before {name} ran" + (f" ({where})" if where else "")
            return "failed", f"{name} never ran"
        if "refused" in got:
            return "failed", f"{name}: your code returned {str(got['refused'])[:120]}"
        if not matches(got.get("value"), check["want"], check["rel"], check["abs"]):
            if check["hidden"]:  # neither its label nor its values: they would tell the hidden inputs
                return "failed", f"{name} failed"
            return (
                "failed",
                f"check {check['label']!r}: expected {describe(check['want'])}, got {describe(got.get('value'))}",
            )
    if run.get("status") != "passed":
        return "failed", f"test cell {gid} did not run to its end"
    return "passed", ""


def _row(sub, lab_name, ex, order, points, status, reason) -> dict:
    return {
        "learner": sub.learner,
        "lab": lab_name,
        "exercise": ex["grade_id"],
        "points": points,
        "max_points": ex["points"],
        "status": status,
        "reason": " ".join(reason.split())[:300],
        "order": order,
    }


def judge(sub, lab, ref, records, ended, notes, limits, status: str = "invalid"):
    """Rows (one per test cell) and feedback parts for one submission."""
    lab_name = sub.lab or "unknown"
    parts = {"file": sub.path.name, "lab": lab_name, "notes": list(notes), "rule": ""}
    if records is None:
        graded = lab.graded if lab else [{"grade_id": "", "points": 0.0, "solutions": []}]
        return [_row(sub, lab_name, e, i, 0.0, status, notes[0]) for i, e in enumerate(graded)], parts
    if lab.order == "final":
        parts["rule"] = "every test ran after all of your cells, so each saw your final definitions"
    learner_cells, _ = theirs(sub.nb)
    broken = broken_rules(lab, learner_cells)
    rows = []
    for i, ex in enumerate(lab.graded):
        st, reason = _judge_test(ex, lab, ref, records, ended, limits, learner_cells)
        if st == "passed" and ex["grade_id"] in broken:
            st, reason = "failed", broken[ex["grade_id"]]
        rows.append(_row(sub, lab_name, ex, i, ex["points"] if st == "passed" else 0.0, st, reason))
    if getattr(ended, "truncated", False):
        parts["notes"].append("your run wrote more than the grader reads (16 MB); the rest was ignored")
    return rows, parts


def feedback(learner: str, entries: list) -> str:
    lines = [f"# Feedback for {learner}", ""]
    for _sub, rows, parts in entries:
        got, of = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
        lines += [f"## {parts['lab']} ({parts['file']}): {got:g} / {of:g} points", ""]
        if parts["rule"]:
            lines.append(f"- rule: {parts['rule']}")
        lines += [f"- note: {note}" for note in parts["notes"]]
        lines.append("")
        for r in rows:
            lines.append(
                f"### {r['exercise'] or '(no exercise)'}: {r['status']}, {r['points']:g} / {r['max_points']:g}"
            )
            if r["reason"]:
                lines.append(r["reason"])
            lines.append("")
    return "\n".join(lines)
