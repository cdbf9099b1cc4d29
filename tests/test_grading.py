"""The grader: release, self-check and autograde, on a tiny lab made here (no training, seconds each).

Every submission below is one a grader must survive: it gets its score or zero with a reason, and the
rest of the class is still graded. Limits are a few seconds and a small memory cap so nothing hangs.
Submissions that attack the grader are in test_grading_hostile.py, the learners' copy in
test_grading_export.py.
"""

import csv
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from fasttrain.grading import check
from fasttrain.grading.autograde import Limits, autograde
from fasttrain.grading.notebooks import HIDDEN, exercises, find_cell, read, replace_solution
from fasttrain.grading.release import drift, release
from fasttrain.grading.sandbox import NoSandbox
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

# The grader needs bubblewrap (make setup installs it): under CI its absence fails, elsewhere it skips.
_NO_BWRAP = pytest.mark.skipif(
    shutil.which("bwrap") is None and not os.environ.get("CI"), reason="bubblewrap is not installed: make setup"
)
SANDBOX = [pytest.mark.slow, _NO_BWRAP]  # the grader runs: make test, not make check


def sandboxed(test):
    return pytest.mark.slow(_NO_BWRAP(test))


LIMITS = Limits(cell_timeout=3, notebook_timeout=25, memory_mb=768, jobs=2)


def graded(source, grade_id, kind, points=0):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade_id": grade_id,
        "solution": kind == "solution",
        "grade": kind == "test",
        "locked": kind != "solution",
        "points": points,
        "schema_version": 3,
    }
    return cell


