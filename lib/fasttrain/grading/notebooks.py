"""Lab notebooks in nbgrader's convention, and executing them with papermill.

Instructor sources mark solutions and hidden tests inside code cells:

    ### BEGIN SOLUTION            ### BEGIN HIDDEN TESTS
    ...                           ...
    ### END SOLUTION              ### END HIDDEN TESTS

and carry nbgrader metadata on graded cells: {"grade_id": ..., "solution": bool, "grade": bool,
"points": int}. The student version replaces each solution with a stub that raises
NotImplementedError and drops hidden tests, so the two never drift apart.
"""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path
from typing import Any

import nbformat

SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.M | re.S)
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)", re.M | re.S)
STUB = '{indent}raise NotImplementedError("Exercise {grade_id}: replace this line with your code.")\n'


def read(path: str | Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def grade_meta(cell) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def find_cell(nb, grade_id: str):
    for cell in nb.cells:
        if grade_meta(cell).get("grade_id") == grade_id:
            return cell
    raise KeyError(f"No cell with grade_id {grade_id!r}")


def exercises(nb) -> list[dict[str, Any]]:
    """The graded parts of a lab, in order: each test cell with its points and the solution cells it checks.

    A test cell grades the solution cells between it and the previous test cell (nbgrader's layout).
    """
    found, pending = [], []
    for cell in nb.cells:
        meta = grade_meta(cell)
        if cell.cell_type != "code" or not meta.get("grade_id"):
            continue
        if meta.get("solution"):
            pending.append(meta["grade_id"])
        if meta.get("grade"):
            found.append(
                {"grade_id": meta["grade_id"], "points": float(meta.get("points", 0) or 0), "solutions": pending}
            )
            pending = []
    return found


def replace_solution(nb, grade_id: str, code: str):
    """A copy of `nb` whose solution in cell `grade_id` is `code`: how tests try a wrong answer."""
    nb = copy.deepcopy(nb)
    cell = find_cell(nb, grade_id)
    if not SOLUTION.search(cell.source):
        raise ValueError(f"Cell {grade_id!r} has no ### BEGIN SOLUTION block")
    cell.source = SOLUTION.sub(lambda m: _indent(code, m.group(1)), cell.source, count=1)
    return nb


def student_version(nb):
    """Solutions become NotImplementedError stubs, hidden tests disappear, outputs are cleared."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        gid = grade_meta(cell).get("grade_id", "exercise")
        cell.source = SOLUTION.sub(lambda m, gid=gid: STUB.format(indent=m.group(1), grade_id=gid), cell.source)
        cell.source = HIDDEN.sub("", cell.source).rstrip("\n")
        cell.outputs, cell.execution_count = [], None
    return nb


def execute(
    nb,
    profile: str = "smoke",
    cell_timeout: int | None = 600,
    cwd: str | Path | None = None,
    output: str | Path | None = None,
):
    """Execute a notebook (node or path) with papermill; raises PapermillExecutionError on a failing cell."""
    import papermill as pm

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "input.ipynb"
        if isinstance(nb, (str, Path)):
            cwd = cwd or Path(nb).parent
            nb = read(nb)
        nbformat.write(nb, str(source))
        out = Path(output) if output else Path(tmp) / "output.ipynb"
        pm.execute_notebook(
            str(source),
            str(out),
            parameters={"profile": profile},
            cwd=str(cwd or tmp),
            execution_timeout=cell_timeout,
            kernel_name="python3",
            progress_bar=False,
        )
        return read(out)


def _indent(code: str, indent: str) -> str:
    lines = code.strip("\n").splitlines()
    return "".join(f"{indent}{line}\n" if line else "\n" for line in lines)
