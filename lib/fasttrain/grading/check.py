"""`check`: a learner runs the visible checks of one exercise, statement by statement, and sees what passed.

    from fasttrain.grading import check
    check("ring_allreduce")          # an exercise's id (its cell's grade_id) or its test cell's id

The checks come from the released notebooks in labs/ (what `make release` writes: the test cells with
the hidden checks removed), so `check` works in the learners' copy of the course, which has no
labs/source. They run in the notebook's own namespace.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from .notebooks import HIDDEN, exercises, find_cell, grade_meta, read
from .release import STUDENT_DIR


def _labs(labs_dir: str | Path) -> list[Path]:
    labs_dir = Path(labs_dir)
    if not labs_dir.is_dir():
        raise FileNotFoundError(f"No released labs at {labs_dir}: the lab notebooks live in labs/labN_name.ipynb")
    return sorted(labs_dir.glob("lab*.ipynb"))


def visible_tests(exercise: str, lab: str | None = None, labs_dir: str | Path = STUDENT_DIR) -> tuple[str, str]:
    """(test cell id, its visible code) for an exercise id or a test id."""
    matches = []
    for path in _labs(labs_dir):
        if lab and path.stem != lab:
            continue
        nb = read(path)
        for ex in exercises(nb):
            if exercise == ex["grade_id"] or exercise in ex["solutions"]:
                matches.append((path.stem, ex["grade_id"], HIDDEN.sub("", find_cell(nb, ex["grade_id"]).source)))
    if not matches:
        raise KeyError(
            f"No exercise {exercise!r}{f' in {lab}' if lab else ''}: use the id in the exercise "
            f"cell's heading or metadata, e.g. check('ring_allreduce')"
        )
    if len(matches) > 1:
        raise KeyError(
            f"Exercise {exercise!r} is in several labs ({', '.join(m[0] for m in matches)}): "
            f"pass lab=..., e.g. check({exercise!r}, lab={matches[0][0]!r})"
        )
    return matches[0][1], matches[0][2]


def check(
    exercise: str,
    lab: str | None = None,
    namespace: dict | None = None,
    *,
    labs_dir: str | Path = STUDENT_DIR,
    out=print,
) -> bool:
    """Run each visible check of `exercise` against your definitions; prints a line per check."""
    test_id, code = visible_tests(exercise, lab, labs_dir)
    namespace = namespace if namespace is not None else _caller_namespace()
    statements = ast.parse(code).body
    passed = 0
    for node in statements:
        text = ast.get_source_segment(code, node)
        first = text.splitlines()[0] + (" ..." if "\n" in text else "")
        try:
            exec(compile(ast.Module([node], []), f"<check {test_id}>", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - a check that raises is a check that failed
            out(f"  FAIL  {first}\n        {type(exc).__name__}: {exc}".rstrip(": "))
        else:
            passed += 1
            if isinstance(node, (ast.Assert, ast.Expr)):
                out(f"  ok    {first}")
    checks = len(statements)
    out(
        f"{exercise}: {passed} of {checks} visible checks passed"
        + ("; the grader runs more checks than these" if passed == checks else "")
    )
    return passed == checks


def check_notebook(path: str | Path, labs_dir: str | Path = STUDENT_DIR, out=print) -> bool:
    """Run a learner's notebook (its own cells, in this process: it is their code) and check every exercise."""
    nb = read(path)
    lab = (nb.metadata.get("fasttrain") or {}).get("lab")
    namespace: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        if cell.cell_type != "code" or grade_meta(cell).get("grade"):
            continue
        try:
            exec(compile(cell.source, f"<cell {grade_meta(cell).get('grade_id', '')}>", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - a broken cell is reported, the checks still run
            out(f"  cell {grade_meta(cell).get('grade_id') or '(setup)'} raised {type(exc).__name__}: {exc}")
    released = read(Path(labs_dir) / f"{lab}.ipynb") if lab else nb
    return all([check(ex["grade_id"], lab, namespace, labs_dir=labs_dir, out=out) for ex in exercises(released)])


def _caller_namespace() -> dict:
    try:
        shell = get_ipython()  # noqa: F821 - defined inside IPython
        return shell.user_ns
    except NameError:
        return sys._getframe(2).f_globals
