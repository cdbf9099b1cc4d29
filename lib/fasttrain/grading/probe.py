"""`expect`: how a lab's test cells check an answer, in a learner's notebook and under the grader.

    from fasttrain.grading.probe import expect
    expect("two ranks", ring_allreduce_seconds(1e9, 2, 0.0, 1e9), 1.0, rel=1e-9)

In a learner's notebook `expect` compares at once and raises AssertionError with what differs. Under
the grader the learner's run never sees the expected value: the grader blanks it out of the test cell
before the cell enters the sandbox, and `expect` only emits the learner's value as plain data (numbers,
lists, strings, booleans, None; exact types, nothing of the learner's objects). The grader compares
that data with the expected values of a separate run of the instructor's solution (`matches`), outside
the sandbox, so no object a learner builds can make a comparison succeed.
"""

from __future__ import annotations

import json
import math
import os
import sys

_EMIT = {"fd": None, "reference": False, "test": None}  # set by the grader's worker, inside the sandbox
ABSENT = object()


class NotPlainData(TypeError):
    """A value the grader cannot take: anything but exact numbers, strings, booleans, None and lists of them."""


def plain(value, depth: int = 0):
    """`value` as JSON-ready data, checking exact types (a float subclass or an object with __eq__ is refused)."""
    if depth > 6:
        raise NotPlainData("nested more than 6 lists deep")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (list, tuple):
        if len(value) > 1_000_000:
            raise NotPlainData("a list of more than 1,000,000 items")
        return [plain(v, depth + 1) for v in value]
    torch = sys.modules.get("torch")
    if torch is not None and kind is torch.Tensor:  # exactly a tensor: its data as Python numbers
        return plain(value.detach().cpu().tolist(), depth)
    numpy = sys.modules.get("numpy")
    if numpy is not None and (
        kind is numpy.ndarray or kind in (numpy.float64, numpy.float32, numpy.int64, numpy.bool_)
    ):
        return plain(value.tolist(), depth)
    raise NotPlainData(f"a value of type {kind.__name__} where a number, string, boolean, tensor or list was expected")


def matches(got, want, rel: float = 1e-9, abs_tol: float = 0.0) -> bool:
    """Whether plain `got` equals plain `want`: numbers within tolerance, booleans only to booleans."""
    if isinstance(want, bool) or want is None or isinstance(want, str):
        return type(got) is type(want) and got == want
    if isinstance(want, (int, float)):
        if type(got) not in (int, float):
            return False
        if math.isnan(want) or math.isnan(got):
            return math.isnan(want) and math.isnan(got)
        return math.isclose(got, want, rel_tol=rel, abs_tol=abs_tol)
    if isinstance(want, list):
        return (
            type(got) is list and len(got) == len(want) and all(matches(g, w, rel, abs_tol) for g, w in zip(got, want))
        )
    return False


def raises(kind: type, fn, *args, **kwargs) -> bool:
    """Whether fn(*args, **kwargs) raises `kind` (a check can then expect True)."""
    try:
        fn(*args, **kwargs)
    except kind:
        return True
    except Exception:  # noqa: BLE001 - another error is not the one asked for
        return False
    return False


def lab_data(name: str):
    """A measured data set a lab works on (JSON): the copy the grader puts in the sandbox, else labs/data/."""
    from pathlib import Path

    from fasttrain.paths import REPO_ROOT

    for folder in (os.environ.get("FASTTRAIN_LAB_DATA"), REPO_ROOT / "labs" / "data"):
        if folder and (Path(folder) / name).is_file():
            return json.loads((Path(folder) / name).read_text())
    raise FileNotFoundError(f"No lab data {name!r} in labs/data/: get the course's labs/data folder back")


def describe(value, limit: int = 160) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expect(label: str, got, want=ABSENT, *, rel: float = 1e-9, abs: float = 0.0) -> None:  # noqa: A002 - reads well
    """Check `got` against `want` (numbers within `rel`/`abs`); under the grader, emit `got` instead."""
    fd = _EMIT["fd"]
    if fd is not None:
        _emit(fd, label, got, want, rel, abs)
        return
    if want is ABSENT:
        raise TypeError(f"expect({label!r}, ...) needs the expected value as its third argument")
    try:
        mine, theirs = plain(got), plain(want)
    except NotPlainData as exc:
        raise AssertionError(f"{label}: your code returned {exc}") from None
    if not matches(mine, theirs, rel, abs):
        raise AssertionError(f"{label}: expected {describe(theirs)}, got {describe(mine)}")


def _emit(fd: int, label, got, want, rel, abs_tol) -> None:
    line = sys._getframe(2).f_lineno  # the test cell's line: which check this is, for the feedback
    record = {"kind": "value", "test": _EMIT["test"], "label": str(label), "line": line}
    try:
        record["value"] = plain(got)
    except NotPlainData as exc:
        record["refused"] = str(exc)
    if _EMIT["reference"]:
        record.update(want=plain(want), rel=float(rel), abs=float(abs_tol))
    os.write(fd, (json.dumps(record) + "\n").encode())
