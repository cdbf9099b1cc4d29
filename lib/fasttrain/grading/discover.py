"""Who submitted what: regular notebook files under the folders given, read without following links.

A FIFO, device or socket named like a notebook is skipped (opening a FIFO would wait forever), so is
every symbolic link (one could point at labs/source or outside the folder), and so is a file larger
than MAX_BYTES. Each skip is reported, never fatal.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .notebooks import grade_meta

MAX_BYTES = 20 * 2**20


@dataclass
class Submission:
    path: Path
    learner: str
    lab: str | None
    nb: nbformat.NotebookNode | None = None
    error: str | None = None  # why it could not be read


def _read_regular(path: Path) -> str:
    """The text of `path` if it is a regular file (checked on the open descriptor, so a swap can't fool it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES // 2**20} MB")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_BYTES + 1).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def _walk(root: Path, skipped: list[str]) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for d in sorted(d for d in dirs if os.path.islink(os.path.join(folder, d))):
            skipped.append(f"{Path(folder) / d}: skipped, a symbolic link to a folder")
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints" and not os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            if not name.endswith(".ipynb"):
                continue
            path = Path(folder) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                found.append(path)
            else:
                skipped.append(f"{path}: skipped, not a regular file ({_kind(mode)})")
    return found


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"


def discover(paths: list[str | Path], labs: dict, skipped: list[str] | None = None) -> list[Submission]:
    """Notebooks under each folder (learner = the subfolder, or the file name less the lab's name)."""
    skipped = [] if skipped is None else skipped
    found = []
    for arg in map(Path, paths):
        if arg.is_dir():
            found += [(p, arg) for p in _walk(arg, skipped)]
        elif arg.exists() and stat.S_ISREG(os.stat(arg).st_mode):
            found.append((arg, None))
        elif arg.exists():
            skipped.append(f"{arg}: skipped, not a regular file")
        else:
            raise FileNotFoundError(f"No submission at {arg}: pass notebooks or folders of them")
    subs, seen = [], set()
    for path, root in found:
        sub = identify(path, root, labs)
        if (sub.learner, sub.lab) in seen:  # two files for one lab: keep both, told apart by file name
            sub.learner = f"{sub.learner}/{path.name}"
        seen.add((sub.learner, sub.lab))
        subs.append(sub)
    return sorted(subs, key=lambda s: (s.learner, s.lab or "", str(s.path)))


def identify(path: Path, root: Path | None, labs: dict) -> Submission:
    nb, error = None, None
    try:
        nb = nbformat.reads(_read_regular(path), as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is graded zero with the reason
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        nb, error = None, f"not a valid notebook ({type(exc).__name__}: {first})"
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
