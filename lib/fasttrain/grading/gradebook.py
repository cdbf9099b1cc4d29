"""The output folder: a gradebook (CSV, JSON) and a feedback file per learner, written only by the grader.

The folder is the grader's: it is created with a marker file, and an existing folder is used only if
it is empty or holds the marker and nothing but what the grader writes (`Output.claim` refuses
anything else before a single notebook is graded). Every file is written whole to a temporary name
and renamed into place, so a reader never sees half a gradebook; the gradebook is rewritten as each
learner finishes. Feedback names are unique even when learners' names differ only in punctuation or
case, and no CSV cell can start a spreadsheet formula.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import tempfile
from pathlib import Path

COLUMNS = ["learner", "lab", "exercise", "points", "max_points", "status", "reason"]
MARKER = ".fasttrain-grades"
OWNED = {MARKER: "file", "gradebook.csv": "file", "gradebook.json": "file", "feedback": "dir"}


class OutputRefused(ValueError):
    """The output folder holds something the grader did not write."""


def _kind(path: Path) -> str | None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"


def _refuse(path: Path, what: str) -> OutputRefused:
    return OutputRefused(
        f"{path} {what}; the grader writes only into a folder of its own: move it away, or pass another --out"
    )


class Output:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.feedback = self.out / "feedback"

    def claim(self) -> None:
        """Make the folder ours, or refuse a folder with anything in it the grader did not put there."""
        if _kind(self.out) not in (None, "dir"):
            raise _refuse(self.out, "exists and is not a folder")
        if _kind(self.out) is None:
            self.out.mkdir(parents=True)
        entries = sorted(os.listdir(self.out))
        if entries and MARKER not in entries:
            raise _refuse(self.out, f"is not empty and is not a gradebook folder (no {MARKER} in it)")
        for name in entries:
            want, got = OWNED.get(name), _kind(self.out / name)
            if want is None:
                raise _refuse(self.out / name, "was not written by the grader")
            if got != want:
                raise _refuse(self.out / name, f"is {'a folder' if got == 'dir' else 'not a regular file'}")
        if _kind(self.feedback) == "dir":
            for name in sorted(os.listdir(self.feedback)):
                if not name.endswith(".md") or _kind(self.feedback / name) != "file":
                    raise _refuse(self.feedback / name, "was not written by the grader")
                (self.feedback / name).unlink()  # last run's feedback: this run writes its own
        else:
            self.feedback.mkdir()
        write_atomic(self.out / MARKER, "This folder is written by `python -m fasttrain.grading autograde`.\n")

    def write_book(self, book: dict) -> None:
        write_atomic(self.out / "gradebook.csv", to_csv(book["rows"]))
        write_atomic(self.out / "gradebook.json", json.dumps(book, indent=1, sort_keys=True) + "\n")

    def write_feedback(self, name: str, text: str) -> None:
        write_atomic(self.feedback / name, text)


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` (refusing a folder in its place)."""
    if _kind(path) not in (None, "file"):
        raise _refuse(path, "is not a regular file the grader wrote")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cell(value):
    """A CSV cell a spreadsheet shows as text: one starting with = + - @ or a control character gets a quote."""
    if isinstance(value, str) and value and (value[0] in "=+-@\t\r\n" or not value[0].isprintable()):
        return "'" + value
    return value


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: cell(row[k]) for k in COLUMNS})
    return buffer.getvalue()


def feedback_names(learners: list[str]) -> dict[str, str]:
    """A unique file name per learner: the name in safe characters, plus a hash of the exact name where
    two learners would otherwise share one (names differing only in punctuation or case)."""
    safe = {
        name: "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:80] or "learner" for name in learners
    }
    count: dict[str, int] = {}
    for s in safe.values():
        count[s.lower()] = count.get(s.lower(), 0) + 1
    names = {}
    for name, s in safe.items():
        if count[s.lower()] > 1 or s != name:
            s = f"{s}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        names[name] = f"{s}.md"
    return names
