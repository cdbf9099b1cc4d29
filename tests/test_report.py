"""The shared report helpers: Markdown tables, spread statistics, saved figures."""

import math

import pytest
from fasttrain.report import figures, stats, tables


def test_markdown_table():
    text = tables.markdown_table(("a", "b"), [(1, "x"), (2.5, None)])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2.5 | None |"]


def test_spread_of_known_values():
    s = stats.spread([1.0, 2.0, 3.0, 4.0])
    assert (s["n"], s["mean"], s["median"], s["min"], s["max"]) == (4, 2.5, 2.5, 1.0, 4.0)
    assert s["std"] == pytest.approx(1.290994)  # sample standard deviation (n - 1)
    half = 3.182 * 1.290994 / 2  # Student's t for 3 degrees of freedom
    assert (s["ci95_low"], s["ci95_high"]) == (pytest.approx(2.5 - half, rel=1e-5), pytest.approx(2.5 + half, rel=1e-5))
    assert stats.t_975(1000) == 1.96


def test_spread_of_one_value_and_of_none():
    one = stats.spread([3.0])
    assert one["std"] == 0 and math.isnan(one["ci95_low"]) and one["mean"] == 3.0  # no spread, and no interval
    none = stats.spread([])
    assert none["n"] == 0 and math.isnan(none["mean"]) and math.isnan(none["std"])


def test_save_writes_under_the_build_folder(monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("FASTTRAIN_BUILD_DIR", str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert figures.save(fig, "line.png") is fig
    assert (tmp_path / "figures" / "line.png").stat().st_size > 0
    figures.save(fig, None)  # shown only
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["line.png"]
    plt.close(fig)
