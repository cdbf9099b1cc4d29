"""Every notebook listed in ci/notebooks.yaml runs top to bottom under papermill in the smoke profile."""

import json
import subprocess
from pathlib import Path

import pytest
from fasttrain.report import claims
from run_notebooks import ROOT, execute, load_plan

pytestmark = pytest.mark.slow  # real jobs, notebooks or processes: make test, not make check

PLAN = load_plan()
# Chapter 04 in smoke trains exactly the jobs of `make speedrun PROFILE=smoke`, which the README says
# passes in CI: the command runs first, in the test's own build folder, and the chapter reads its runs.
FIRST = {"04_all_together": ["make", "--no-print-directory", "speedrun", "PROFILE=smoke"]}


@pytest.mark.parametrize("entry", PLAN, ids=[Path(e["path"]).stem for e in PLAN])
def test_notebook_executes_in_smoke_profile(entry, tmp_path):
    """It runs, and ends with at least four claims on its own numbers; those it marks robust in smoke hold."""
    output = tmp_path / Path(entry["path"]).name
    first = FIRST.get(output.stem)
    if first:
        done = subprocess.run(first, cwd=ROOT, capture_output=True, text=True, timeout=1500)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        summary = json.loads((tmp_path / "build" / "speedrun" / "summary-smoke.json").read_text())
        assert summary["rows"][0]["reached"] == summary["rows"][0]["runs"] >= 2
    params = {**entry.get("parameters", {}), **(entry.get("profiles", {}).get("smoke") or {})}
    execute(ROOT / entry["path"], output, "smoke", params, entry.get("cell_timeout", {}).get("smoke"))
    executed = json.loads(output.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    rows = claims.load(tmp_path / "build" / "smoke" / "claims" / f"{output.name[:2]}.json")
    assert len(rows) >= 4
    assert not claims.broken(rows, "smoke"), claims.broken(rows, "smoke")


@pytest.mark.parametrize("entry", PLAN, ids=[Path(e["path"]).stem for e in PLAN])
def test_notebook_source_is_clean(entry):
    """Outputs stripped in git, exactly one cell tagged `parameters` holding `profile = "auto"`."""
    nb = json.loads((ROOT / entry["path"]).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert 'profile = "auto"' in "".join(tagged[0]["source"])
