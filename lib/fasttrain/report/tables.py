"""Markdown tables, the form every chapter displays its numbers in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def markdown_table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """A GitHub-style Markdown table; cells are shown with str()."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows])
