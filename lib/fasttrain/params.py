"""A chapter's papermill parameters, checked in its first code cell before anything runs.

Papermill injects the parameters it is given as a new cell *after* the cell tagged `parameters`,
and only warns about a name that cell does not declare; `-p` turns "0" into 0 and "256" into 256,
`-r` keeps "256" a string, and a list can only come through `-y`. So the first code cell calls

    from fasttrain.params import check_chapter
    check_chapter("00", globals())

which compares the notebook's global names and values with the chapter's declared parameters:
an unknown name (with a did-you-mean), a wrong type (a number where a list is meant, a string
where a number is meant, a boolean where a number is meant), and 0 where "unset" is None are each
an error naming the parameter and a valid example.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from typing import Any

from fasttrain.config import PRECISIONS, PROFILE_NAMES, ConfigError


class ParameterError(ConfigError):
    """A chapter parameter the chapter cannot run with; the message names it and gives a valid value."""


@dataclass(frozen=True)
class Param:
    """One parameter: its kind, whether None ("the profile's choice") is allowed, its bounds, an example."""

    kind: str  # "int", "float", "bool", "choice", or "list" (of `item`)
    optional: bool = False
    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive
    maximum: float | None = None  # inclusive
    choices: tuple = ()
    item: Param | None = None
    example: Any = None

    def sample(self) -> Any:
        """A valid value, for the error messages."""
        if self.example is not None:
            return self.example
        if self.kind == "list":
            return [self.item.sample()]
        if self.kind == "choice":
            return self.choices[0]
        if self.kind == "bool":
            return True
        low = self.minimum if self.minimum is not None else (self.above or 0) + 1
        return int(low) if self.kind == "int" else float(low)


def Int(minimum: int | None = None, optional: bool = False, example: Any = None) -> Param:
    return Param("int", optional, minimum=minimum, example=example)


def Float(
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    optional: bool = False,
    example: Any = None,
) -> Param:
    return Param("float", optional, minimum=minimum, above=above, maximum=maximum, example=example)


def Bool(optional: bool = False) -> Param:
    return Param("bool", optional)


def Choice(choices, optional: bool = False) -> Param:
    return Param("choice", optional, choices=tuple(choices))


def ListOf(item: Param, optional: bool = False, example: Any = None) -> Param:
    return Param("list", optional, item=item, example=example)


# Names IPython (and papermill's kernel) put into a notebook's globals: never a parameter.
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_PLAIN = (str, int, float, bool, list, tuple, dict, type(None))
_CHECKED = "_fasttrain_parameters_checked"


def check_parameters(namespace: dict[str, Any], spec: dict[str, Param], where: str = "this notebook") -> dict:
    """Check a notebook's parameters (pass `globals()`) against `spec`; return {name: value} or raise
    ParameterError listing every problem. Unknown names are looked for on the first call in a kernel only:
    later (an interactive re-run) the globals hold the notebook's own variables too."""
    errors = [] if namespace.get(_CHECKED) else _unknown_names(namespace, spec, where)
    for name, param in spec.items():
        if name in namespace:
            problem = value_problem(param, namespace[name])
            if problem:
                errors.append(f"{name}={namespace[name]!r}: {problem}. {_example(name, param)}")
    if errors:
        raise ParameterError(f"{len(errors)} parameter problem(s) in {where}:\n  " + "\n  ".join(errors))
    namespace[_CHECKED] = True
    return {name: namespace[name] for name in spec if name in namespace}


