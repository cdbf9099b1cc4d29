"""ci/check_claims.py's report: every chapter's claims in one table, and what should have held but did not."""

import json

import check_claims


def test_report_names_missing_chapters_and_broken_claims(tmp_path):
    ok = [dict(claim="a", measured="1 > 0", holds=True, robust=["cpu"])]
    bad = [
        dict(claim="b", measured="0 > 1", holds=False, robust=["cpu", "gpu"]),
        dict(claim="c", measured="inside the spread", holds=None, robust=["gpu"]),
    ]
    (tmp_path / "00.json").write_text(json.dumps(ok))
    (tmp_path / "01.json").write_text(json.dumps(bad))
    text, problems = check_claims.report(tmp_path, ["00", "01", "02"], "cpu")
    assert "| 00 | a | 1 > 0 | holds | cpu |" in text and "not decided here" in text
    assert len(problems) == 2 and "'b'" in problems[0] and "chapter 02: no" in problems[1]
    assert "1 claim(s) held; 2 problem(s)." in text


def test_no_run_mode_exits_nonzero_on_a_broken_claim(tmp_path):
    folder = tmp_path / "cpu" / "claims"
    folder.mkdir(parents=True)
    for chapter in check_claims.chapter_ids(None):
        (folder / f"{chapter}.json").write_text(json.dumps([dict(claim="x", measured="y", holds=True, robust=["cpu"])]))
    assert check_claims.main(["--profile", "cpu", "--no-run", "--out", str(tmp_path / "cpu")]) == 0
    (folder / "03.json").write_text(json.dumps([dict(claim="x", measured="y", holds=False, robust=["cpu"])]))
    assert check_claims.main(["--profile", "cpu", "--no-run", "--out", str(tmp_path / "cpu")]) == 1
    assert "does not hold" in (folder / "report.md").read_text()
