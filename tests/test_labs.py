"""Every lab: the instructor source passes its own checks, and its student version holds no answers.

Each lab's own file (tests/test_labN.py) then tries that lab's typical wrong answers.
"""

from pathlib import Path

import pytest
from fasttrain.grading.notebooks import execute, read, student_version
from labrun import run_lab

pytestmark = pytest.mark.slow  # real jobs, notebooks or processes: make test, not make check

SOURCES = Path(__file__).resolve().parents[1] / "labs" / "source"
# lab -> (how many exercise stubs its student version has, whether that count is exact)
STUBS = {"lab1_scaling": (7, False), "lab2_mixed_precision": (5, True), "lab3_large_batches": (6, False)}


@pytest.mark.parametrize("lab", list(STUBS))
def test_instructor_lab_passes(lab, tmp_path):
    execute(SOURCES / f"{lab}.ipynb", "smoke", cell_timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("lab", list(STUBS))
def test_instructor_lab_passes_when_run_in_process(lab):
    """The wrong-answer tests (test_labN.py) run cells in this process: the right answers must pass there too."""
    run_lab(read(SOURCES / f"{lab}.ipynb"))


@pytest.mark.parametrize("lab", list(STUBS))
def test_student_version_has_no_solutions_or_hidden_tests(lab):
    text = "\n".join(c.source for c in student_version(read(SOURCES / f"{lab}.ipynb")).cells)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    stubs, exact = STUBS[lab]
    count = text.count('raise NotImplementedError("Exercise')
    assert count == stubs if exact else count >= stubs


def test_every_lab_source_is_listed():
    assert sorted(p.stem for p in SOURCES.glob("*.ipynb")) == sorted(STUBS)
