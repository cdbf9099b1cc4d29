"""The learners' copy of the course: what to publish when hidden tests matter.

    python -m fasttrain.grading export-student DIR

Writes the course's files (those git tracks or would track) into DIR, less the instructor sources
(labs/source/), the grader's tests (tests/test_grading*.py, tests/test_lab*.py, tests/labrun.py) and
git history, with the student labs released afresh from the sources. `check()` works there: it reads
the visible checks from the released labs. Before returning it greps the copy for every line of every
solution and hidden test (`leaks`), and refuses a copy where one turns up.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

from fasttrain.paths import REPO_ROOT

from .notebooks import HIDDEN, SOLUTION, read
from .release import SOURCE_DIR, render, sources, student_notebook

LEFT_OUT = [
    "labs/source/*",
    "tests/test_grading*.py",
    "tests/test_lab[0-9]*.py",
    "tests/test_labs.py",
    "tests/labrun.py",
]
MIN_LINE = 24  # shorter lines ("return peak") are too common to mean a leak
LONG_LINE = 48  # a line this long is specific enough on its own


def course_files(root: Path = REPO_ROOT) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted(p for p in listed.split("\0") if p and not any(fnmatch.fnmatch(p, pat) for pat in LEFT_OUT))


def secrets(source_dir: Path = SOURCE_DIR) -> list[str]:
    """The distinctive lines of the instructor sources' solutions and hidden tests: lines that use a name the
    lab defines or hold three numbers or more (generic lines, imports and what the released labs show
    anyway are left out)."""
    found, visible = set(), set()
    for path in sources(source_dir):
        nb = read(path)
        visible.update(line.strip() for c in student_notebook(nb, path.stem).cells for line in c.source.splitlines())
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        names = _defined(code)
        for source in code:
            for block in [*SOLUTION.finditer(source), *HIDDEN.finditer(source)]:
                found.update(_lines(block.group(0), names))
    # The library ships in the copy by design and implements some of the same things (the grader hides those
    # modules from the sandbox): its own lines are not answers leaking from labs/source.
    return sorted(found - visible - library_lines())


def library_lines() -> set[str]:
    return {line.strip() for p in (REPO_ROOT / "lib").rglob("*.py") for line in p.read_text().splitlines()}


def _defined(sources_: list[str]) -> set[str]:
    names = set()
    for source in sources_:
        names.update(re.findall(r"^(?:def|class)\s+(\w+)", source, re.M))
        for params in re.findall(r"^def\s+\w+\(([^)]*)\)", source, re.M):  # an exercise's own argument names
            names.update(p for p in re.findall(r"\b([a-z]+_[a-z_]+)\b", params) if len(p) >= 7)
        names.update(re.findall(r"^(\w+)\s*=", source, re.M))
    return {n for n in names if len(n) > 3}


def _lines(block: str, names: set[str]) -> list[str]:
    out = []
    for line in block.splitlines():
        line = line.strip()
        if len(line) < MIN_LINE or line.startswith(("#", "from ", "import ")):
            continue
        words = set(re.findall(r"[A-Za-z_]\w*", line))
        if words & names or len(line) >= LONG_LINE or len(re.findall(r"(?<![\w.])\d[\d.e+-]*", line)) >= 3:
            out.append(line)
    return out


def leaks(folder: Path, source_dir: Path = SOURCE_DIR) -> list[str]:
    """'file: line' for every solution or hidden-test line found in a file under `folder`."""
    lines, found = secrets(source_dir), []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            text = path.read_text(errors="ignore")
        except OSError:
            continue
        found += [f"{path.relative_to(folder)}: {line}" for line in lines if line in text]
    return found


def export_student(dest: Path, root: Path = REPO_ROOT) -> list[Path]:
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty: export the learners' copy into a new folder")
    written = []
    for rel in course_files(root):
        src = root / rel
        if not src.is_file() or src.is_symlink():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
        written.append(dest / rel)
    for src in sources(root / "labs" / "source"):  # the student labs, released afresh
        (dest / "labs" / src.name).write_text(render(student_notebook(read(src), src.stem)))
    found = leaks(dest, root / "labs" / "source")
    if found:
        raise RuntimeError(f"The learners' copy in {dest} holds answers; not publishing it: " + "; ".join(found[:5]))
    return written
