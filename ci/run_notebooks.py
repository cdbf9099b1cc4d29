#!/usr/bin/env python
"""Execute the course's notebooks with papermill into build/<profile>/, in the order of notebooks.yaml.

    python ci/run_notebooks.py --profile smoke            # what CI runs
    python ci/run_notebooks.py --profile auto --only 00   # one chapter, on whatever this machine has

A notebook that fails (or whose cell runs past its time limit) is still written, executed up to the
failing cell, so the reader can open it and see where and why; the runner then exits non-zero.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))


def load_plan(path: Path = ROOT / "ci" / "notebooks.yaml") -> list[dict]:
    return yaml.safe_load(path.read_text())["notebooks"]


def notebook_parameters(notebook: Path) -> list[str]:
    """The names the notebook's cell tagged `parameters` assigns: the only ones papermill may set."""
    cells = [
        c
        for c in json.loads(notebook.read_text())["cells"]
        if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if len(cells) != 1:
        raise ValueError(f"{notebook.name} needs exactly one code cell tagged 'parameters' (it has {len(cells)}).")
    names = []
    for node in ast.parse("".join(cells[0]["source"])).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def check_parameters(notebook: Path, profile: str, parameters: dict) -> None:
    """papermill only warns about a parameter the notebook does not define, and the notebook then runs
    with its default: a typo would go unnoticed. Refuse it, and an unknown profile, before starting."""
    from fasttrain.config import ConfigError, resolve_profile

    resolve_profile(profile)  # ConfigError naming the profiles
    valid = notebook_parameters(notebook)
    unknown = [name for name in {"profile": profile, **parameters} if name not in valid]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, valid, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{notebook.name} has no parameter {', '.join(hints)}. Its parameters cell defines: "
            f"{', '.join(valid)}. Fix the name in ci/notebooks.yaml or in your -p options."
        )


def execute(notebook: Path, output: Path, profile: str, parameters: dict, cell_timeout: int | None) -> float:
    """Run one notebook top to bottom; returns seconds taken. Raises with a clear message on failure."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    check_parameters(notebook, profile, parameters)
    output.parent.mkdir(parents=True, exist_ok=True)
    # A stored notebook keeps a progress widget's first frame only: the kernel draws text bars instead.
    os.environ.setdefault("FASTTRAIN_PROGRESS", "text")
    started = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook),
            str(output),
            parameters={"profile": profile, **parameters},
            cwd=str(notebook.parent),
            execution_timeout=cell_timeout,
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
        )
    except PapermillExecutionError as exc:
        raise RuntimeError(
            f"{notebook.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
            f"The notebook, executed up to that cell, is at {output}"
        ) from None
    except Exception as exc:
        if "timeout" in type(exc).__name__.lower() or "timed out" in str(exc):
            lines = str(exc).split("-------------------")
            cell = lines[1].strip().splitlines()[0] if len(lines) > 1 and lines[1].strip() else "?"
            raise RuntimeError(
                f"{notebook.name}: a cell ran past its {cell_timeout} s limit and was stopped "
                f"(the cell starting {cell!r}). Raise cell_timeout in ci/notebooks.yaml or use a "
                f"smaller profile. The partly executed notebook is at {output}"
            ) from None
        raise
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="auto", help="smoke, cpu, gpu or auto (default)")
    parser.add_argument("--only", nargs="*", default=None, help="notebooks whose name contains any of these")
    parser.add_argument("--out", default=None, help="output folder (default build/<profile>)")
    args = parser.parse_args(argv)

    from fasttrain.config import resolve_profile

    profile = resolve_profile(args.profile)
    out = Path(args.out).resolve() if args.out else ROOT / "build" / profile  # notebooks run in chapters/
    os.environ.setdefault("FASTTRAIN_BUILD_DIR", str(out))
    plan = [n for n in load_plan() if not args.only or any(o in n["path"] for o in args.only)]
    if not plan:
        print(f"No notebook matches {args.only}", file=sys.stderr)
        return 2
    failures, timings = [], []
    for entry in plan:
        notebook = ROOT / entry["path"]
        output = out / entry["path"]
        timeout = (entry.get("cell_timeout") or {}).get(profile)
        params = {**entry.get("parameters", {}), **(entry.get("profiles", {}).get(profile) or {})}
        print(f"== {entry['path']} ({profile}) ...", flush=True)
        try:
            seconds = execute(notebook, output, profile, params, timeout)
            timings.append((entry["path"], seconds))
            print(f"   ok in {seconds:.0f} s -> {output}", flush=True)
        except Exception as exc:
            failures.append(entry["path"])
            print(f"   FAILED: {exc}", flush=True)
    print("\nnotebook                                  seconds")
    for path, seconds in timings:
        print(f"{path:<40} {seconds:8.0f}")
    if failures:
        print(f"\n{len(failures)} notebook(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