def tiny_lab():
    params = new_code_cell('profile = "auto"')
    params.metadata["tags"] = ["parameters"]
    return new_notebook(
        cells=[
            new_markdown_cell("# Lab 9 · Tiny"),
            params,
            new_code_cell(
                "import math\n\nfrom fasttrain.grading.probe import expect\n\n### BEGIN REFERENCE\n"
                "def expected_double(x):\n    return 2 * x\n### END REFERENCE"
            ),
            graded(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", "double", "solution"
            ),
            graded(
                "expect('double(2)', double(2), 4)\n### BEGIN HIDDEN TESTS\n"
                "expect('double(21)', double(21), expected_double(21))\n### END HIDDEN TESTS",
                "double_test",
                "test",
                2,
            ),
            graded(
                "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION", "square", "solution"
            ),
            graded(
                "expect('square(3)', square(3), 9)\n### BEGIN HIDDEN TESTS\n"
                "expect('square(-4)', square(-4), 16)\n### END HIDDEN TESTS",
                "square_test",
                "test",
                3,
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )


@pytest.fixture
def lab(tmp_path):
    """labs/source/lab9_tiny.ipynb and its released student version in labs/."""
    source = tmp_path / "labs" / "source"
    source.mkdir(parents=True)
    nbformat.write(tiny_lab(), str(source / "lab9_tiny.ipynb"))
    release(source, tmp_path / "labs")
    return tmp_path / "labs"


def submit(folder: Path, learner: str, nb) -> None:
    (folder / learner).mkdir(parents=True, exist_ok=True)
    path = folder / learner / "lab9_tiny.ipynb"
    if isinstance(nb, str):
        path.write_text(nb)
    else:
        nbformat.write(nb, str(path))


def grade(lab, subs, out, **limits):
    book = autograde([subs], out, lab / "source", Limits(**{**LIMITS.__dict__, **limits}), log=lambda *a: None)
    rows = {(r["learner"], r["exercise"]): r for r in book["rows"]}
    totals = {t["learner"]: t["points"] for t in book["totals"]}
    return rows, totals


def solution(lab):
    """The instructor notebook itself, hidden tests and all."""
    return read(lab / "source" / "lab9_tiny.ipynb")


def solved(nb):
    """What a learner who solved every exercise hands in: no hidden tests, no markers."""
    for cell in nb.cells:
        cell.source = HIDDEN.sub("", cell.source)
        cell.source = "\n".join(line for line in cell.source.splitlines() if "### " not in line)
    return nb


def with_code(lab, grade_id, code):
    """A learner's notebook whose exercise `grade_id` has `code` in place of the solution block."""
    return solved(replace_solution(solution(lab), grade_id, code))


def with_cell(lab, grade_id, source):
    """A learner's notebook whose exercise cell `grade_id` is `source`, whole."""
    nb = solved(solution(lab))
    find_cell(nb, grade_id).source = source
    return nb


# -- release and check ------------------------------------------------------------------------------------


def test_release_writes_student_versions_and_detects_drift(lab):
    student = read(lab / "lab9_tiny.ipynb")
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN" not in text and "expected_double(21)" not in text
    assert text.count("NotImplementedError") == 2 and "expect('square(3)', square(3), 9)" in text
    assert student.metadata["fasttrain"]["lab"] == "lab9_tiny"
    assert drift(lab / "source", lab) == []
    before = (lab / "lab9_tiny.ipynb").read_text()
    release(lab / "source", lab)
    assert (lab / "lab9_tiny.ipynb").read_text() == before  # releasing twice changes nothing

    edited = read(lab / "lab9_tiny.ipynb")
    find_cell(edited, "square").source = "def square(x):\n    return x * x"
    nbformat.write(edited, str(lab / "lab9_tiny.ipynb"))
    nbformat.write(solution(lab), str(lab / "lab0_leak.ipynb"))
    problems = drift(lab / "source", lab)
    assert any("lab9_tiny.ipynb differs" in p for p in problems)
    assert any("lab0_leak.ipynb holds solutions" in p for p in problems)


def test_check_runs_visible_tests_only(lab):
    from fasttrain.grading.probe import expect

    lines = []
    ns = {"expect": expect, "double": lambda x: 2 * x, "square": lambda x: 2 * x}
    assert check("double", namespace=ns, labs_dir=lab, out=lines.append)
    assert not check("square_test", namespace=ns, labs_dir=lab, out=lines.append)
    assert any("FAIL  expect('square(3)'" in line and "expected 9, got 6" in line for line in lines)
    assert not any("expected_double(21)" in line or "square(-4)" in line for line in lines)  # hidden stays hidden
    with pytest.raises(KeyError, match="No exercise 'cube'"):
        check("cube", namespace=ns, labs_dir=lab)


def test_blanking_keeps_lines_and_drops_answers():
    from fasttrain.grading.plan import blank_answers

    source = (
        "x = 1\n### BEGIN REFERENCE\nsecret = 42\n### END REFERENCE\nexpect('a', f(x),\n       secret * 2, rel=1e-3)\n"
    )
    blanked = blank_answers(source)
    assert blanked.count("\n") == source.count("\n") and "secret" not in blanked and "1e-3" not in blanked
    assert "expect('a', f(x)" in blanked and blanked.rstrip().endswith(")")


# -- autograde: marks, statuses, reasons, determinism --------------------------------------------------------


@sandboxed
def test_full_zero_and_partial_marks(lab, tmp_path):
    subs = tmp_path / "subs"
    submit(subs, "ada", solution(lab))
    submit(subs, "bo", read(lab / "lab9_tiny.ipynb"))  # the untouched student version
    submit(subs, "cy", with_code(lab, "square", "return abs(x) * 3"))  # passes the visible test only
    rows, totals = grade(lab, subs, tmp_path / "grades")
    assert totals == {"ada": 5, "bo": 0, "cy": 2}
    assert rows["bo", "double_test"]["status"] == "failed"
    assert "NotImplementedError" in rows["bo", "double_test"]["reason"]
    assert "your cell double, line 2" in rows["bo", "double_test"]["reason"]
    assert rows["cy", "square_test"]["status"] == "failed"
    assert rows["cy", "square_test"]["reason"] == "hidden check 2 of 2 failed"  # no hidden input or value
    with open(tmp_path / "grades" / "gradebook.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["learner"] for r in table] == ["ada", "ada", "bo", "bo", "cy", "cy"]
    assert set(table[0]) >= {"learner", "lab", "exercise", "points", "max_points", "status"}
    feedback = (tmp_path / "grades" / "feedback" / "cy.md").read_text()
    assert "square_test: failed, 0 / 3" in feedback and "double_test: passed" in feedback
    assert "square(-4)" not in feedback and "16" not in feedback


HOSTILE = {
    # learner: (how the submission is made, expected points, {exercise: (status, words in the reason)})
    "loops": (
        lambda lab: with_code(lab, "double", "while True:\n    pass"),
        3,
        {"double_test": ("timeout", "timed out after 3 s")},
    ),
    "loops_at_top": (
        lambda lab: _top_level(lab, "while True:\n    pass", first=True),
        3,
        {"double_test": ("timeout", "your exercise cell double timed out after 3 s")},
    ),
    "raises": (
        lambda lab: with_code(lab, "double", "raise ValueError('boom')\nreturn 2 * x"),
        3,
        {"double_test": ("failed", "ValueError: boom before check 'double(2)' ran (your cell double, line 2:")},
    ),
    "raises_at_top": (
        lambda lab: _top_level(lab, "raise RuntimeError('at import')", first=True),
        3,
        {"double_test": ("failed", "exercise cell double raised RuntimeError: at import")},
    ),
    "library_raises": (  # the library raises, the learner's line that called it is named
        lambda lab: with_code(lab, "double", "import json\nreturn json.loads('{')"),
        3,
        {"double_test": ("failed", "(library code), called from your cell double, line 3: return json.loads('{')")},
    ),
    "hogs": (
        lambda lab: with_code(lab, "double", "hog = bytearray(2 ** 31)"),  # 2 GB, over the 768 MB cap at once
        3,
        {"double_test": ("failed", "MemoryError")},
    ),
    "self_kill": (
        lambda lab: with_code(lab, "double", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
        0,
        {"double_test": ("crashed", "SIGKILL, not sent by the grader")},
    ),
    "exits": (
        lambda lab: with_code(lab, "double", "import os\nos._exit(3)"),
        0,
        {"double_test": ("crashed", "exited with code 3")},
    ),
    "fixed_later": (  # a wrong double, fixed in the cell of the next exercise: the final definitions count
        lambda lab: _fixed_later(lab),
        5,
        {"double_test": ("passed", "")},
    ),
    "deleted": (lambda lab: _without(lab, "double"), 3, {"double_test": ("failed", "missing from the submission")}),
    "reordered": (lambda lab: _reordered(lab), 5, {"square_test": ("passed", "")}),
    "not_json": (lambda lab: '{"cells": [', 0, {"double_test": ("invalid", "not a valid notebook")}),
}


def _top_level(lab, line, first=False):
    nb = solved(solution(lab))
    cell = find_cell(nb, "double")
    cell.source = f"{line}\n{cell.source}" if first else f"{cell.source}\n{line}"
    return nb


def _fixed_later(lab):
    nb = with_code(lab, "double", "return 3 * x")
    cell = find_cell(nb, "square")
    cell.source += "\n\n\ndef double(x):\n    return 2 * x"
    return nb


def _without(lab, grade_id):
    nb = solved(solution(lab))
    nb.cells.remove(find_cell(nb, grade_id))
    return nb


def _reordered(lab):
    nb = solved(solution(lab))
    moved = [find_cell(nb, "square"), find_cell(nb, "square_test")]
    for cell in moved:
        nb.cells.remove(cell)
    nb.cells[1:1] = moved
    return nb


@sandboxed
def test_broken_submissions_get_a_score_or_zero_with_an_honest_reason(lab, tmp_path):
    subs = tmp_path / "subs"
    for learner, (make, _, _) in HOSTILE.items():
        submit(subs, learner, make(lab))
    submit(subs, "zz_after_them", solution(lab))  # graded after all of them, as if nothing happened
    rows, totals = grade(lab, subs, tmp_path / "grades")
    for learner, (_, points, expected) in HOSTILE.items():
        assert totals[learner] == points, (learner, rows)
        for exercise, (status, words) in expected.items():
            row = rows[learner, exercise]
            assert row["status"] == status and words in row["reason"], (learner, row)
    assert totals["zz_after_them"] == 5
    assert "out-of-memory" not in rows["exits", "double_test"]["reason"]  # no guessed cause without a signal
    feedback = (tmp_path / "grades" / "feedback" / "reordered.md").read_text()
    assert "reordered" in feedback and "final definitions" in feedback


@sandboxed
def test_a_loop_that_swallows_the_cell_alarm_stops_at_the_notebook_limit(lab, tmp_path):
    subs = tmp_path / "subs"
    stubborn = "import time\nwhile True:\n    try:\n        time.sleep(1)\n    except BaseException:\n        pass"
    submit(subs, "stubborn", _top_level(lab, stubborn))
    submit(subs, "zz_fine", solution(lab))
    rows, totals = grade(lab, subs, tmp_path / "grades", notebook_timeout=6)
    assert totals == {"stubborn": 0, "zz_fine": 5}
    assert rows["stubborn", "square_test"]["status"] == "timeout"
    assert "ran past its 6 s limit" in rows["stubborn", "square_test"]["reason"]


@sandboxed
def test_grading_twice_gives_byte_identical_gradebooks(lab, tmp_path):
    subs = tmp_path / "subs"
    submit(subs, "ada", solved(solution(lab)))
    submit(subs, "cy", with_code(lab, "square", "return abs(x) * 3"))
    submit(subs, "eve", with_code(lab, "double", "raise ValueError('boom')"))
    submit(subs, "nul", "not a notebook")
    grade(lab, subs, tmp_path / "one", jobs=2)
    grade(lab, subs, tmp_path / "two", jobs=1)
    for name in ("gradebook.csv", "gradebook.json", "feedback/cy.md", "feedback/eve.md"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    grade(lab, subs, tmp_path / "one")  # the grader's own folder: graded again in place
    assert (tmp_path / "one" / "gradebook.csv").read_bytes() == (tmp_path / "two" / "gradebook.csv").read_bytes()


def test_no_sandbox_refuses_unless_told(lab, tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    submit(subs, "ada", solution(lab))
    monkeypatch.setenv("FASTTRAIN_BWRAP", str(tmp_path / "no-bwrap-here"))
    with pytest.raises(NoSandbox, match="apt-get install bubblewrap"):
        grade(lab, subs, tmp_path / "grades")
    assert not (tmp_path / "grades").exists()
    _, totals = grade(lab, subs, tmp_path / "grades", sandbox=False)  # --unsafe-no-sandbox
    assert totals == {"ada": 5}


@sandboxed
def test_the_command_line_says_what_to_do(lab, tmp_path, capsys, monkeypatch):
    from fasttrain.grading.__main__ import main

    monkeypatch.setenv("FASTTRAIN_BWRAP", str(tmp_path / "no-bwrap-here"))
    assert main(["autograde", str(tmp_path), "--source", str(lab / "source")]) == 2
    assert "install bubblewrap" in capsys.readouterr().err
    monkeypatch.delenv("FASTTRAIN_BWRAP")
    submit(tmp_path / "subs", "ada", solution(lab))
    out, command = tmp_path / "grades", ["autograde", str(tmp_path / "subs"), "--source", str(lab / "source")]
    assert main([*command, "--out", str(out)]) == 0
    (out / "gradebook.csv").unlink()
    (out / "gradebook.csv").mkdir()  # planted where the grader writes
    (out / "feedback" / "ada.md").unlink()
    capsys.readouterr()
    assert main([*command, "--out", str(out)]) == 2
    assert "gradebook.csv is a folder" in capsys.readouterr().err
    assert not (out / "feedback" / "ada.md").exists()  # refused before grading anyone
    assert main([*command, "--out", str(tmp_path / "subs")]) == 2  # a folder the grader does not own
    assert "is not a gradebook folder" in capsys.readouterr().err


def test_exercises_pair_tests_with_their_solutions():
    assert [(e["grade_id"], e["points"], e["solutions"]) for e in exercises(tiny_lab())] == [
        ("double_test", 2.0, ["double"]),
        ("square_test", 3.0, ["square"]),
    ]


def test_bad_limits_say_what_to_do():
    with pytest.raises(ValueError, match="at least 256"):
        Limits(memory_mb=10)
    with pytest.raises(ValueError, match="positive"):
        Limits(cell_timeout=0)


@sandboxed
def test_a_broken_instructor_source_stops_grading_with_the_reason(lab, tmp_path):
    broken = solution(lab)
    cell = find_cell(broken, "square")
    cell.source = cell.source.replace("return x * x", "return x + x")
    nbformat.write(broken, str(lab / "source" / "lab9_tiny.ipynb"))
    submit(tmp_path / "subs", "ada", solution(lab))
    with pytest.raises(RuntimeError, match="square_test: check 'square.3.' fails the instructor's solution"):
        grade(lab, tmp_path / "subs", tmp_path / "grades")


# -- the course's own labs ---------------------------------------------------------------------------------


def test_released_notebooks_match_their_sources():
    """labs/*.ipynb is what `make release` writes from labs/source/: no drift, no solutions for learners."""
    assert drift() == []
