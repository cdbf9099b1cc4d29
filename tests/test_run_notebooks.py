"""The notebook runner refuses parameters a notebook does not define, and a cell past its time limit
fails the notebook clearly while the partly executed copy is still written."""

import json

import nbformat
import pytest
from fasttrain.config import ConfigError
from run_notebooks import ROOT, check_parameters, execute, load_plan, notebook_parameters

pytestmark = pytest.mark.slow  # real jobs, notebooks or processes: make test, not make check


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, source in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        if i == 0:
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


def test_every_planned_notebook_defines_what_the_plan_injects():
    for entry in load_plan():
        params = {**entry.get("parameters", {})}
        for extra in (entry.get("profiles") or {}).values():
            params.update(extra or {})
        check_parameters(ROOT / entry["path"], "smoke", params)


def test_unknown_parameter_is_refused_with_the_valid_names(tmp_path):
    nb = _notebook(tmp_path / "nb.ipynb", ['profile = "auto"\nmax_steps = None\nwidth: float = 0.5', "x = 1"])
    assert notebook_parameters(nb) == ["profile", "max_steps", "width"]
    with pytest.raises(
        ConfigError,
        match=r"no parameter 'max_step' \(did you mean 'max_steps'\?\).*"
        r"defines: profile, max_steps, width",
    ):
        check_parameters(nb, "smoke", {"max_step": 3})
    with pytest.raises(ConfigError, match="Unknown profile 'fast'"):
        check_parameters(nb, "fast", {})
    with pytest.raises(ConfigError, match="no parameter 'max_step'"):
        execute(nb, tmp_path / "out.ipynb", "smoke", {"max_step": 3}, cell_timeout=60)
    assert not (tmp_path / "out.ipynb").exists()  # refused before a kernel started


def test_cell_past_its_time_limit_fails_and_the_partial_notebook_is_written(tmp_path):
    nb = _notebook(
        tmp_path / "slow.ipynb",
        [
            'profile = "auto"\nseconds = 60',
            'print("ran", profile)',
            "import time\ntime.sleep(seconds)",
            'print("never")',
        ],
    )
    output = tmp_path / "build" / "slow.ipynb"
    with pytest.raises(
        RuntimeError, match=r"ran past its 3 s limit and was stopped \(the cell starting 'import time'\)"
    ):
        execute(nb, output, "smoke", {}, cell_timeout=3)
    executed = json.loads(output.read_text())
    texts = ["".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", [])]
    assert "ran smoke\n" in texts and "never\n" not in texts
