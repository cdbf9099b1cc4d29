"""The GPU check's CPU mode runs the same code path in seconds, so the script cannot rot unseen."""

import json
import os
import subprocess
import sys

import pytest
from run_notebooks import ROOT

pytestmark = pytest.mark.slow  # real jobs, notebooks or processes: make test, not make check


def test_gpu_check_tiny_mode_writes_records(tmp_path):
    # This interpreter (the course's venv), not whatever `python3` the PATH holds: the script's default
    # suits a GPU box with torch installed system-wide.
    done = subprocess.run(
        ["bash", str(ROOT / "ci" / "gpu_check.sh"), "--tiny", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = sorted(tmp_path.glob("resnet50-*.json"))
    assert [r.name for r in records] == ["resnet50-fp32.json", "resnet50-tf32-cl-b512.json"]
    record = json.loads(records[1].read_text())
    assert record["config"]["channels_last"] and record["throughput"]["images_per_s"] > 0
    assert "ResNet-50 training throughput on cpu-tiny" in done.stdout


def test_gpu_course_dry_run_checks_every_chapters_plan():
    done = subprocess.run(
        ["bash", str(ROOT / "ci" / "gpu_course.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for chapter in ("00", "01", "02"):
        assert f"chapter {chapter}: " in done.stdout and "profile 'gpu', parameters checked" in done.stdout
    assert "nothing executed" in done.stdout


def test_gpu_course_runs_cells_in_one_namespace_and_stops_at_the_first_error(tmp_path, monkeypatch):
    import gpu_course

    for name in ("IPython", "IPython.display"):  # the shim replaces them: put the real ones back afterwards
        monkeypatch.setitem(sys.modules, name, sys.modules.get(name))
    gpu_course.install_display_shim()
    cells = [
        ("c0", "from IPython.display import Markdown, display\nx = 2"),
        ("c1", "display(Markdown(f'| x | {x} |'))"),
        ("c2", "raise ValueError('what to do')"),
        ("c3", "print('never')"),
    ]
    ok, seconds, error = gpu_course.run_chapter("99", cells, tmp_path / "99.log")
    assert not ok and error == "ValueError: what to do" and seconds >= 0
    log = (tmp_path / "99.log").read_text()
    assert "| x | 2 |" in log and "never" not in log
    with pytest.raises(ValueError, match="parameters"):
        gpu_course.code_cells(_notebook(tmp_path), "gpu")


def _notebook(folder):
    path = folder / "untagged.ipynb"
    path.write_text(json.dumps(dict(cells=[dict(cell_type="code", metadata={}, source=["x = 1\n"])])))
    return path
