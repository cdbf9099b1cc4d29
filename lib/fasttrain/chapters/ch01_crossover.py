"""When does data parallelism become communication-bound? The per-device batch at which a step's
all-reduce takes as long as its compute: predicted from a 1-rank job and the fitted network, then
checked against jobs at several per-device batches.

The prediction is the simple model every back-of-the-envelope uses: compute grows in proportion to the
batch (one image costs the 1-rank job's step / its batch), the all-reduce costs the fitted network's time
for the gradient bytes, whatever the batch. The sweep measures both sides and fits compute = c0 + c1 * b:
a fixed cost per step c0 (per-layer overheads, the optimizer and DDP's gradient copies, all independent
of the batch) moves the crossover down, and where c0 alone outlasts the all-reduce, no batch makes the
job communication-bound.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from fasttrain.chapters.ch01_alpha_beta import AlphaBetaFit
from fasttrain.chapters.ch01_analysis import gradient_bytes, step_breakdown, world_size
from fasttrain.chapters.ch01_cost_model import CostModel
from fasttrain.config import TrainConfig


def predict(one_rank: dict, fit: AlphaBetaFit, ranks: int) -> dict:
    """The simple model's crossover at `ranks` ranks: all-reduce time / compute time per image."""
    if world_size(one_rank) != 1:
        raise ValueError("the compute time per image must come from a 1-rank job (no communication in it)")
    batch = one_rank["config"]["global_batch_size"]
    per_image = one_rank["timing"]["step_time_s"]["median"] / batch
    grad_bytes = gradient_bytes(TrainConfig.from_dict(one_rank["config"]))
    allreduce = CostModel(per_image * batch, grad_bytes, fit.link()).allreduce_s(ranks)
    return dict(per_image_s=per_image, allreduce_s=allreduce, grad_bytes=grad_bytes, batch=allreduce / per_image)


def sweep(records: Sequence[dict]) -> list[dict]:
    """Each multi-rank job's per-device batch, compute (step minus the exposed wait) and all-reduce time."""
    rows = []
    for r in sorted(records, key=lambda r: r["config"]["global_batch_size"] // world_size(r)):
        d = step_breakdown(r)
        b = r["config"]["global_batch_size"] // world_size(r)
        rows.append(
            dict(
                per_device_batch=b,
                compute_s=d["compute_s"],
                allreduce_s=d["allreduce_s"],
                idle_s=d["idle_s"],
                comm_bound=d["allreduce_s"] >= d["compute_s"],
            )
        )
    return rows


def fitted(rows: Sequence[dict]) -> dict:
    """compute = c0 + c1 * b by least squares over the sweep, the all-reduce as the sweep's mean, and the
    batch where the two meet (None where c0 alone outlasts the all-reduce: no batch is comm-bound)."""
    if len({r["per_device_batch"] for r in rows}) < 2:
        raise ValueError("the sweep needs two or more per-device batches to fit compute against the batch")
    slope, fixed = statistics.linear_regression([r["per_device_batch"] for r in rows], [r["compute_s"] for r in rows])
    allreduce = statistics.fmean(r["allreduce_s"] for r in rows)
    meets = (allreduce - fixed) / slope if slope > 0 and allreduce > fixed else None
    return dict(fixed_s=fixed, per_image_s=slope, allreduce_s=allreduce, batch=meets)


def agrees(prediction: dict, rows: Sequence[dict]) -> bool:
    """At every measured batch, the sweep finds the side of the crossover the prediction puts it on."""
    return all(r["comm_bound"] == (r["per_device_batch"] <= prediction["batch"]) for r in rows)
