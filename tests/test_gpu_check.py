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
