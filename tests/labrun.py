"""Running a lab's cells in this process: how the wrong-answer tests try many variants quickly.

The grader runs a lab with papermill in a kernel of its own (test_labs.py and test_grading.py test that
path). A wrong answer only has to fail the same checks, which need no kernel: each run here gets a fresh
namespace and leaves this process's random state as it found it, and saves the seconds a kernel takes to
start and import torch, for each of the dozens of variants.
"""

from __future__ import annotations

import torch
from fasttrain.grading.notebooks import grade_meta


class CellFailed(Exception):
    """A cell raised: `grade_id` (None for an ungraded cell), whether it is a test cell, and the error."""

    def __init__(self, grade_id: str | None, graded: bool, error: BaseException):
        super().__init__(f"cell {grade_id or '(ungraded)'} raised {type(error).__name__}: {error}")
        self.grade_id, self.graded, self.error = grade_id, graded, error


def run_lab(nb, profile: str = "smoke", stop_after: str | None = None) -> dict:
    """Execute the notebook's code cells in order, as papermill does (profile set after the `parameters` cell),
    up to the cell `stop_after` (a grade_id) if given; returns the namespace, or raises CellFailed for the
    first cell that fails."""
    namespace: dict = {"__name__": "__main__"}
    with torch.random.fork_rng():
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            meta = grade_meta(cell)
            try:
                exec(compile(cell.source, f"<cell {meta.get('grade_id', '')}>", "exec"), namespace)
            except Exception as exc:
                raise CellFailed(meta.get("grade_id"), bool(meta.get("grade")), exc) from exc
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                namespace["profile"] = profile
            if stop_after is not None and meta.get("grade_id") == stop_after:
                break
    return namespace


def assert_a_check_fails(nb, profile: str = "smoke") -> CellFailed:
    """The variant must fail one of the lab's test cells: an error anywhere else would prove nothing."""
    try:
        run_lab(nb, profile)
    except CellFailed as failed:
        assert failed.graded, f"the variant broke an ungraded cell, not a check: {failed}"
        return failed
    raise AssertionError("every check passed the wrong answer")
