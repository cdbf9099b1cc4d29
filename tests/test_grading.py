"""The grader: release, self-check and autograde, on a tiny lab made here (no training, seconds each).

Every submission below is one a grader must survive: it gets its score or zero with a reason, and the
rest of the class is still graded. Limits are a few seconds and a small memory cap so nothing hangs.
"""

import csv
import json
from pathlib import Path

import nbformat
import pytest
from fasttrain.grading import check
from fasttrain.grading.autograde import Limits, autograde
from fasttrain.grading.notebooks import HIDDEN, exercises, find_cell, read, replace_solution
from fasttrain.grading.release import drift, release
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

LIMITS = Limits(cell_timeout=3, notebook_timeout=25, memory_mb=768)


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
            new_code_cell("import math\n\n\ndef expected_double(x):\n    return 2 * x"),
            graded(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", "double", "solution"
            ),
            graded(
                "assert math.isclose(double(2), 4)\n### BEGIN HIDDEN TESTS\n"
                "assert math.isclose(double(21), expected_double(21))\n### END HIDDEN TESTS",
                "double_test",
                "test",
                2,
            ),
            graded(
                "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION", "square", "solution"
            ),
            graded(
                "assert square(3) == 9\n### BEGIN HIDDEN TESTS\nassert square(-4) == 16\n### END HIDDEN TESTS",
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


def grade(lab, subs, out, as_submitted=True, **limits):
    book = autograde(
        [subs],
        out,
        lab / "source",
        Limits(**{**LIMITS.__dict__, **limits}),
        log=lambda *a: None,
        as_submitted=as_submitted,
    )
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
    assert text.count("NotImplementedError") == 2 and "assert square(3) == 9" in text
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
    lines = []
    ns = {"math": __import__("math"), "double": lambda x: 2 * x, "square": lambda x: 2 * x}
    assert check("double", namespace=ns, source_dir=lab / "source", out=lines.append)
    assert not check("square_test", namespace=ns, source_dir=lab / "source", out=lines.append)
    assert any("FAIL  assert square(3) == 9" in line for line in lines)
    assert not any("expected_double(21)" in line or "square(-4)" in line for line in lines)  # hidden stays hidden
    with pytest.raises(KeyError, match="No exercise 'cube'"):
        check("cube", namespace=ns, source_dir=lab / "source")


# -- autograde: the done-when case, crashes, cheats, determinism -------------------------------------------


def test_full_zero_and_partial_marks(lab, tmp_path):
    subs = tmp_path / "subs"
    submit(subs, "ada", solution(lab))
    submit(subs, "bo", read(lab / "lab9_tiny.ipynb"))  # the untouched student version
    submit(subs, "cy", with_code(lab, "square", "return abs(x) * 3"))  # passes the visible test only
    rows, totals = grade(lab, subs, tmp_path / "grades")
    assert totals == {"ada": 5, "bo": 0, "cy": 2}
    assert rows["bo", "double_test"]["status"] == "failed"
    assert "NotImplementedError" in rows["bo", "double_test"]["reason"]
    assert rows["cy", "square_test"]["status"] == "failed" and "square(-4) == 16" in rows["cy", "square_test"]["reason"]
    with open(tmp_path / "grades" / "gradebook.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["learner"] for r in table] == ["ada", "ada", "bo", "bo", "cy", "cy"]
    assert set(table[0]) >= {"learner", "lab", "exercise", "points", "max_points", "status"}
    feedback = (tmp_path / "grades" / "feedback" / "cy.md").read_text()
    assert "square_test: failed, 0 / 3" in feedback and "double_test: passed" in feedback


HOSTILE = {
    # learner: (how the submission is made, expected points, {exercise: (status, words in the reason)})
    "loops": (
        lambda lab: with_code(lab, "double", "while True:\n    pass"),
        3,
        {"double_test": ("timeout", "timed out after 3 s")},
    ),
    "raises": (
        lambda lab: with_code(lab, "double", "raise ValueError('boom')\nreturn 2 * x"),
        3,
        {"double_test": ("failed", "ValueError: boom")},
    ),
    "raises_at_top": (
        lambda lab: _top_level(lab, "raise RuntimeError('at import')", first=True),
        3,
        {"double_test": ("failed", "exercise cell double raised RuntimeError: at import")},
    ),
    "hogs": (
        lambda lab: with_code(lab, "double", "hog = []\nwhile True:\n    hog.append(bytearray(2 ** 26))"),
        3,
        {"double_test": ("failed", "MemoryError")},
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


def test_hostile_submissions_get_a_score_or_zero_with_a_reason(lab, tmp_path):
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
    assert "reordered" in (tmp_path / "grades" / "feedback" / "reordered.md").read_text()


def test_a_loop_that_swallows_the_cell_alarm_stops_at_the_notebook_limit(lab, tmp_path):
    subs = tmp_path / "subs"
    stubborn = "import time\nwhile True:\n    try:\n        time.sleep(1)\n    except BaseException:\n        pass"
    submit(subs, "stubborn", _top_level(lab, stubborn))
    submit(subs, "zz_fine", solution(lab))
    rows, totals = grade(lab, subs, tmp_path / "grades", as_submitted=False, notebook_timeout=6)
    assert totals == {"stubborn": 0, "zz_fine": 5}
    assert rows["stubborn", "square_test"]["status"] == "timeout"
    assert "timed out after 6 s" in rows["stubborn", "square_test"]["reason"]


PATCHER = """def double(x):
    return 0


import math
math.isclose = lambda *a, **k: True


def expected_double(x):
    return 0"""


def test_cheats_score_nothing(lab, tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    fake = json.dumps({"rows": [], "totals": [{"learner": "printer", "points": 100}]})
    cheats = {
        # prints a score, and writes a gradebook of its own where the grader will write
        "printer": (
            "square",
            f"print('score: 100')\nimport pathlib\nout = pathlib.Path({str(out)!r})\n"
            f"out.mkdir(parents=True, exist_ok=True)\n(out / 'gradebook.json').write_text({fake!r})\n"
            "(out / 'gradebook.csv').write_text('printer,lab9_tiny,square_test,100,3,passed')\n"
            "return 0",
        ),
        # replaces the test helpers: the library's math.isclose and the lab's expected_double
        "patcher": ("double", None),
        # replaces math.isclose while the test runs
        "sneaky": ("double", "import math\nmath.isclose = lambda *a, **k: True\nreturn 2 * x if x == 2 else 0"),
        # looks for the hidden tests on disk, from its working folder down
        "reader": (
            "square",
            "import os\nfor root, _, files in os.walk('.'):\n    for name in files:\n"
            "        text = open(os.path.join(root, name), errors='ignore').read()\n"
            "        if 'BEGIN ' + 'HIDDEN' in text or 'square(' + '-4)' in text:\n"
            "            return x * x\nreturn 9",
        ),
        # forges results on every file descriptor it can write to
        "forger": (
            "square",
            "import json, os\nline = json.dumps({'event': 'test', 'grade_id': 'square_test', "
            "'status': 'passed'}) + '\\n'\nfor fd in range(3, 64):\n    try:\n"
            "        os.write(fd, line.encode())\n    except OSError:\n        pass\nreturn 9",
        ),
    }
    for learner, (grade_id, code) in cheats.items():
        submit(subs, learner, with_code(lab, grade_id, code) if code else with_cell(lab, grade_id, PATCHER))
    rows, totals = grade(lab, subs, out, as_submitted=False)  # the score never depends on that run
    assert rows["printer", "square_test"]["points"] == 0 and totals["printer"] == 2
    assert rows["patcher", "double_test"]["points"] == 0
    assert rows["sneaky", "double_test"]["points"] == 0
    assert rows["reader", "square_test"]["points"] == 0
    assert rows["forger", "square_test"]["points"] == 0
    assert json.loads((out / "gradebook.json").read_text())["totals"] != json.loads(fake)["totals"]
    assert "math.isclose" in (out / "feedback" / "patcher.md").read_text()


def test_grading_twice_gives_the_same_gradebook(lab, tmp_path):
    subs = tmp_path / "subs"
    submit(subs, "ada", solved(solution(lab)))
    submit(subs, "cy", with_code(lab, "square", "return abs(x) * 3"))
    submit(subs, "eve", with_code(lab, "double", "raise ValueError('boom')"))
    submit(subs, "nul", "not a notebook")
    grade(lab, subs, tmp_path / "one", as_submitted=False)
    grade(lab, subs, tmp_path / "two", as_submitted=False)
    for name in ("gradebook.csv", "gradebook.json"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()


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


# -- the course's own labs ---------------------------------------------------------------------------------


def test_released_notebooks_match_their_sources():
    """labs/*.ipynb is what `make release` writes from labs/source/: no drift, no solutions for learners."""
    assert drift() == []


def test_every_lab_full_marks_for_its_solution_zero_for_its_student_version(tmp_path):
    from fasttrain.grading.release import SOURCE_DIR, STUDENT_DIR

    subs = tmp_path / "subs"
    for source in sorted(SOURCE_DIR.glob("*.ipynb")):
        for learner, path in (("instructor", source), ("student", STUDENT_DIR / source.name)):
            (subs / learner).mkdir(parents=True, exist_ok=True)
            (subs / learner / source.name).write_text(path.read_text())
    wrong = replace_solution(
        read(SOURCE_DIR / "lab1_scaling.ipynb"),
        "efficiency",
        """
speedup = record["throughput"]["images_per_s"] / base["throughput"]["images_per_s"]
return speedup / record["environment"]["world_size"]
""",
    )  # right numbers, but no check that the base record ran on one rank: only a hidden test sees it
    (subs / "wrong").mkdir()
    nbformat.write(solved(wrong), str(subs / "wrong" / "lab1_scaling.ipynb"))
    # as_submitted=False: the papermill run of each file is feedback only, and the tiny lab above covers it
    book = autograde(
        [subs],
        tmp_path / "grades",
        limits=Limits(cell_timeout=120, notebook_timeout=300),
        log=lambda *a: None,
        as_submitted=False,
    )
    totals = {(t["learner"], t["lab"]): (t["points"], t["max_points"]) for t in book["totals"]}
    for source in sorted(SOURCE_DIR.glob("*.ipynb")):
        got, of = totals["instructor", source.stem]
        assert got == of > 0, (source.stem, [r for r in book["rows"] if r["status"] != "passed"])
        assert totals["student", source.stem] == (0, of)
    assert totals["wrong", "lab1_scaling"] == (8, 10)
    (failed,) = [r for r in book["rows"] if r["learner"] == "wrong" and r["status"] != "passed"]
    assert failed["exercise"] == "efficiency_test" and "must raise ValueError" in failed["reason"]
