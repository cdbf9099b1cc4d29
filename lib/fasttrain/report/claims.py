"""A chapter's lessons as claims, each checked on this run's own numbers.

A chapter states what it teaches as claims and decides each from its measurements:

    claims = Claims("00", profile)
    claims.check("the baseline learns: validation accuracy ends well above chance",
                 holds=final > 2 * chance, measured=f"{final:.1%} after {steps} steps (chance {chance:.0%})",
                 robust=("smoke", "cpu", "gpu"))
    claims.show()   # the table the chapter ends with, and build/<profile>/claims/00.json

`holds` is True, False, or None where this run cannot decide (the effect is inside the measured
spread, or the profile is too small to show it); `measured` then says so from the numbers. `robust`
names the profiles in which the claim must hold: `make test` fails if one robust in `smoke` does not
hold in the smoke run, and `ci/check_claims.py` does the same for a larger profile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fasttrain.paths import profile_dir
from fasttrain.report.stats import spread, t_975
from fasttrain.report.tables import markdown_table

PROFILES = ("smoke", "cpu", "gpu")


@dataclass
class Claim:
    claim: str
    measured: str
    holds: bool | None
    robust: tuple[str, ...] = ()
    chapter: str = ""
    profile: str = ""

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "not decided here"}[self.holds]


@dataclass
class Claims:
    chapter: str
    profile: str
    items: list[Claim] = field(default_factory=list)

    def check(self, claim: str, holds: bool | None, measured: str, robust: Iterable[str] = ("cpu", "gpu")) -> bool:
        """Record one claim; returns whether it held (None counts as not)."""
        robust = tuple(robust)
        unknown = [p for p in robust if p not in PROFILES]
        if unknown:
            raise ValueError(f"robust={robust!r}: profiles are {PROFILES}")
        holds = None if holds is None else bool(holds)
        self.items.append(Claim(claim, measured, holds, robust, self.chapter, self.profile))
        return bool(holds)

    def markdown(self) -> str:
        rows = [
            (c.claim, c.measured, f"**{c.verdict}**", ", ".join(c.robust) or "-")
            for c in self.items  # the profiles named must show it; the others may lack the scale
        ]
        return markdown_table(("claim", "measured in this run", "verdict", "must hold in"), rows)

    def save(self, folder: Path | None = None) -> Path:
        """build/<profile>/claims/<chapter>.json: a list of {claim, measured, holds, robust, chapter, profile}."""
        folder = folder or profile_dir(self.profile) / "claims"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.chapter}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps([asdict(c) for c in self.items], indent=1) + "\n")
        tmp.replace(path)
        return path

    def broken(self) -> list[Claim]:
        return [c for c in self.items if self.profile in c.robust and c.holds is not True]

    def show(self) -> Path:
        """Display the table (in a notebook; printed elsewhere) and save the JSON; returns its path."""
        path = self.save()
        text = self.markdown()
        broken = self.broken()
        if broken:
            text += f"\n\n**{len(broken)} claim(s) that should hold in `{self.profile}` did not**: see the rows above."
        try:
            from IPython.display import Markdown, display

            display(Markdown(text))
        except ImportError:  # pragma: no cover - the library runs without IPython too
            print(text)
        print(f"claims written to {path}")
        return path


def load(path: Path) -> list[dict]:
    rows = json.loads(Path(path).read_text())
    if not isinstance(rows, list) or not all({"claim", "measured", "holds"} <= set(r) for r in rows):
        raise ValueError(f"{path}: not a claims file (a list of objects with claim, measured and holds)")
    return rows


def broken(rows: Sequence[dict], profile: str) -> list[dict]:
    """The claims marked robust in `profile` that did not hold there."""
    return [r for r in rows if profile in r.get("robust", ()) and r["holds"] is not True]


def compare(a: Sequence[float], b: Sequence[float]) -> tuple[str, str]:
    """Which of two sets of repeated measurements is larger, beyond their spread.

    Returns (">", "<" or "~", the words): ">" or "<" where the 95% intervals of the two means do not
    overlap (with one value a side, where the gap exceeds neither side's spread: undecidable, "~").
    """
    sa, sb = spread(a), spread(b)
    if sa["n"] < 2 or sb["n"] < 2:
        return "~", f"{_mean(sa)} vs {_mean(sb)}: one value a side has no spread to weigh the gap against"
    words = f"{_mean(sa)} vs {_mean(sb)}"
    if sa["ci95_low"] > sb["ci95_high"]:
        return ">", words
    if sa["ci95_high"] < sb["ci95_low"]:
        return "<", words
    return "~", words + " (the 95% intervals overlap)"


def compare_pooled(a: Sequence[float], b: Sequence[float]) -> tuple[str, str]:
    """Like `compare`, by the 95% interval of the difference of means with the variance pooled over both
    sides (Student's two-sample t, n_a + n_b - 2 degrees of freedom). Where one side has few runs, it
    borrows the other's spread: this assumes the two differ in their mean, not in their noise (one lever
    changed, same machine), and it decides far more than `compare` with 2 runs a side (t 12.7 for one
    degree of freedom)."""
    sa, sb = spread(a), spread(b)
    if sa["n"] < 2 or sb["n"] < 2:
        return "~", f"{_mean(sa)} vs {_mean(sb)}: one value a side has no spread to weigh the gap against"
    df = sa["n"] + sb["n"] - 2
    pooled = math.sqrt(((sa["n"] - 1) * sa["std"] ** 2 + (sb["n"] - 1) * sb["std"] ** 2) / df)
    half = t_975(df) * pooled * math.sqrt(1 / sa["n"] + 1 / sb["n"])
    gap = sa["mean"] - sb["mean"]
    words = f"{sa['mean']:.4g} vs {sb['mean']:.4g} (n={sa['n']}, {sb['n']}): difference {gap:+.3g} ± {half:.2g}"
    if gap - half > 0:
        return ">", words
    if gap + half < 0:
        return "<", words
    return "~", words + " (the interval holds 0)"


def verdict(sign: str, want: str) -> bool | None:
    """A `compare` sign as a claim's `holds`: True where it is the one claimed, None inside the spread."""
    return True if sign == want else (None if sign == "~" else False)


def _mean(s: dict) -> str:
    if s["n"] < 2 or math.isnan(s["ci95_low"]):
        return f"{s['mean']:.4g}"
    return f"{s['mean']:.4g} ± {(s['ci95_high'] - s['ci95_low']) / 2:.2g} (n={s['n']})"
