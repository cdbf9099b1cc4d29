#!/usr/bin/env python
"""Run every chapter in one profile and report every claim it checked on its own numbers.

    python ci/check_claims.py --profile cpu              # all chapters in cpu (~40 min on 2 cores), then the report
    python ci/check_claims.py --profile smoke --no-run   # the report of the last run's claims only
    python ci/check_claims.py --profile cpu --only 02 03

Each chapter writes build/<profile>/claims/<NN>.json; this prints them as one table, writes it to
build/<profile>/claims/report.md, and exits non-zero if a chapter wrote no claims or a claim that the
chapter marks as holding in this profile did not (CI runs the smoke profile through `make test`;
this is for whoever has the time for a larger one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import run_notebooks  # puts lib/ on the path
from run_notebooks import ROOT


def chapter_ids(only: list[str] | None) -> list[str]:
    names = [Path(e["path"]).name for e in run_notebooks.load_plan()]
    return [n[:2] for n in names if not only or any(o in n for o in only)]


def report(folder: Path, chapters: list[str], profile: str) -> tuple[str, list[str]]:
    """The Markdown report and the problems found (missing files, claims that should have held)."""
    from fasttrain.report import claims

    head = "| chapter | claim | measured | verdict | must hold in |"
    lines = [f"# Claims, profile {profile}", "", head, "|---|---|---|---|---|"]
    problems, held = [], 0
    for chapter in chapters:
        path = folder / f"{chapter}.json"
        if not path.exists():
            problems.append(f"chapter {chapter}: no {path} (did the notebook run to its end?)")
            continue
        rows = claims.load(path)
        held += sum(r["holds"] is True for r in rows)
        for r in rows:
            verdict = {True: "holds", False: "does not hold", None: "not decided here"}[r["holds"]]
            must = ", ".join(r.get("robust", ()))
            lines.append(f"| {chapter} | {r['claim']} | {r['measured']} | {verdict} | {must} |")
        problems += [f"chapter {chapter}: {r['claim']!r}: {r['measured']}" for r in claims.broken(rows, profile)]
    lines += ["", f"{held} claim(s) held; {len(problems)} problem(s)."] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n", problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="smoke, cpu, gpu or auto (default cpu)")
    parser.add_argument("--only", nargs="*", default=None, help="chapters whose notebook name contains these")
    parser.add_argument("--no-run", action="store_true", help="report the claims the last run wrote")
    parser.add_argument("--out", default=None, help="output folder (default build/<profile>)")
    args = parser.parse_args(argv)

    from fasttrain.config import resolve_profile

    profile = resolve_profile(args.profile)
    out = Path(args.out).resolve() if args.out else ROOT / "build" / profile
    ran = 0
    if not args.no_run:
        only = ["--only", *args.only] if args.only else []
        ran = run_notebooks.main(["--profile", profile, "--out", str(out), *only])
    text, problems = report(out / "claims", chapter_ids(args.only), profile)
    (out / "claims").mkdir(parents=True, exist_ok=True)
    (out / "claims" / "report.md").write_text(text)
    print("\n" + text)
    return 1 if problems or ran else 0


if __name__ == "__main__":
    sys.exit(main())
