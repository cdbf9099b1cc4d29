"""Chapter 01's reading of result records: speed-up, efficiency, where a DDP step's time goes, and the
cost model fed with what the jobs measured."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fasttrain.chapters.ch01_alpha_beta import AlphaBetaFit
from fasttrain.chapters.ch01_cost_model import CostModel
from fasttrain.config import TrainConfig


def world_size(record: dict) -> int:
    return int(record["environment"]["world_size"])


def throughput(record: dict) -> float:
    return float(record["throughput"]["images_per_s"])


def scaling_efficiency(base: dict, record: dict) -> float:
    """Measured efficiency: (throughput at N / throughput at 1) / N. Valid for weak scaling
    (per-device batch fixed) and strong scaling (global batch fixed) alike."""
    if world_size(base) != 1:
        raise ValueError(f"The base record ran on {world_size(base)} ranks; compare against a 1-rank run.")
    return throughput(record) / throughput(base) / world_size(record)


def scaling_table(records: Iterable[dict]) -> list[dict]:
    """Speed-up and efficiency of each record over the 1-rank one among them, by world size."""
    records = sorted(records, key=world_size)
    if not records or world_size(records[0]) != 1:
        raise ValueError("scaling_table needs a 1-rank record to compare the others with.")
    base = records[0]
    return [
        dict(
            world_size=world_size(r),
            images_per_s=throughput(r),
            step_s=r["timing"]["step_time_s"]["median"],
            per_device_batch=r["config"]["global_batch_size"] // world_size(r),
            speedup=throughput(r) / throughput(base),
            efficiency=scaling_efficiency(base, r),
        )
        for r in records
    ]


def step_breakdown(record: dict) -> dict:
    """Where a DDP step's time goes, from what the job measured on rank 0 (medians over timed steps):
    idle_s is the wait from the last bucket's launch to the end of backward (communication not
    hidden, and waiting for peers); compute_s the rest of the step; allreduce_s the time any bucket was
    between launch and completion (the union of their intervals), of which hidden_s ran while the
    backward was still computing."""
    comm = record["communication"]
    step = record["timing"]["step_time_s"]["median"]
    if "exposed_time_s" not in comm or not comm["comm_time_s"]["n"]:
        raise ValueError(
            f"Record {record.get('name')!r} has no timed all-reduce: run it with 2 or more "
            "ranks and comm_hook 'timed' or 'bf16'."
        )
    idle = comm["exposed_time_s"]["median"]
    allreduce = comm["comm_time_s"]["median"]
    return dict(
        step_s=step,
        compute_s=step - idle,
        idle_s=idle,
        allreduce_s=allreduce,
        hidden_s=max(0.0, allreduce - idle),
        bytes=comm["bytes_per_step"],
        buckets=comm.get("buckets_per_step"),
    )


def gradient_bytes(config: TrainConfig) -> int:
    """fp32 gradient bytes one all-reduce carries per step: 4 bytes per trainable parameter."""
    from fasttrain.rank.models import resnet50

    model = resnet50(config.num_classes, config.in_channels, config.width, config.small_input)
    return 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_from_records(
    base: dict, fit: AlphaBetaFit, overlap: float = 0.0, colocated: Sequence[dict] = ()
) -> CostModel:
    """The cost model fed by a measured 1-rank step time and the fitted network.

    colocated: runs of N ranks with comm_hook="noop", which compute side by side and exchange
    nothing. Ranks on one machine share its caches and memory bandwidth (on a VM, maybe its physical
    cores), so each computes more slowly while the others are busy; their step over the 1-rank step
    is the model's `colocation` factor at N. Time them right before and after the N-rank job they
    should predict, and take the faster: the rest of a shared machine only ever adds time, and one
    noop run on the 2-core machine took 1.5x as long as the other, minutes apart. For the same reason
    a factor below 1 (the 1-rank job itself ran through outside load) counts as 1: drift, not a gain.
    """
    if world_size(base) != 1:
        raise ValueError("The compute time must come from a 1-rank run (no communication in it).")
    compute = base["timing"]["step_time_s"]["median"]
    per_rank = base["config"]["global_batch_size"]
    steps: dict[int, list[float]] = {}
    for r in colocated:
        n = world_size(r)
        if r["config"].get("comm_hook") != "noop" or n < 2:
            raise ValueError(
                f"Record {r.get('name')!r} is not a co-location run: it needs 2 or more ranks and comm_hook='noop'."
            )
        if r["config"]["global_batch_size"] != per_rank * n:
            raise ValueError(f"Record {r.get('name')!r} has another per-rank batch than the 1-rank run ({per_rank}).")
        steps.setdefault(n, []).append(r["timing"]["step_time_s"]["median"])
    colocation = {n: max(1.0, min(s) / compute) for n, s in steps.items()}
    config = TrainConfig.from_dict(base["config"])
    return CostModel(compute, gradient_bytes(config), fit.link(), overlap, colocation=colocation)
