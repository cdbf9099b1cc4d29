"""`check`: a learner runs the visible tests of one exercise, statement by statement, and sees what passed.

    from fasttrain.grading import check
    check("ring_allreduce")          # an exercise's id (its cell's grade_id) or its test cell's id

It reads the checks from the lab's instructor source with the hidden ones removed, i.e. exactly what
the test cell of the released notebook holds, and runs them in the notebook's own namespace.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from .notebooks import HIDDEN, exercises, find_cell, read
from .release import SOURCE_DIR, sources


def visible_tests(exercise: str, lab: str | None = None, source_dir: str | Path = SOURCE_DIR) -> tuple[str, str]:
    """(test cell id, its visible code) for an exercise id or a test id."""
    matches = []
    for path in sources(source_dir):
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
    source_dir: str | Path = SOURCE_DIR,
    out=print,
) -> bool:
    """Run each visible check of `exercise` against your definitions; prints a line per check."""
    test_id, code = visible_tests(exercise, lab, source_dir)
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
            if isinstance(node, ast.Assert):
                out(f"  ok    {first}")
    checks = len(statements)
    out(
        f"{exercise}: {passed} of {checks} visible checks passed"
        + ("; the grader runs more checks than these" if passed == checks else "")
    )
    return passed == checks


def _caller_namespace() -> dict:
    try:
        shell = get_ipython()  # noqa: F821 - defined inside IPython
        return shell.user_ns
    except NameError:
        return sys._getframe(2).f_globals
