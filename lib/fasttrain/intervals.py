"""Time intervals (start, end) in seconds: how long at least one of them ran, and what another set left
uncovered. Pure Python, so the ranks' comm hook and the chapters' trace reading share it without the
notebook kernel importing torch or Lightning."""

from __future__ import annotations

Interval = tuple[float, float]


def busy_seconds(intervals: list[Interval]) -> float:
    """Total length of the union of (start, end) intervals: time during which at least one was running."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def uncovered_seconds(intervals: list[Interval], cover: list[Interval]) -> float:
    """Length of the union of `intervals` not covered by the union of `cover`."""
    return busy_seconds(intervals + cover) - busy_seconds(cover)


def uncovered_pieces(intervals: list[Interval], cover: list[Interval]) -> list[Interval]:
    """The pieces of `intervals` that no interval of `cover` overlaps."""
    merged: list[list[float]] = []
    for a, b in sorted(cover):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    pieces = []
    for a, b in intervals:
        cursor = a
        for c, d in merged:
            if d <= cursor or c >= b:
                continue
            if c > cursor:
                pieces.append((cursor, c))
            cursor = max(cursor, d)
        if cursor < b:
            pieces.append((cursor, b))
    return pieces
