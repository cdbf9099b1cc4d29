"""The grader's commands.

python -m fasttrain.grading release [--check]          # labs/source/*.ipynb -> labs/*.ipynb (student)
python -m fasttrain.grading check NOTEBOOK             # the visible tests of every exercise in a notebook
python -m fasttrain.grading autograde SUBMISSIONS...   # gradebook + feedback in --out (build/grades)
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
    chk = sub.add_parser("check", help="run the visible tests of a lab notebook, exercise by exercise")
    chk.add_argument("notebook")
    grade = sub.add_parser("autograde", help="grade submitted notebooks (files or folders)")
    grade.add_argument("submissions", nargs="+")
    grade.add_argument("--out", default=None, help="gradebook folder (default build/grades)")
    for p in (chk, grade):
        p.add_argument("--source", default=str(SOURCE_DIR), help="instructor notebooks (default labs/source)")
        p.add_argument("--profile", default="smoke")
        p.add_argument("--cell-timeout", type=float, default=120, help="seconds per cell")
        p.add_argument("--notebook-timeout", type=float, default=600, help="seconds per notebook run")
        p.add_argument("--memory-mb", type=int, default=8192, help="address-space cap per process")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError, KeyError) as exc:  # wrong paths or limits: say so, no traceback
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

    from .autograde import Limits, autograde, discover, grade_submission, load_labs

    limits = Limits(args.profile, args.cell_timeout, args.notebook_timeout, args.memory_mb)
    if args.command == "check":
        labs = load_labs(args.source)
        (submission,) = discover([args.notebook], labs)
        rows, _ = grade_submission(submission, labs, limits, hidden=False, as_submitted=False)
        for r in rows:
            print(f"{r['exercise']:<24} {r['status']:<9} {r['reason']}")
        return 0 if all(r["status"] == "passed" for r in rows) else 1
    out = Path(args.out) if args.out else build_dir() / "grades"
    book = autograde(args.submissions, out, args.source, limits)
    print(
        f"\n{len(book['totals'])} submission(s) graded: {out / 'gradebook.csv'}, {out / 'gradebook.json'}, "
        f"{out / 'feedback'}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
