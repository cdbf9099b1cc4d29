"""Every chapter checks its papermill parameters in its first code cell: a slip stops the chapter at once,
naming the parameter and a valid example, before anything trains."""

import time

import papermill
import pytest
from run_notebooks import ROOT

pytestmark = pytest.mark.slow  # a kernel per chapter

BAD = {
    "00_baseline": ({"prfile": "smoke"}, "Did you mean 'profile'"),
    "01_scaling": ({"per_device_batch": "256256"}, "per_device_batch"),
    "02_mixed_precision": ({"max_steps": 0}, "max_steps=0"),
    "03_large_batches": ({"batch_sizes": 256}, "batch_sizes"),
    "04_all_together": ({"runs": True}, "runs"),
}


@pytest.mark.parametrize("chapter", sorted(BAD))
def test_a_bad_parameter_stops_the_chapter_in_its_first_code_cell(chapter, tmp_path):
    parameters, expected = BAD[chapter]
    started = time.perf_counter()
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(ROOT / "chapters" / f"{chapter}.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"profile": "smoke", **parameters},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(ROOT / "chapters"),
        )
    assert info.value.ename == "ParameterError" and expected in info.value.evalue, info.value.evalue
    assert time.perf_counter() - started < 60  # before any training job
