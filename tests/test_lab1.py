"""Lab 1: the instructor notebook passes its own checks, and each typical wrong answer fails them."""

from pathlib import Path

import pytest
from fasttrain.grading.notebooks import SOLUTION, find_cell, read, replace_solution
from labrun import assert_a_check_fails

LAB = Path(__file__).resolve().parents[1] / "labs" / "source" / "lab1_scaling.ipynb"  # the instructor source


WRONG = {
    # the cases: the ring all-reduce cost, efficiency from a record, a target to meet
    "ring: no ring factor (S / B)": (
        "ring_allreduce",
        """
if ranks == 1:
    return 0.0
return 2 * (ranks - 1) * alpha + n_bytes / bandwidth
""",
    ),
    "ring: factor 2 regardless of N": (
        "ring_allreduce",
        """
if ranks == 1:
    return 0.0
return 2 * (ranks - 1) * alpha + 2 * n_bytes / bandwidth
""",
    ),
    "ring: latency paid once, not per hop": (
        "ring_allreduce",
        """
if ranks == 1:
    return 0.0
return alpha + 2 * (ranks - 1) / ranks * n_bytes / bandwidth
""",
    ),
    "efficiency: speed-up not divided by N": (
        "efficiency",
        """
if base["environment"]["world_size"] != 1:
    raise ValueError("the base record must come from a one-rank run")
return record["throughput"]["images_per_s"] / base["throughput"]["images_per_s"]
""",
    ),
    "efficiency: from step times (wrong under strong scaling)": (
        "efficiency",
        """
if base["environment"]["world_size"] != 1:
    raise ValueError("the base record must come from a one-rank run")
return base["timing"]["step_time_s"]["median"] / record["timing"]["step_time_s"]["median"]
""",
    ),
    "efficiency: no check of the base record": (
        "efficiency",
        """
speedup = record["throughput"]["images_per_s"] / base["throughput"]["images_per_s"]
return speedup / record["environment"]["world_size"]
""",
    ),
    "speed-up: step-time ratio without N": (
        "speedup",
        """
return compute_s / (compute_s + ring_allreduce_seconds(grad_bytes, ranks, alpha, bandwidth))
""",
    ),
    "accumulation: one too few (first k above, minus one)": (
        "accumulation",
        """
comm = ring_allreduce_seconds(grad_bytes, ranks, alpha, bandwidth)
k = 1
while k * compute_s / (k * compute_s + comm) < target:
    k += 1
return max(1, k - 1)
""",
    ),
    "accumulation: all-reduce paid per micro-batch": (
        "accumulation",
        """
comm = ring_allreduce_seconds(grad_bytes, ranks, alpha, bandwidth)
k = 1
while k * compute_s / (k * (compute_s + comm)) < target and k < 1000:
    k += 1
return k
""",
    ),
    "fit: the line through the first and last points": (
        "fit",
        """
first, last = bench["results"][0], bench["results"][-1]
slope = (last["median_s"] - first["median_s"]) / (last["bytes"] - first["bytes"])
return first["median_s"] - slope * first["bytes"], 1 / slope
""",
    ),
    "fit: slope taken as the bandwidth": (
        "fit",
        """
n = [r["bytes"] for r in bench["results"]]
t = [r["median_s"] for r in bench["results"]]
mean_n, mean_t = sum(n) / len(n), sum(t) / len(t)
slope = sum((a - mean_n) * (b - mean_t) for a, b in zip(n, t)) / sum((a - mean_n) ** 2 for a in n)
return mean_t - slope * mean_n, slope
""",
    ),
}


@pytest.mark.parametrize("case", list(WRONG), ids=list(WRONG))
def test_wrong_answer_fails(case):
    grade_id, code = WRONG[case]
    nb = replace_solution(read(LAB), grade_id, code)
    assert_a_check_fails(nb)


def test_the_tempting_upgrade_fails():
    """Bandwidth sounds like the upgrade to buy; at 2,048 ranks the model says latency."""
    nb = read(LAB)
    find_cell(nb, "upgrade").source = 'better_upgrade, seconds_saved = "bandwidth", 0.008'
    assert_a_check_fails(nb)


def test_reported_figure_instead_of_the_model_fails():
    """The speed-up cell's second solution block: `doubling` must come from the model, not the paper."""
    nb = read(LAB)
    cell = find_cell(nb, "speedup")
    head, sep, tail = cell.source.partition("### END SOLUTION\n")  # past the function's block
    cell.source = head + sep + SOLUTION.sub("doubling = 1.32\n", tail, count=1)
    assert_a_check_fails(nb)
