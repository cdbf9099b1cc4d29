"""Chapter 01's lessons as claims on its own jobs: speed-up, its shortfall, weak vs strong, the levers."""

from __future__ import annotations

import statistics

from fasttrain.chapters.ch01_analysis import step_breakdown, world_size
from fasttrain.chapters.ch01_cost_model import CostModel
from fasttrain.report.claims import Claims, compare, verdict

EVERYWHERE = ("smoke", "cpu", "gpu")


def step_rates(record: dict) -> list[float]:
    """Images per second of each timed step (the steps after the timing warm-up)."""
    timing, batch = record["timing"], record["config"]["global_batch_size"]  # accumulated micro-batches included
    return [batch / t for t in timing["step_times_s"][timing["timing_warmup_steps"] :] if t > 0]


def scaling_claims(claims: Claims, weak: list[dict], strong: list[dict], colocated: list[dict] = ()) -> None:
    """colocated: the N-rank jobs without an all-reduce (noop hook) run beside the weak-scaling job, which
    split its shortfall into sharing the machine and communicating."""
    one, most = weak[0], weak[-1]
    n = world_size(most)
    if n < 2:
        claims.check("N ranks train faster than one", None, "this machine ran one rank only", robust=())
        return
    base, many = step_rates(one), step_rates(most)
    sign, words = compare(many, base)
    claims.check(
        f"{n} ranks, each with the 1-rank job's batch (weak scaling), train more images per second than one",
        verdict(sign, ">"),
        f"images/s per step: {words}",
        robust=EVERYWHERE,
    )
    sign, words = compare(many, [n * r for r in base])
    noop = [rate for r in colocated if world_size(r) == n for rate in step_rates(r)]
    split = ""
    if noop:
        alone, together, single = statistics.fmean(noop), statistics.fmean(many), statistics.fmean(base)
        split = (
            f"; {n} ranks without the all-reduce (noop hook, just before and after): {alone:.1f}, so sharing "
            f"the machine cost {1 - alone / (n * single):.0%} and the all-reduce {1 - together / alone:.0%}"
        )
    claims.check(
        f"the speed-up falls short of {n}x: communication and shared hardware cost something",
        verdict(sign, "<"),
        f"images/s at {n} ranks vs {n} x 1 rank's: {words}{split}",
        # Ranks sharing one CPU lose mostly to shared hardware, which drifts between jobs by more than a
        # job's own spread shows (and smoke times 10 steps): held to where each rank owns a device.
        robust=("gpu",),
    )
    strong_n = next((r for r in strong if world_size(r) == n), None)
    if strong_n is None or strong_n["config"] == most["config"]:
        claims.check("strong scaling is less efficient than weak", None, "no separate strong-scaling job", robust=())
        return
    sign, words = compare(step_rates(strong_n), many)
    per_rank = strong_n["config"]["global_batch_size"] // n
    claims.check(
        f"strong scaling (global batch fixed: {per_rank} per rank) is less efficient than weak at {n} ranks: "
        "each rank computes less per all-reduce",
        verdict(sign, "<"),
        f"images/s per step, strong vs weak: {words}",
        # On a CPU the all-reduce is a few percent of a step, so halving the batch per rank moves the
        # efficiency by about that much: inside the spread of separate jobs.
        robust=("gpu",),
    )


def lever_claims(claims: Claims, default: dict, bf16: dict | None, accumulated: dict | None, k: int) -> None:
    if bf16 is not None:
        d, b = step_breakdown(default), step_breakdown(bf16)
        claims.check(
            "the bf16 communication hook halves the bytes each step all-reduces",
            abs(b["bytes"] / d["bytes"] - 0.5) < 0.01,
            f"{b['bytes'] / 1e6:.2f} MB vs {d['bytes'] / 1e6:.2f} MB per step",
            robust=EVERYWHERE,
        )
    if accumulated is not None:
        d, a = step_breakdown(default), step_breakdown(accumulated)
        per_image = (a["bytes"] / accumulated["config"]["global_batch_size"]) / (
            d["bytes"] / default["config"]["global_batch_size"]
        )
        claims.check(
            f"accumulating {k} micro-batches per all-reduce cuts the gradient bytes exchanged per image {k}-fold",
            abs(per_image - 1 / k) < 0.01,
            f"bytes per image {per_image:.3f}x the default's",
            robust=EVERYWHERE,
        )


def cost_model_claims(claims: Claims, model: CostModel, most: dict, full: dict[str, CostModel]) -> None:
    n = world_size(most)
    if n >= 2:
        d = step_breakdown(most)
        inner = CostModel(d["compute_s"], model.grad_bytes, model.link)
        batch = most["config"]["global_batch_size"] // n
        error = inner.throughput(n, batch) / (batch * n / d["step_s"]) - 1
        claims.check(
            f"fed the {n}-rank job's compute time, the alpha-beta network model predicts its throughput within 15%",
            abs(error) <= 0.15,
            f"{error:+.1%} (predicted all-reduce {inner.allreduce_s(n) * 1e3:.2f} ms, "
            f"measured idle {d['idle_s'] * 1e3:.2f} ms per step)",
            robust=("cpu", "gpu"),
        )
    ethernet = full.get("100 GbE")
    if ethernet is not None:
        doubling = ethernet.speedup(2048) / ethernet.speedup(1024)
        claims.check(
            "over 100 GbE the cost model (full ResNet-50, no overlap) gives well under 2x for 1,024 -> 2,048 GPUs",
            doubling < 1.9,
            f"{doubling:.2f}x (the all-reduce's latency term grows with N while compute per GPU stays)",
            robust=EVERYWHERE,
        )


def timeline_claims(claims: Claims, agreement: dict[str, dict]) -> None:
    """The comm hook's split of the traced steps against torch.profiler's (ch01_timeline.agreement)."""
    words = {"allreduce_s": "all-reduce time", "exposed_s": "exposed (waiting) time"}
    for what, a in agreement.items():
        claims.check(
            f"the comm hook and torch.profiler agree on the traced steps' {words[what]}",
            a["agree"],
            f"hook {a['hook_s'] * 1e3:.1f} ms, profiler {a['profiler_s'] * 1e3:.1f} ms over the traced steps "
            f"(gap {a['gap_s'] * 1e3:+.1f} ms; tolerance {a['tolerance_s'] * 1e3:.1f} ms)",
            # On a GPU the hook's CUDA events and NCCL's kernels have not been compared on a run yet.
            robust=("smoke", "cpu"),
        )


def crossover_claims(claims: Claims, prediction: dict, rows: list[dict], fit: dict) -> None:
    """The predicted communication-bound batch against the sweep (ch01_crossover)."""
    from fasttrain.chapters.ch01_crossover import agrees

    sides = ", ".join(
        f"b={r['per_device_batch']}: {r['allreduce_s'] * 1e3:.1f} ms vs {r['compute_s'] * 1e3:.1f} ms" for r in rows
    )
    where = f"{fit['batch']:.1f} images" if fit["batch"] is not None else "none (the fixed cost alone outlasts it)"
    claims.check(
        f"the sweep finds each per-device batch on the side of the predicted crossover "
        f"({prediction['batch']:.2g} images per device)",
        agrees(prediction, rows),
        f"all-reduce vs compute per step, {sides}; fitted compute {fit['fixed_s'] * 1e3:.1f} ms + "
        f"{fit['per_image_s'] * 1e3:.2f} ms per image, crossover from the fit: {where}",
        robust=EVERYWHERE,
    )
