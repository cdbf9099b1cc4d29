"""Student notebooks from instructor sources: labs/source/labN_name.ipynb -> labs/labN_name.ipynb.

The instructor source holds solutions and hidden tests (nbgrader markers); what a learner opens in
labs/ is generated from it by `release`, never edited by hand, and a test fails when the two drift.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from fasttrain.paths import REPO_ROOT

from .notebooks import HIDDEN, SOLUTION, exercises, read, student_version

SOURCE_DIR = REPO_ROOT / "labs" / "source"
STUDENT_DIR = REPO_ROOT / "labs"
HINT_ID = "fasttrain-check-hint"  # a fixed cell id, so that releasing twice gives the same file
HINT = (
    "**Checking your work.** Each test cell below an exercise runs its visible checks; to see every check "
    'of one exercise with what passed, run `from fasttrain.grading import check; check("{example}")`. '
    "The grader runs more checks than you see, and only your code in the exercise cells counts: it runs "
    "the lab's other cells as released."
)


def sources(source_dir: str | Path = SOURCE_DIR) -> list[Path]:
    """The instructor notebooks, labN_name.ipynb, in order."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"No instructor sources at {source_dir}: labs live in labs/source/labN_name.ipynb")
    return sorted(source_dir.glob("*.ipynb"))


def has_solutions(nb) -> bool:
    return any(c.cell_type == "code" and (SOLUTION.search(c.source) or HIDDEN.search(c.source)) for c in nb.cells)


def student_notebook(source_nb, lab: str):
    """The learner's notebook: student_version() plus the lab's name in metadata and a note on checking."""
    nb = student_version(source_nb)
    nb.metadata["fasttrain"] = {"lab": lab, "generated_from": f"labs/source/{lab}.ipynb"}
    graded = exercises(source_nb)
    if graded:
        example = graded[0]["solutions"][0] if graded[0]["solutions"] else graded[0]["grade_id"]
        hint = nbformat.v4.new_markdown_cell(HINT.format(example=example))
        hint.id = HINT_ID
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first_code, hint)
    return nb


def render(nb) -> str:
    return nbformat.writes(nb) + "\n"


def release(source_dir: str | Path = SOURCE_DIR, out_dir: str | Path = STUDENT_DIR) -> list[Path]:
    """Write the student version of every source into out_dir; returns the paths written."""
    written = []
    for src in sources(source_dir):
        out = Path(out_dir) / src.name
        out.write_text(render(student_notebook(read(src), src.stem)))
        written.append(out)
    return written


def drift(source_dir: str | Path = SOURCE_DIR, out_dir: str | Path = STUDENT_DIR) -> list[str]:
    """What is wrong with the released notebooks, one line each (empty when out_dir matches the sources)."""
    problems = []
    names = set()
    for src in sources(source_dir):
        names.add(src.name)
        out = Path(out_dir) / src.name
        if not out.exists():
            problems.append(f"{out} is missing: run `make release`")
        elif _normal(out.read_text()) != _normal(render(student_notebook(read(src), src.stem))):
            problems.append(f"{out} differs from what {src} releases: edit the source, then run `make release`")
    for path in sorted(Path(out_dir).glob("*.ipynb")):
        if path.name in names:
            continue
        try:
            leaked = has_solutions(read(path))
        except Exception:
            leaked = False
        if leaked:
            problems.append(
                f"{path} holds solutions or hidden tests: instructor notebooks go in "
                f"{Path(source_dir)}/ (git mv it there), then run `make release`"
            )
        else:
            problems.append(f"{path} has no instructor source in {source_dir}: add one or remove it")
    return problems


def _normal(text: str):
    return json.loads(text)
