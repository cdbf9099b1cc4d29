#!/usr/bin/env python
"""Chapters 00-02 in the `gpu` profile on a GPU box that has torch and Lightning but no papermill.

    PYTHONPATH=lib python3 ci/gpu_course.py                # on a GPU: run the chapters, keep what they measured
    PYTHONPATH=lib python3 ci/gpu_course.py --dry-run      # anywhere: the same plan, nothing executed

Each notebook's code cells run in order in one namespace, in this process, the way a kernel would run
them: the parameters cell first, then the profile injected after it (papermill's "# Parameters" cell),
checked by the chapter's own `check_chapter`. `display(Markdown(...))` prints the markdown, figures are
written by the chapters themselves (matplotlib's Agg backend). Every training job is a real job through
fasttrain.launch. What comes back, under --out (results/reference/<gpu>/course/ by default): each
chapter's claims JSON, the result record of every job, the figures, chapter 01's traces (gzipped,
Perfetto opens them as they are) and a log per chapter; a table of chapters, seconds and claims ends
the output.

With one GPU, chapter 01 measures 1 rank only (`world_sizes` is what the machine has): NCCL refuses
two ranks on one device, and the course does not fake a second one, so its scaling, timeline and
crossover sections say "one rank" and their claims are not decided on such a box. Its network
benchmark then measures gloo between CPU processes, as it says.

--dry-run parses every notebook, injects and checks the parameters, compiles every code cell and
prints the plan; it starts no job (CI runs it, so the script cannot rot unseen).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import sys
import time
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

CHAPTERS = {
    "00": "chapters/00_baseline.ipynb",
    "01": "chapters/01_scaling.ipynb",
    "02": "chapters/02_mixed_precision.ipynb",
}


def code_cells(notebook: Path, profile: str) -> list[tuple[str, str]]:
    """(label, source) of every code cell, with the profile assigned right after the parameters cell."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{notebook.name} needs exactly one code cell tagged 'parameters' (it has {len(tagged)})")
    out = []
    for i, cell in enumerate(cells):
        out.append((f"{notebook.stem} cell {i}" + (" (parameters)" if i == tagged[0] else ""), "".join(cell["source"])))
        if i == tagged[0]:
            out.append((f"{notebook.stem} injected parameters", f"profile = {profile!r}\n"))
    return out


class _Markdown:
    def __init__(self, data: str = ""):
        self.data = data


def _display(*objects, **_) -> None:
    for obj in objects:
        print(getattr(obj, "data", obj))


def install_display_shim() -> None:
    """IPython's display outside a kernel prints an object's repr: print the markdown instead (and work
    on a box without IPython at all)."""
    shim = types.ModuleType("IPython.display")
    shim.display, shim.Markdown = _display, _Markdown
    package = types.ModuleType("IPython")  # this process is no kernel: nothing else needs the real one
    package.display = shim
    sys.modules["IPython"], sys.modules["IPython.display"] = package, shim


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
            s.flush()
        return len(text)


def run_chapter(chapter: str, cells: list[tuple[str, str]], log_path: Path) -> tuple[bool, float, str]:
    """Execute the cells in one namespace; stop at the first failing cell. Returns (ok, seconds, error)."""
    namespace: dict = {"__name__": "__main__"}
    started = time.perf_counter()
    with open(log_path, "w") as log, contextlib.redirect_stdout(_Tee(sys.stdout, log)):
        for label, source in cells:
            print(f"\n--- {label}", flush=True)
            cell_start = time.perf_counter()
            try:
                exec(compile(source, label, "exec"), namespace)
            except Exception:  # the chapter's own error message, in the log and on the console
                error = traceback.format_exc()
                print(error)
                return False, time.perf_counter() - started, error.strip().splitlines()[-1]
            print(f"--- {label}: {time.perf_counter() - cell_start:.1f} s", flush=True)
    return True, time.perf_counter() - started, ""


def claims_summary(path: Path) -> str:
    if not path.exists():
        return "no claims written"
    rows = json.loads(path.read_text())
    held = sum(r["holds"] is True for r in rows)
    broken = sum(r["holds"] is False for r in rows)
    return f"{held} hold, {broken} do not, {len(rows) - held - broken} not decided (of {len(rows)})"


def keep(build: Path, out: Path) -> None:
    """Records, claims, figures and gzipped traces from the build folder into out/."""
    for record in build.glob("runs/*/record.json"):
        shutil.copy(record, out / "records" / f"{record.parent.name}.json")
    for claims in build.glob("**/claims/*.json"):
        shutil.copy(claims, out / "claims" / claims.name)
    for figure in build.glob("figures/*.png"):
        shutil.copy(figure, out / "figures" / figure.name)
    for trace in build.glob("runs/*/traces/*.pt.trace.json"):
        target = out / "traces" / f"{trace.parent.parent.name}-{trace.name.split('-[')[0]}.json.gz"
        if target.exists() and target.stat().st_mtime >= trace.stat().st_mtime:
            continue  # kept after an earlier chapter
        with open(trace, "rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapters", nargs="+", default=list(CHAPTERS), choices=list(CHAPTERS))
    parser.add_argument("--profile", default="gpu", help="gpu (default); smoke or cpu to try the path on a CPU")
    parser.add_argument("--out", default=None, help="default: results/reference/<gpu>/course/")
    parser.add_argument("--dry-run", action="store_true", help="parse, inject, check and compile; execute nothing")
    args = parser.parse_args(argv)

    from fasttrain.params import check_chapter
    from fasttrain.paths import reference_dir

    plan = {}
    for chapter in args.chapters:
        cells = code_cells(ROOT / CHAPTERS[chapter], args.profile)
        namespace: dict = {}
        for label, source in cells:
            compile(source, label, "exec")  # a syntax error shows before anything runs
        parameters = "".join(s for label, s in cells if label.endswith(("(parameters)", "injected parameters")))
        exec(parameters, namespace)  # the parameters cell assigns literals only
        check_chapter(chapter, {k: v for k, v in namespace.items() if not k.startswith("__")})
        plan[chapter] = cells
        print(f"chapter {chapter}: {len(cells)} cells, profile {args.profile!r}, parameters checked")
    if args.dry_run:
        print("dry run: nothing executed")
        return 0

    import torch

    if args.profile == "gpu" and not torch.cuda.is_available():
        print("No CUDA GPU here: the gpu profile needs one (--dry-run checks the plan anywhere).", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu-{args.profile}"
    out = Path(args.out) if args.out else reference_dir(device) / "course"
    for sub in ("records", "claims", "figures", "traces", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    build = ROOT / "build" / f"gpu_course-{args.profile}"
    os.environ.update(FASTTRAIN_BUILD_DIR=str(build), FASTTRAIN_PROGRESS="text", MPLBACKEND="Agg")
    install_display_shim()
    results = []
    for chapter, cells in plan.items():
        ok, seconds, error = run_chapter(chapter, cells, out / "logs" / f"{chapter}.log")
        keep(build, out)
        results.append((chapter, ok, seconds, error))
    print(f"\ncourse chapters in the {args.profile} profile on {device} (torch {torch.__version__}); files in {out}")
    print(f"{'chapter':<9}{'seconds':>8}  result")
    for chapter, ok, seconds, error in results:
        what = claims_summary(out / "claims" / f"{chapter}.json") if ok else f"FAILED: {error}"
        print(f"{chapter:<9}{seconds:>8.0f}  {what}")
    return 0 if all(ok for _, ok, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
