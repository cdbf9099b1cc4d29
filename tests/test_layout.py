"""The library's layout holds: rank code never imports the launcher, and finished runs survive a commit."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fasttrain.results import TRAINING_SOURCES

LIB = Path(__file__).resolve().parents[1] / "lib"
RANK_MODULES = ["fasttrain.run", "fasttrain.rank.job", "fasttrain.rank.data", "fasttrain.rank.module"]


def test_the_rank_entry_point_imports_no_launcher_and_its_source_is_what_reuse_hashes():
    code = (
        "import importlib, json, sys\n"
        f"for name in {RANK_MODULES!r}: importlib.import_module(name)\n"
        "mods = {m: getattr(sys.modules[m], '__file__', None) for m in sys.modules if m.startswith('fasttrain')}\n"
        "print(json.dumps(mods))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=LIB).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert not [m for m in loaded if m.startswith(("fasttrain.launch", "fasttrain.chapters", "fasttrain.grading"))]
    hashed = [LIB / "fasttrain" / name for name in TRAINING_SOURCES]
    for module, file in loaded.items():
        if file and not file.endswith("__init__.py"):
            assert any(Path(file) == h or h in Path(file).parents for h in hashed), f"{module} is not hashed"


JOB = (
    "import json, sys; from fasttrain import launch\n"
    "r = launch.run(profile='smoke', accelerator='cpu', max_steps=2, val_every_steps=0, timing_warmup_steps=1,\n"
    "    train_samples=256, val_samples=64, name='kept', show='none')\n"
    "print(json.dumps([r['created'], r['environment']['code_version']]))"
)


@pytest.mark.slow
def test_finished_runs_survive_a_readme_commit_and_a_saved_notebook_but_not_a_training_change(tmp_path):
    repo = tmp_path / "course"
    shutil.copytree(LIB, repo / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (repo / "README.md").write_text("# course\n")
    (repo / "chapters").mkdir()
    (repo / "chapters" / "00.ipynb").write_text("{}\n")

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    def job():
        env = {"PYTHONPATH": str(repo / "lib"), "FASTTRAIN_BUILD_DIR": str(tmp_path / "build")}
        out = subprocess.run(
            [sys.executable, "-c", JOB],
            capture_output=True,
            text=True,
            cwd=repo,
            timeout=240,
            env={**os.environ, **env},
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "start", "--allow-empty")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "course")
    first, version = job()
    (repo / "README.md").write_text("# course\n\nA fix.\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "README fix")
    (repo / "chapters" / "00.ipynb").write_text('{"saved": true}\n')  # a saved notebook: the tree is dirty
    assert job()[0] == first  # reused
    optim = repo / "lib" / "fasttrain" / "rank" / "optim.py"
    optim.write_text(optim.read_text() + "\n# a change to the training code\n")
    retrained, dirty = job()
    assert retrained != first  # trained again: a new record (a job takes seconds; `created` counts them)
    assert dirty.endswith("+dirty") and not version.endswith("+dirty")