def _unknown_names(namespace: dict[str, Any], spec: dict[str, Param], where: str) -> list[str]:
    """Plain values (what papermill injects) under names the notebook does not declare."""
    errors = []
    for name, value in namespace.items():
        if name in spec or name.startswith("_") or name in _KERNEL_NAMES or not isinstance(value, _PLAIN):
            continue
        close = difflib.get_close_matches(name.lower(), list(spec), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        errors.append(
            f"{name}={value!r} is not a parameter of {where}.{hint} Its parameters: {', '.join(spec)} "
            "(papermill passes any name on; this one would be ignored)."
        )
    return errors


def value_problem(param: Param, value: Any) -> str | None:
    """What is wrong with `value` for `param` (None: nothing)."""
    if value is None:
        return None if param.optional else "None is not allowed here; give a value"
    if param.kind == "list":
        return _list_problem(param, value)
    if param.kind == "bool":
        return None if isinstance(value, bool) else f"True or False is needed, not {_kind(value)}"
    if param.kind == "choice":
        return _choice_problem(param, value)
    if isinstance(value, bool):  # True is an int to Python, never a batch size or a step count
        return f"a number is needed, not the boolean {value}"
    if isinstance(value, str):
        return f"a number is needed, not the string {value!r} (papermill's -r keeps text as text: pass numbers with -p)"
    number_types = (int,) if param.kind == "int" else (int, float)
    if not isinstance(value, number_types):
        return f"{'a whole number' if param.kind == 'int' else 'a number'} is needed, not {_kind(value)}"
    if not math.isfinite(value):
        return "a finite number is needed"
    return _bounds_problem(param, value)


def _list_problem(param: Param, value: Any) -> str | None:
    if not isinstance(value, (list, tuple)):
        how = " (one string is not a list: give the values as a list)" if isinstance(value, str) else ""
        return f"a list is needed, not {_kind(value)}{how}"
    if not value:
        return "the list is empty" + ("; give None for the profile's choice" if param.optional else "")
    for i, item in enumerate(value):
        problem = value_problem(param.item, item)
        if problem:
            return f"item {i} ({item!r}): {problem}"
    return None


def _choice_problem(param: Param, value: Any) -> str | None:
    if value in param.choices:
        return None
    lowered = {str(c).lower(): c for c in param.choices}
    close = difflib.get_close_matches(str(value).lower(), list(lowered), n=1)
    hint = f" Did you mean {lowered[close[0]]!r}?" if close else ""
    return f"not one of {', '.join(map(repr, param.choices))}.{hint}"


def _bounds_problem(param: Param, value: float) -> str | None:
    unset = " (None, not 0, means the profile's choice)" if param.optional and value == 0 else ""
    if param.minimum is not None and value < param.minimum:
        return f"must be {param.minimum} or more{unset}"
    if param.above is not None and value <= param.above:
        return f"must be more than {param.above}{unset}"
    if param.maximum is not None and value > param.maximum:
        return f"must be at most {param.maximum}"
    return None


def _kind(value: Any) -> str:
    return f"the {type(value).__name__} {value!r}"


def _example(name: str, param: Param) -> str:
    sample = param.sample()
    if isinstance(sample, (list, tuple)):
        cli = f"-y '{name}: {json.dumps(list(sample))}'"
    else:
        cli = f"-p {name} {sample}"
    unset = f", or {name} = None for the profile's choice" if param.optional else ""
    return f"A valid example: {name} = {sample!r} (papermill: {cli}){unset}."


# ---------------------------------------------------------------------- the chapters' parameters
_PROFILE = Choice(PROFILE_NAMES)
_TARGET = Float(above=0, maximum=1, optional=True, example=0.8)
CHAPTERS: dict[str, dict[str, Param]] = {
    "00": dict(profile=_PROFILE, devices=Int(1), max_steps=Int(1, optional=True, example=30), target_accuracy=_TARGET),
    "01": dict(
        profile=_PROFILE,
        world_sizes=ListOf(Int(1), optional=True, example=[1, 2]),
        per_device_batch=Int(1, optional=True, example=32),
        bucket_caps_mb=ListOf(Float(above=0), example=[0.25]),
        accumulation=Int(1, example=2),
        netbench_max_mb=Float(above=0, optional=True, example=64),
    ),
    "02": dict(
        profile=_PROFILE,
        precisions=ListOf(Choice(PRECISIONS), example=["32-true", "bf16-mixed"]),
        seeds=Int(1, optional=True, example=2),
        max_steps=Int(1, optional=True, example=20),
        growth_interval=Int(1, optional=True, example=100),
    ),
    "03": dict(
        profile=_PROFILE,
        devices=Int(1, optional=True, example=2),
        batch_sizes=ListOf(Int(1), optional=True, example=[16, 64, 256]),
        target_accuracy=_TARGET,
        epochs=Float(above=0, optional=True, example=1.0),
        lr=Float(above=0, optional=True, example=0.1),
        lars_eta=Float(above=0, optional=True, example=0.001),
    ),
    "04": dict(
        profile=_PROFILE,
        runs=Int(1, optional=True, example=3),
        loo_runs=Int(0, optional=True, example=2),
        target_accuracy=_TARGET,
    ),
}


def check_chapter(chapter: str, namespace: dict[str, Any]) -> dict:
    """The first code cell of chapter `chapter` ("00" ... "04"): `check_chapter("00", globals())`."""
    if chapter not in CHAPTERS:
        raise ParameterError(f"No parameters declared for chapter {chapter!r}; choose one of {', '.join(CHAPTERS)}.")
    return check_parameters(namespace, CHAPTERS[chapter], where=f"chapter {chapter}")
