"""What enters the sandbox: the lab's cells with the learner's exercise cells, and test cells without answers.

A test cell checks with `expect(label, got, want, rel=..., abs=...)`. Before a learner's run the
grader blanks everything after `got` in each call, and every `### BEGIN REFERENCE` ... `### END
REFERENCE` block (code that computes expected values, e.g. with the library's own implementation),
keeping the line numbers. The expected values come from the reference run: the instructor's source,
unblanked, in a sandbox of its own.

Order rule, from the lab's metadata `fasttrain.order`: "final" (the default) runs every setup and
exercise cell in the lab's order, then every test cell, so each test sees the learner's final
definitions (a bug fixed in a later cell counts); "in-order" runs the test cells where they stand.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .notebooks import HIDDEN, exercises, grade_meta, read

REFERENCE = re.compile(r"^[ \t]*### BEGIN REFERENCE[^\n]*\n.*?^[ \t]*### END REFERENCE[^\n]*(\n|$)", re.M | re.S)
MISSING_STUB = 'raise NotImplementedError("The cell of exercise {grade_id} is missing from the submission.")'


@dataclass
class Lab:
    name: str
    nb: nbformat.NotebookNode
    graded: list = field(default_factory=list)
    hide_modules: list = field(default_factory=list)  # library modules replaced by a stub in the sandbox
    hide_names: list = field(default_factory=list)  # attributes replaced at start, e.g. torch.amp.GradScaler
    order: str = "final"
    data: list = field(default_factory=list)  # measured data files (labs/data/) the sandbox gets a copy of
    rules: list = field(default_factory=list)  # {"cells": [...], "tests": [...], "forbid": [...], "rule": "..."}

    @classmethod
    def load(cls, path: Path) -> Lab:
        nb = read(path)
        meta = nb.metadata.get("fasttrain", {})
        order = meta.get("order", "final")
        if order not in ("final", "in-order"):
            raise ValueError(f"{path}: metadata fasttrain.order is {order!r}: use 'final' or 'in-order'")
        data = [path.parent.parent / "data" / name for name in meta.get("data", [])]
        for file in data:
            if not file.is_file():
                raise FileNotFoundError(f"{path} names data {file.name}, which is not in {file.parent}")
        hide_modules, hide_names = meta.get("hide_modules", []), meta.get("hide_names", [])
        return cls(path.stem, nb, exercises(nb), hide_modules, hide_names, order, data, meta.get("rules", []))


def _blank(text: str) -> str:
    return re.sub(r"[^\n]", " ", text)


def blank_answers(source: str) -> str:
    """`source` with reference blocks and the expected values of every `expect` call blanked, lines kept."""
    source = REFERENCE.sub(lambda m: _blank(m.group(0)), source)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source  # the instructor's own test cell: the reference run reports it
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()))
    data = bytearray(source.encode())
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "expect":
            if len(node.args) >= 2 and (len(node.args) > 2 or node.keywords):
                got = node.args[1]
                start = offsets[got.end_lineno - 1] + got.end_col_offset
                end = offsets[node.end_lineno - 1] + node.end_col_offset - 1  # keep the closing parenthesis
                spans.append((start, end))
    for start, end in spans:
        data[start:end] = bytes(b if b == ord("\n") else ord(" ") for b in data[start:end])
    return data.decode()


def theirs(submission_nb) -> tuple[dict, list[str]]:
    """The learner's exercise cells by grade_id, and notes on duplicates and order."""
    cells, notes = {}, []
    for cell in submission_nb.cells:
        if not isinstance(cell, dict) or not isinstance(cell.get("metadata"), dict):
            continue
        meta = grade_meta(cell)
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if cell.get("cell_type") == "code" and isinstance(gid, str) and meta.get("solution"):
            if gid in cells:
                notes.append(f"exercise cell {gid} appears twice; the first one is graded")
            else:
                source = cell.get("source", "")
                cells[gid] = "".join(source) if isinstance(source, list) else str(source)
    return cells, notes


def grading_plan(lab: Lab, submission_nb=None) -> tuple[list[dict], list[str]]:
    """The cells a run executes. Without a submission: the reference run (the instructor's source as is).

    Only exercise cells come from the submission: cells a learner added, deleted, edited or moved
    change nothing, and a missing exercise cell becomes a stub that says so.
    """
    mine, notes = theirs(submission_nb) if submission_nb is not None else ({}, [])
    expected = [grade_meta(c)["grade_id"] for c in lab.nb.cells if grade_meta(c).get("solution")]
    order = [g for g in mine if g in expected]
    if order != [g for g in expected if g in mine]:
        notes.append("the exercise cells were reordered; the grader runs them in the lab's order")
    body, tests = [], []
    for i, cell in enumerate(lab.nb.cells):
        if cell.cell_type != "code":
            continue
        meta, tags = grade_meta(cell), cell.metadata.get("tags", [])
        gid = meta.get("grade_id")
        if meta.get("solution"):
            source = cell.source
            if submission_nb is not None:
                if gid not in mine:
                    notes.append(f"the exercise cell {gid} is missing; it scores zero")
                source = mine.get(gid, MISSING_STUB.format(grade_id=gid))
            body.append({"kind": "solution", "grade_id": gid, "label": gid, "source": source})
        elif meta.get("grade"):
            source = cell.source if submission_nb is None else blank_answers(cell.source)
            (tests if lab.order == "final" else body).append(
                {"kind": "test", "grade_id": gid, "label": gid, "source": source}
            )
        else:
            kind = "parameters" if "parameters" in tags else "setup"
            source = cell.source if submission_nb is None else blank_answers(cell.source)
            body.append({"kind": kind, "grade_id": None, "label": f"{i}", "source": source})
    return body + tests, notes


def hidden_lines(lab: Lab, grade_id: str) -> set[int]:
    """Line numbers (1-based) of a test cell that lie inside its hidden-test blocks."""
    source = next(c.source for c in lab.nb.cells if grade_meta(c).get("grade_id") == grade_id)
    lines = set()
    for m in HIDDEN.finditer(source):
        first = source.count("\n", 0, m.start()) + 1
        lines.update(range(first, first + m.group(0).count("\n") + 1))
    return lines


def broken_rules(lab: Lab, learner_cells: dict[str, str]) -> dict[str, str]:
    """Test id -> why it fails, for each stated rule a learner's cell breaks (read here, outside the sandbox).

    A rule forbids names, attributes and strings in the named exercise cells, e.g. "half" and "float16"
    for "do not cast to fp16". Code that builds such a name at run time is not caught here: the
    sandbox also hides what the lab lists in hide_names (e.g. torch.Tensor.half).
    """
    failed = {}
    for rule in lab.rules:
        forbid = set(rule["forbid"])
        for cell in rule["cells"]:
            try:
                tree = ast.parse(learner_cells.get(cell, ""))
            except SyntaxError:
                continue
            used = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Name):
                    used.add(node.id)
                elif isinstance(node, ast.Attribute):
                    used.add(node.attr)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    used.add(node.value)  # .to("float16"), astype("float16")
            if used & forbid:
                for test in rule["tests"]:
                    failed.setdefault(
                        test, f"rule broken: {rule['rule']} (your cell {cell} uses {sorted(used & forbid)[0]})"
                    )
    return failed
