"""The learners' copy (`python -m fasttrain.grading export-student DIR`): no answers in it, and check() works there.

This is how CI builds the copy: the test exports it, greps every file of it for each solution and
hidden-test line of the instructor sources, and runs a lab's visible checks inside it, with the
library imported from the copy.
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from fasttrain.grading.export import export_student, library_lines, secrets
from fasttrain.grading.notebooks import HIDDEN, SOLUTION, read
from fasttrain.grading.release import SOURCE_DIR
from test_grading import SANDBOX, solved

pytestmark = SANDBOX  # builds the copy and runs its checks in subprocesses: make test, not make check


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    dest = tmp_path_factory.mktemp("learners") / "course"
    export_student(dest)
    return dest


def _python(copy: Path, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(copy / "lib")}  # the copy's library, not this checkout's
    return subprocess.run(
        [sys.executable, *args], cwd=cwd or copy, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_copy_holds_no_solution_and_no_hidden_test(copy):
    assert not (copy / "labs" / "source").exists() and not (copy / ".git").exists()
    assert not list((copy / "tests").glob("test_grading*.py")) and not (copy / "tests" / "test_lab1.py").exists()
    lines = secrets()
    assert len(lines) > 40  # the grep below looks for something
    markers = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")
    for path in sorted(p for p in copy.rglob("*") if p.is_file()):
        text = path.read_text(errors="ignore")
        assert path.suffix != ".ipynb" or not any(m in text for m in markers), path  # docs and code name them
        found = [line for line in lines if line in text]
        assert not found, (path, found[:3])


def test_secrets_cover_every_solution_and_hidden_block():
    """Each block contributes at least one line to the grep, or the grep would miss it; the exception is a block
    the course library itself implements line for line (the library ships to learners, hidden while grading)."""
    lines, library = set(secrets()), library_lines()
    for source in sorted(SOURCE_DIR.glob("*.ipynb")):
        for cell in read(source).cells:
            for block in [*SOLUTION.finditer(cell.source), *HIDDEN.finditer(cell.source)]:
                text = block.group(0)
                body = [line.strip() for line in text.splitlines()[1:-1] if line.strip()]
                if len(body) > 1 and not all(line in library or len(line) < 24 for line in body):
                    assert any(line in text for line in lines), (source.name, text[:200])


def test_check_works_in_the_copy_from_visible_checks_alone(copy):
    where = _python(copy, "-c", "import fasttrain; print(fasttrain.__file__)")
    assert where.stdout.strip().startswith(str(copy)), where
    mine = solved(read(SOURCE_DIR / "lab3_large_batches.ipynb"))  # a learner who solved lab 3
    nbformat.write(mine, str(copy / "labs" / "my_lab3.ipynb"))
    done = _python(copy, "-m", "fasttrain.grading", "check", "labs/my_lab3.ipynb")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scaled_lr_test: 3 of 3 visible checks passed" in done.stdout
    stubs = _python(copy, "-m", "fasttrain.grading", "check", "labs/lab3_large_batches.ipynb")
    assert stubs.returncode == 1 and "FAIL" in stubs.stdout
