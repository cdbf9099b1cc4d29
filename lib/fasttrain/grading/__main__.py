"""The grader's commands.

python -m fasttrain.grading release [--check]          # labs/source/*.ipynb -> labs/*.ipynb (student)
python -m fasttrain.grading check NOTEBOOK             # the visible checks of every exercise in a notebook
python -m fasttrain.grading autograde SUBMISSIONS...   # gradebook + feedback in --out (build/grades)
python -m fasttrain.grading export-student DIR         # what learners clone: no solutions, no hidden tests
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fasttrain.paths import build_dir

from .release import SOURCE_DIR, STUDENT_DIR


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fasttrain.grading", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="write the student notebooks from the instructor sources")
    rel.add_argument("--source", default=str(SOURCE_DIR), help="instructor notebooks (default labs/source)")
    rel.add_argument("--out", default=str(STUDENT_DIR), help="where student notebooks go (default labs)")
    rel.add_argument("--check", action="store_true", help="write nothing; fail if the student notebooks drifted")
    chk = sub.add_parser("check", help="run the visible checks of a lab notebook, exercise by exercise")
    chk.add_argument("notebook")
    chk.add_argument("--labs", default=str(STUDENT_DIR), help="the released labs (default labs)")
    exp = sub.add_parser("export-student", help="write the learners' copy of the course (no answers) into DIR")
    exp.add_argument("dir")
    grade = sub.add_parser("autograde", help="grade submitted notebooks (files or folders)")
    grade.add_argument("submissions", nargs="+")
    grade.add_argument("--out", default=None, help="gradebook folder (default build/grades)")
    grade.add_argument("--source", default=str(SOURCE_DIR), help="instructor notebooks (default labs/source)")
    grade.add_argument("--profile", default="smoke")
    grade.add_argument("--cell-timeout", type=float, default=120, help="seconds per cell")
    grade.add_argument("--notebook-timeout", type=float, default=600, help="seconds per notebook run")
    grade.add_argument("--memory-mb", type=int, default=8192, help="address-space cap per process")
    grade.add_argument("--jobs", type=int, default=2, help="submissions graded at once (default 2)")
    grade.add_argument("--processes", type=int, default=256, help="processes and threads per submission")
    grade.add_argument(
        "--unsafe-no-sandbox", action="store_true", help="grade without bubblewrap: trusted notebooks only"
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:  # say what to do, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    if args.command == "release":
        from .release import drift, release

        if args.check:
            problems = drift(args.source, args.out)
            for p in problems:
                print(p, file=sys.stderr)
            return 1 if problems else 0
        for path in release(args.source, args.out):
            print(f"wrote {path}")
        return 0
    if args.command == "check":
        from .check import check_notebook

        return 0 if check_notebook(args.notebook, args.labs) else 1
    if args.command == "export-student":
        from .export import export_student

        written = export_student(Path(args.dir))
        print(f"wrote the learners' copy ({len(written)} files) to {args.dir}")
        return 0

    from .autograde import Limits, autograde

    limits = Limits(
        args.profile,
        args.cell_timeout,
        args.notebook_timeout,
        args.memory_mb,
        args.jobs,
        args.processes,
        sandbox=not args.unsafe_no_sandbox,
    )
    out = Path(args.out) if args.out else build_dir() / "grades"
    book = autograde(args.submissions, out, args.source, limits)
    print(
        f"\n{len(book['totals'])} submission(s) graded: {out / 'gradebook.csv'}, {out / 'gradebook.json'}, "
        f"{out / 'feedback'}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
