"""The claims table a chapter ends with: verdicts, the JSON CI reads, and the spread comparison."""

import json

import pytest
from fasttrain.report import claims as C


def test_claims_are_saved_as_a_list_and_broken_ones_are_named(tmp_path):
    claims = C.Claims("07", "smoke")
    assert claims.check("a holds", True, "1 > 0", robust=("smoke",))
    assert not claims.check("b fails", False, "0 > 1", robust=("smoke", "cpu"))
    assert not claims.check("c undecided", None, "inside the spread", robust=("cpu",))
    path = claims.save(tmp_path)
    rows = json.loads(path.read_text())
    assert path.name == "07.json" and [r["holds"] for r in rows] == [True, False, None]
    assert {"claim", "measured", "holds", "robust"} <= set(rows[0])
    assert [r["claim"] for r in C.broken(C.load(path), "smoke")] == ["b fails"]
    assert [r["claim"] for r in C.broken(rows, "cpu")] == ["b fails", "c undecided"]
    assert "does not hold" in claims.markdown() and "not decided here" in claims.markdown()


def test_default_location_is_build_profile_claims(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTTRAIN_BUILD_DIR", str(tmp_path))
    claims = C.Claims("00", "cpu")
    claims.check("x", True, "y")
    assert claims.save() == tmp_path / "cpu" / "claims" / "00.json"
    monkeypatch.setenv("FASTTRAIN_BUILD_DIR", str(tmp_path / "cpu"))  # as make course sets it
    assert claims.save() == tmp_path / "cpu" / "claims" / "00.json"


def test_unknown_profile_in_robust_is_refused():
    with pytest.raises(ValueError, match="profiles are"):
        C.Claims("00", "smoke").check("x", True, "y", robust=("smoek",))


def test_a_file_that_is_not_claims_is_refused(tmp_path):
    (tmp_path / "x.json").write_text('{"claim": 1}')
    with pytest.raises(ValueError, match="not a claims file"):
        C.load(tmp_path / "x.json")


def test_compare_needs_separated_intervals():
    assert C.compare([10, 10.1, 9.9], [5, 5.1, 4.9])[0] == ">"
    assert C.compare([5, 5.1, 4.9], [10, 10.1, 9.9])[0] == "<"
    assert C.compare([5, 9, 7], [6, 8, 7])[0] == "~"
    sign, words = C.compare([5], [10])
    assert sign == "~" and "no spread" in words


def test_compare_pooled_lends_the_larger_sides_spread_to_two_runs():
    recipe, without = [218.0, 180.0, 226.0, 219.0, 240.0], [371.0, 320.0]
    assert C.compare(without, recipe)[0] == "~"  # 2 runs: t 12.7, the intervals overlap
    sign, words = C.compare_pooled(without, recipe)  # t 2.57 over 5 degrees of freedom
    assert sign == ">" and "(n=2, 5)" in words and "difference +" in words
    assert C.compare_pooled(recipe, without)[0] == "<"
    assert C.compare_pooled([215.0, 233.0], recipe)[0] == "~"
    # by hand: pooled sd 2.0 (both sides), half = 2.776 * 2.0 * sqrt(2/3) = 4.53 against a gap of 4.0
    assert C.compare_pooled([10.0, 12.0, 14.0], [6.0, 8.0, 10.0])[0] == "~"
    assert C.compare_pooled([10.0, 12.0, 14.0], [5.0, 7.0, 9.0])[0] == ">"
    assert C.compare_pooled([5.0], recipe)[0] == "~"


def test_verdict_of_a_comparison():
    assert C.verdict(">", ">") is True and C.verdict("<", ">") is False and C.verdict("~", ">") is None
