"""Grade a class's lab notebooks: a gradebook (CSV and JSON) and a feedback file per learner.

    python -m fasttrain.grading autograde submissions/ --out build/grades

Each submission runs in a fresh process, in a scratch folder holding only a copy of it, with a
memory cap and per-cell and per-notebook time limits; whatever it does, the rest of the class is
still graded. It runs twice: as submitted, under papermill (where it stops and why, for feedback),
and in the lab's own order with the grader's cells and hidden tests around the learner's exercise
cells (the score). Scores come only from the results the grader's worker sends back over a pipe
(see harness.py), never from the notebook's output. Grading the same files twice gives the same
gradebook: no times, paths or random names in it.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .notebooks import HIDDEN, exercises, grade_meta, read
from .release import SOURCE_DIR, sources

COLUMNS = ["learner", "lab", "exercise", "points", "max_points", "status", "reason"]
MISSING_STUB = 'raise NotImplementedError("The cell of exercise {grade_id} is missing from the submission.")'


@dataclass
class Limits:
    profile: str = "smoke"
    cell_timeout: float = 120  # seconds per cell
    notebook_timeout: float = 600  # seconds per run of a notebook (it runs twice)
    memory_mb: int = 8192  # address space per process; torch alone maps ~3.3 GB

    def __post_init__(self):
        if self.cell_timeout <= 0 or self.notebook_timeout <= 0:
            raise ValueError("cell_timeout and notebook_timeout must be positive seconds")
        if self.memory_mb < 256:
            raise ValueError(
                f"memory_mb={self.memory_mb} is too small to start Python: use at least 256 "
                "(8192 fits a lab that imports torch)"
            )


@dataclass
class Lab:
    name: str
    nb: nbformat.NotebookNode
    graded: list = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Lab:
        nb = read(path)
        return cls(path.stem, nb, exercises(nb))


@dataclass
class Submission:
    path: Path
    learner: str
    lab: str | None
    nb: nbformat.NotebookNode | None = None
    error: str | None = None  # why it could not be read


# -- finding who submitted what ---------------------------------------------------------------------------


def load_labs(source_dir: str | Path = SOURCE_DIR) -> dict[str, Lab]:
    return {p.stem: Lab.load(p) for p in sources(source_dir)}


def discover(paths: list[str | Path], labs: dict[str, Lab]) -> list[Submission]:
    """Notebooks under each folder (learner = the subfolder, or the file name less the lab's name)."""
    found = []
    for arg in paths:
        arg = Path(arg)
        if arg.is_dir():
            files = sorted(p for p in arg.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
            found += [(p, arg) for p in files]
        elif arg.is_file():
            found.append((arg, None))
        else:
            raise FileNotFoundError(f"No submission at {arg}: pass notebooks or folders of them")
    subs, seen = [], set()
    for path, root in found:
        sub = _identify(path, root, labs)
        if (sub.learner, sub.lab) in seen:  # two files for one lab: keep both, told apart by file name
            sub.learner = f"{sub.learner}/{path.name}"
        seen.add((sub.learner, sub.lab))
        subs.append(sub)
    return sorted(subs, key=lambda s: (s.learner, s.lab or "", str(s.path)))


def _identify(path: Path, root: Path | None, labs: dict[str, Lab]) -> Submission:
    nb, error = None, None
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8", errors="replace"), as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is graded zero with the reason
        nb, error = (
            None,
            f"not a valid notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
        )
    lab = None
    if nb is not None:
        meta = nb.metadata.get("fasttrain", {})
        named = meta.get("lab") if isinstance(meta, dict) else None
        lab = named if isinstance(named, str) and named in labs else None
    if lab is None:
        named = [name for name in labs if name in path.name]
        lab = max(named, key=len) if named else None
    if lab is None and nb is not None:
        ids = {str(grade_meta(c).get("grade_id")) for c in nb.cells if isinstance(grade_meta(c), dict)}
        overlap = {name: len(ids & {e["grade_id"] for e in labs[name].graded}) for name in labs}
        best = max(overlap, key=overlap.get, default=None)
        lab = best if best and overlap[best] else None
    rel = path.relative_to(root) if root else Path(path.name)
    if len(rel.parts) > 1:
        learner = rel.parts[0]
    else:
        learner = path.stem.replace(lab, "").strip("_-. ") if lab else path.stem
        learner = learner or path.resolve().parent.name
    if nb is not None and lab is None:
        example = next(iter(labs), "lab1")
        error = f"not one of the labs ({', '.join(labs)}): name the file after its lab, e.g. {example}.ipynb"
    return Submission(path, learner, lab, nb, error)


# -- what the worker runs ---------------------------------------------------------------------------------


def grading_plan(lab: Lab, submission_nb, hidden: bool = True) -> tuple[list[dict], list[str]]:
    """The lab's cells in the lab's order, with the learner's exercise cells in place of the solutions.

    Only exercise (solution) cells come from the submission: cells a learner added, deleted, edited or
    moved elsewhere change nothing, and a missing exercise cell becomes a stub that says so.
    """
    theirs, notes = {}, []
    for cell in submission_nb.cells:
        meta = grade_meta(cell) if isinstance(cell.get("metadata"), dict) else {}
        if cell.get("cell_type") == "code" and meta.get("solution") and meta.get("grade_id"):
            if meta["grade_id"] in theirs:
                notes.append(f"exercise cell {meta['grade_id']} appears twice; the first one is graded")
            else:
                theirs[meta["grade_id"]] = cell
    order = [gid for gid in theirs]
    expected = [grade_meta(c)["grade_id"] for c in lab.nb.cells if grade_meta(c).get("solution")]
    if [g for g in expected if g in order] != [g for g in order if g in expected]:
        notes.append("the exercise cells were reordered; the grader runs them in the lab's order")
    cells = []
    for i, cell in enumerate(lab.nb.cells):
        if cell.cell_type != "code":
            continue
        meta, tags = grade_meta(cell), cell.metadata.get("tags", [])
        gid = meta.get("grade_id")
        if meta.get("solution"):
            mine = theirs.get(gid)
            if mine is None:
                notes.append(f"the exercise cell {gid} is missing; it scores zero")
            source = mine.source if mine is not None else MISSING_STUB.format(grade_id=gid)
            cells.append({"kind": "solution", "grade_id": gid, "label": gid, "source": source})
        elif meta.get("grade"):
            source = cell.source if hidden else HIDDEN.sub("", cell.source)
            cells.append({"kind": "test", "grade_id": gid, "label": gid, "source": source})
        else:
            kind = "parameters" if "parameters" in tags else "setup"
            cells.append({"kind": kind, "grade_id": None, "label": f"{i}", "source": cell.source})
    return cells, notes


def run_worker(mode: str, plan: dict, scratch: Path, limits: Limits) -> tuple[list[dict], dict]:
    """Run the harness in a new session with the limits; returns its authentic messages and how it ended."""
    read_end, write_end = os.pipe()
    nonce = secrets.token_hex(16)
    payload = json.dumps({**plan, "result_fd": write_end, "nonce": nonce}).encode()
    env = {
        **os.environ,
        "FASTTRAIN_BUILD_DIR": str(scratch / "build"),
        "MPLCONFIGDIR": str(scratch / ".mpl"),
        "IPYTHONDIR": str(scratch / ".ipython"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    memory = limits.memory_mb * 2**20

    def confine():  # in the child, before exec: the cap covers the worker and the kernels it starts
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(read_end, chunks), daemon=True)
    reader.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fasttrain.grading.harness", mode],
        cwd=scratch,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_end,),
        start_new_session=True,
        preexec_fn=confine,
    )
    os.close(write_end)
    timed_out = False
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    try:
        proc.wait(timeout=limits.notebook_timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_group(proc)
    reader.join(timeout=10)
    messages, forged = [], 0
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if isinstance(message, dict) and message.pop("nonce", None) == nonce:
            messages.append(message)
        else:
            forged += 1
    return messages, {"returncode": proc.returncode, "timed_out": timed_out, "forged": forged}


def _drain(fd: int, chunks: list[bytes]) -> None:
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the worker and everything it started (kernels, a learner's subprocesses)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# -- grading ----------------------------------------------------------------------------------------------


def grade_submission(
    sub: Submission, labs: dict[str, Lab], limits: Limits, hidden: bool = True, as_submitted: bool = True
) -> tuple[list[dict], dict]:
    """Gradebook rows for one submission, and what its feedback needs."""
    lab = labs.get(sub.lab) if sub.lab else None
    info = _info(sub)
    if sub.error or lab is None:
        return _zero(sub, lab, "invalid", sub.error or "not a lab notebook", info)
    cells, info["notes"] = grading_plan(lab, sub.nb, hidden)
    info["exercises"] = {ex["grade_id"]: ex["solutions"] for ex in lab.graded}
    with tempfile.TemporaryDirectory(prefix="fasttrain-grade-") as tmp:
        scratch = Path(tmp)
        shutil.copyfile(sub.path, scratch / sub.path.name)
        common = {"profile": limits.profile, "cell_timeout": limits.cell_timeout}
        if as_submitted:
            messages, ended = run_worker(
                "execute", {**common, "notebook": sub.path.name, "output": "executed.ipynb"}, scratch, limits
            )
            info["executed"] = next((m for m in messages if m.get("event") == "executed"), None) or _died(
                ended, limits, "running the notebook as submitted"
            )
        messages, ended = run_worker("grade", {**common, "cells": cells}, scratch, limits)
    if ended["forged"]:
        info["notes"].append(
            f"{ended['forged']} message(s) on the grader's channel did not come from the grader; they were ignored"
        )
    for m in messages:
        if m.get("event") == "test":
            info["tests"].setdefault(m["grade_id"], m)
        elif m.get("event") == "solution":
            info["solutions"].setdefault(m["grade_id"], m)
        elif m.get("event") == "setup":
            info["setup"].append(m)
    rows = []
    for ex in lab.graded:
        result = info["tests"].get(ex["grade_id"]) or _died(ended, limits, "this test ran")
        status, reason = result["status"], result.get("reason", "")
        broken = [
            info["solutions"][s]
            for s in ex["solutions"]
            if info["solutions"].get(s, {}).get("status", "passed") != "passed"
        ]
        if status == "failed" and broken:
            first = broken[0]
            reason = (
                f"exercise cell {first['grade_id']} raised {first['reason']}"
                if first["status"] == "failed"
                else f"exercise cell {first['grade_id']}: {first['reason']}"
            )
        rows.append(_row(sub, ex, ex["points"] if status == "passed" else 0.0, status, reason))
    return rows, info


def _info(sub: Submission) -> dict:
    return {
        "learner": sub.learner,
        "lab": sub.lab or "unknown",
        "file": sub.path.name,
        "notes": [],
        "tests": {},
        "solutions": {},
        "setup": [],
        "executed": None,
        "exercises": {},
    }


def _zero(sub: Submission, lab: Lab | None, status: str, reason: str, info: dict) -> tuple[list[dict], dict]:
    info["notes"].append(reason)
    graded = lab.graded if lab else [{"grade_id": "", "points": 0.0}]
    return [_row(sub, e, 0.0, status, reason) for e in graded], info


def _died(ended: dict, limits: Limits, before: str) -> dict:
    if ended["timed_out"]:
        return {
            "status": "timeout",
            "reason": f"timed out after {limits.notebook_timeout:g} s (the notebook's limit) before {before}",
        }
    code = ended["returncode"]
    why = " (killed: out of memory?)" if code == -signal.SIGKILL else ""
    return {"status": "crashed", "reason": f"the grading process exited with code {code}{why} before {before}"}


def _row(sub: Submission, ex: dict, points: float, status: str, reason: str) -> dict:
    return {
        "learner": sub.learner,
        "lab": sub.lab or "unknown",
        "exercise": ex["grade_id"],
        "points": points,
        "max_points": ex["points"],
        "status": status,
        "reason": " ".join(reason.split())[:300],
    }


def autograde(
    paths: list[str | Path],
    out: str | Path,
    source_dir: str | Path = SOURCE_DIR,
    limits: Limits | None = None,
    log=print,
    as_submitted: bool = True,
) -> dict:
    """Grade every submission under `paths`; writes out/gradebook.{csv,json} and out/feedback/<learner>.md.

    as_submitted=False skips the papermill run of each notebook as handed in (feedback only, never score).
    """
    limits = limits or Limits()
    labs = load_labs(source_dir)
    if not labs:
        raise FileNotFoundError(f"No instructor labs in {source_dir}")
    subs = discover(paths, labs)
    if not subs:
        raise FileNotFoundError(f"No notebooks (*.ipynb) in {', '.join(map(str, paths))}")
    rows, infos = [], []
    for sub in subs:
        try:
            sub_rows, info = grade_submission(sub, labs, limits, as_submitted=as_submitted)
        except Exception as exc:  # noqa: BLE001 - one file the grader chokes on must not stop the class
            sub_rows, info = _zero(
                sub,
                labs.get(sub.lab or ""),
                "crashed",
                f"the grader could not grade this file ({type(exc).__name__}: {exc})",
                _info(sub),
            )
        rows += sub_rows
        infos.append((info, sub_rows))
        got, of = sum(r["points"] for r in sub_rows), sum(r["max_points"] for r in sub_rows)
        log(f"{sub.learner:<24} {sub.lab or 'unknown':<28} {got:5g} / {of:g}")
    book = gradebook(rows, limits)
    write_gradebook(book, infos, Path(out))
    return book


def gradebook(rows: list[dict], limits: Limits) -> dict:
    totals = {}
    for r in rows:
        t = totals.setdefault(
            (r["learner"], r["lab"]), {"learner": r["learner"], "lab": r["lab"], "points": 0.0, "max_points": 0.0}
        )
        t["points"] += r["points"]
        t["max_points"] += r["max_points"]
    return {"limits": asdict(limits), "rows": rows, "totals": list(totals.values())}


def write_gradebook(book: dict, infos: list, out: Path) -> None:
    """Written last, from the grader's own results: files a submission left in `out` are overwritten."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gradebook.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(book["rows"])
    (out / "gradebook.json").write_text(json.dumps(book, indent=1) + "\n")
    feedback = out / "feedback"
    if feedback.exists():
        shutil.rmtree(feedback)
    feedback.mkdir()
    by_learner: dict[str, list] = {}
    for info, rows in infos:
        by_learner.setdefault(info["learner"], []).append((info, rows))
    for learner, entries in by_learner.items():
        (feedback / f"{_safe(learner)}.md").write_text(_feedback(learner, entries))


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "learner"


def _feedback(learner: str, entries: list) -> str:
    lines = [f"# Feedback for {learner}", ""]
    for info, rows in entries:
        got, of = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
        lines += [f"## {info['lab']} ({info['file']}): {got:g} / {of:g} points", ""]
        for note in info["notes"]:
            lines.append(f"- note: {note}")
        ran = info.get("executed")
        if ran and ran["status"] != "passed":
            where = f" in cell {ran['cell']}" if ran.get("cell") is not None else ""
            lines.append(f"- your notebook as submitted stopped{where}: {ran.get('reason', '')}")
        for m in info["setup"]:
            lines.append(f"- the lab's cell {m['label']} failed after your code ran: {m['reason']}")
        lines.append("")
        for r in rows:
            lines.append(
                f"### {r['exercise'] or '(no exercise)'}: {r['status']}, {r['points']:g} / {r['max_points']:g}"
            )
            if r["reason"]:
                lines.append(f"{r['reason']}")
            test = info["tests"].get(r["exercise"], {})
            if test.get("restored"):
                lines.append(f"(the grader put back {', '.join(test['restored'])}, which your code had replaced)")
            theirs = [info["solutions"].get(s, {}) for s in info["exercises"].get(r["exercise"], [])]
            tb = next((m["traceback"] for m in theirs if m.get("traceback")), None) or test.get("traceback")
            if tb and r["status"] != "passed":
                lines += ["```", tb.rstrip(), "```"]
            lines.append("")
        if ran and ran.get("traceback"):
            lines += ["### your notebook as submitted", "```", ran["traceback"].rstrip()[-4000:], "```", ""]
    return "\n".join(lines)
