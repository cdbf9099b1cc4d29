"""The course's own labs through the grader: full marks for the sources, zero for the stubs, and zero for
every exercise answered by calling the course library's (or torch's) implementation of the same thing.

One autograde call grades the whole class (two job slots), so the sandbox, the reference runs and
the hidden names are what a real class meets.
"""

import nbformat
import pytest
from fasttrain.grading.autograde import Limits, autograde
from fasttrain.grading.notebooks import read, replace_solution
from fasttrain.grading.release import SOURCE_DIR, STUDENT_DIR
from test_grading import SANDBOX, solved

pytestmark = SANDBOX


def _answer(lab: str, answers: dict) -> nbformat.NotebookNode:
    nb = read(SOURCE_DIR / f"{lab}.ipynb")
    for grade_id, code in answers.items():
        nb = replace_solution(nb, grade_id, code)
    return solved(nb)


# Each exercise answered with the library's own code; every one must score zero under the grader.
LIBRARY = {
    "lab1_scaling": {
        "ring_allreduce": "from fasttrain.chapters.ch01_scaling import Link\n"
        "return Link('x', alpha, bandwidth, 'x').allreduce_seconds(n_bytes, ranks)",
        "accumulation": "from fasttrain.chapters.ch01_scaling import CostModel, accumulation_for_efficiency\n"
        "import inspect\nraise RuntimeError(str(inspect.signature(CostModel)))",
        "fit": "import numpy\nslope, intercept = numpy.polyfit([r['bytes'] for r in bench['results']], "
        "[r['median_s'] for r in bench['results']], 1)\nreturn float(intercept), float(1 / slope)",
    },
    "lab2_mixed_precision": {
        "flush": "return (g != 0) & (g.half() == 0)",
        "fraction": "nonzero = g[g != 0]\nreturn float(((nonzero * scale).to(torch.float16) == 0).float().mean())",
        "scaler": (  # torch's GradScaler wrapped: passes every check where torch's is available
            'if not hasattr(self, "ref"):\n'
            '    self.ref = torch.amp.GradScaler("cpu", init_scale=self.scale, growth_factor=self.growth_factor,\n'
            "        backoff_factor=self.backoff_factor, growth_interval=self.growth_interval)\n"
            "    self.ref.scale(torch.zeros(()))\n"
            "before = self.ref.get_scale()\nself.ref.step(optimizer)\nself.ref.update()\n"
            "self.scale = self.ref.get_scale()\nreturn self.scale >= before"
        ),
    },
    "lab3_large_batches": {
        "scaled_lr": "from fasttrain.rank.optim import warmup_factor\n"
        "return base_lr * batch / base_batch * warmup_factor(step, warmup_steps, 10**9, 'constant')",
        "lars_update": "from fasttrain.rank.optim import LARS\n"
        "q = torch.nn.Parameter(p.clone())\nq.grad = grad.clone()\n"
        "opt = LARS([dict(params=[q], weight_decay=weight_decay, adapt=adapt)], lr=lr, momentum=momentum, eta=eta)\n"
        "opt.step()\nreturn q.detach(), None",
        "lars_step": "from fasttrain.rank.optim import LARS, param_groups\n"
        "buffers.setdefault('opt', LARS(param_groups(model, weight_decay), lr=lr, momentum=momentum, eta=eta)).step()",
        "noise_scale": "from fasttrain.rank.measure import noise_scale, noise_scale_over\n"
        "est = noise_scale(g_small_sq, g_big_sq, b_small, b_big)\n"
        "n = len(g_small_sq)\nreturn sum(est['true_grad_sq']) / n, sum(est['trace_sigma']) / n, noise_scale_over(est)",
    },
}
LIBRARY_ZERO = {  # test cells that must score zero for the library learner
    "lab1_scaling": ["ring_allreduce_test", "accumulation_test", "fit_test"],
    "lab2_mixed_precision": ["flush_test", "fraction_test", "scaler_test"],
    "lab3_large_batches": ["scaled_lr_test", "lars_update_test", "lars_step_test", "noise_scale_test"],
}


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    subs = tmp_path_factory.mktemp("labs") / "subs"
    for source in sorted(SOURCE_DIR.glob("*.ipynb")):
        for learner, path in (("instructor", source), ("student", STUDENT_DIR / source.name)):
            (subs / learner).mkdir(parents=True, exist_ok=True)
            (subs / learner / source.name).write_text(path.read_text())
        (subs / "library").mkdir(exist_ok=True)
        nbformat.write(_answer(source.stem, LIBRARY[source.stem]), str(subs / "library" / source.name))
    wrong = _answer(
        "lab1_scaling",
        {
            "efficiency": 'speedup = record["throughput"]["images_per_s"] / base["throughput"]["images_per_s"]\n'
            'return speedup / record["environment"]["world_size"]'
        },
    )  # right numbers, but no check that the base record ran on one rank: only a hidden test sees it
    (subs / "wrong").mkdir()
    nbformat.write(wrong, str(subs / "wrong" / "lab1_scaling.ipynb"))
    limits = Limits(cell_timeout=120, notebook_timeout=300, jobs=2)
    return autograde([subs], tmp_path_factory.mktemp("grades"), limits=limits, log=lambda *a: None)


def test_every_lab_full_marks_for_its_solution_zero_for_its_student_version(book):
    totals = {(t["learner"], t["lab"]): (t["points"], t["max_points"]) for t in book["totals"]}
    for source in sorted(SOURCE_DIR.glob("*.ipynb")):
        got, of = totals["instructor", source.stem]
        assert got == of > 0, (source.stem, [r for r in book["rows"] if r["status"] != "passed"])
        assert totals["student", source.stem] == (0, of)
    assert totals["wrong", "lab1_scaling"] == (13, 15)
    (failed,) = [r for r in book["rows"] if r["learner"] == "wrong" and r["status"] != "passed"]
    assert failed["exercise"] == "efficiency_test" and failed["reason"] == "hidden check 5 of 5 failed"


@pytest.mark.parametrize("lab", list(LIBRARY_ZERO))
def test_calling_the_library_scores_zero(book, lab):
    rows = {r["exercise"]: r for r in book["rows"] if r["learner"] == "library" and r["lab"] == lab}
    for test in LIBRARY_ZERO[lab]:
        assert rows[test]["points"] == 0, rows[test]


def test_the_stated_rule_is_named(book):
    rows = {(r["lab"], r["exercise"]): r for r in book["rows"] if r["learner"] == "library"}
    assert "do not cast to fp16" in rows["lab2_mixed_precision", "flush_test"]["reason"]
    assert "not available while this lab is graded" in rows["lab1_scaling", "ring_allreduce_test"]["reason"]
