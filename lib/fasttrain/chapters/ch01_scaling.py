"""Scaling out: speed-up and efficiency from result records, the alpha-beta network fit, a cost model.

The cost model is the simplest one that explains data-parallel scaling. Every step each of N devices
computes its share (time `compute_s`, the same at any N when the per-device batch is fixed and each
rank owns its device; ranks sharing one machine slow each other, the `colocation` factor) and then
all-reduces the gradients, S bytes. A ring all-reduce sends each byte 2(N-1)/N times over each link
and pays a latency per hop (NVIDIA/nccl-tests doc/PERFORMANCE.md gives the bandwidth term):

    t_allreduce(N) = 2(N-1) x alpha_hop + 2(N-1)/N x S / B
    t_step(N)      = compute_s + t_allreduce(N) - hidden      (hidden: what overlaps the backward)
    speed-up(N)    = N x compute_s / t_step(N),   efficiency = speed-up / N

alpha_hop and B are fitted from an all-reduce benchmark on this machine (`fasttrain.chapters.ch01_netbench`), or
taken from a named interconnect in `NAMED_LINKS`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from fasttrain.config import ConfigError, TrainConfig, resolve_profile


def ring_factor(ranks: int) -> float:
    """How many times each byte crosses a link in a ring all-reduce: 2(n-1)/n (0 for one rank)."""
    if ranks < 1:
        raise ValueError(f"ranks={ranks}: a ring has at least one member.")
    return 2 * (ranks - 1) / ranks


# ---------------------------------------------------------------------- the network
@dataclass(frozen=True)
class Link:
    """An interconnect for the ring model: latency per hop (s) and bandwidth per link (bytes/s)."""

    name: str
    latency_s: float
    bandwidth: float
    source: str

    def allreduce_seconds(self, n_bytes: float, ranks: int) -> float:
        if ranks == 1:
            return 0.0  # nothing to exchange
        return 2 * (ranks - 1) * self.latency_s + ring_factor(ranks) * n_bytes / self.bandwidth


@dataclass(frozen=True)
class AlphaBetaFit:
    """t = alpha + n_bytes / bandwidth_eff, fitted at one world size on one backend."""

    alpha_s: float
    bandwidth_eff: float
    world_size: int
    backend: str = ""

    def predict(self, n_bytes: float) -> float:
        return self.alpha_s + n_bytes / self.bandwidth_eff

    @property
    def link_bandwidth(self) -> float:
        """B of the ring model: the effective bandwidth times the ring factor ("bus bandwidth")."""
        return self.bandwidth_eff * ring_factor(self.world_size)

    def link(self, name: str | None = None) -> Link:
        """The measured network as a ring `Link`, so the model can extrapolate it to other N."""
        hops = 2 * (self.world_size - 1)
        return Link(
            name or f"{self.backend or 'measured'} here (fitted)",
            self.alpha_s / hops,
            self.link_bandwidth,
            f"fitted to this machine's all-reduce benchmark at {self.world_size} ranks",
        )


def fit_alpha_beta(
    n_bytes: Sequence[float], seconds: Sequence[float], world_size: int, backend: str = ""
) -> AlphaBetaFit:
    """Least squares of t = alpha + n / bandwidth on *relative* error (weights 1/t), so the small
    messages that pin down alpha count as much as the large ones that pin down the bandwidth."""
    if world_size < 2:
        raise ValueError(f"world_size={world_size}: an all-reduce fit needs 2 or more ranks.")
    points = [(float(n), float(t)) for n, t in zip(n_bytes, seconds) if t > 0]
    if len(points) < 2 or len({n for n, _ in points}) < 2:
        raise ValueError("fit_alpha_beta needs timings at two or more different message sizes.")
    w = [1 / t**2 for _, t in points]  # squared weights of the relative residuals
    sw = sum(w)
    sn = sum(wi * n for wi, (n, _) in zip(w, points))
    st = sum(wi * t for wi, (_, t) in zip(w, points))
    snn = sum(wi * n * n for wi, (n, _) in zip(w, points))
    snt = sum(wi * n * t for wi, (n, t) in zip(w, points))
    det = sw * snn - sn * sn
    slope = (sw * snt - sn * st) / det
    alpha = (st - slope * sn) / sw
    if alpha < 0:  # noise can push the intercept below zero: refit through the origin
        alpha, slope = 0.0, snt / snn
    if slope <= 0:
        raise ValueError(
            "The timings do not grow with message size, so no bandwidth can be fitted; "
            "measure larger messages (the network is hidden behind latency or noise)."
        )
    return AlphaBetaFit(alpha, 1 / slope, world_size, backend)


def fit_netbench(bench: dict) -> AlphaBetaFit:
    """The fit of a `fasttrain.chapters.ch01_netbench` result (median time per size)."""
    rows = bench["results"]
    return fit_alpha_beta(
        [r["bytes"] for r in rows], [r["median_s"] for r in rows], bench["world_size"], bench["backend"]
    )


GB = 1e9
# Named interconnects for extrapolation. Only NVLink's rate is in the course's REFERENCES.md; the
# Ethernet and InfiniBand rates are the nominal line rates their names state; PCIe's is the nominal
# rate of a 4.0 x16 slot; every latency is an assumption of a typical per-hop figure. Replace them
# with your own hardware's: Link(name, latency_s, bandwidth_bytes_per_s, source).
NAMED_LINKS = (
    Link("PCIe 4.0 x16", 5e-6, 32 * GB, "assumed: nominal ~32 GB/s per direction; latency assumed"),
    Link("NVLink (H100)", 3e-6, 900 * GB, "REFERENCES.md: H100 NVLink 900 GB/s; latency assumed"),
    Link("100 GbE", 10e-6, 100e9 / 8, "nominal 100 Gbit/s line rate; latency assumed"),
    Link("InfiniBand HDR 200 Gb/s", 3e-6, 200e9 / 8, "nominal 200 Gbit/s line rate; latency assumed"),
)


# ---------------------------------------------------------------------- the cost model
@dataclass(frozen=True)
class CostModel:
    """Data-parallel step time from measured compute time and a network model.

    compute_s: one optimizer step's compute on one device (forward, backward, update) at the
    per-device batch; grad_bytes: what the all-reduce carries per step; overlap: the fraction of the
    compute the all-reduce can hide behind (0: none, the pessimistic bound; the backward pass is about
    two thirds of a step, so ~0.67 is the optimistic bound DDP's bucketing aims at).
    accumulation: micro-batches per optimizer step; the all-reduce runs once per k of them.
    colocation: {N: factor} by which a rank's compute slows when N ranks share one machine (caches,
    memory bandwidth, a VM's shared cores); measured, see `model_from_records`. Missing N: 1, as for
    ranks that each own a device.
    """

    compute_s: float
    grad_bytes: float
    link: Link
    overlap: float = 0.0
    accumulation: int = 1
    colocation: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.compute_s <= 0:
            raise ValueError(f"compute_s={self.compute_s}: the measured compute time must be positive.")
        if not 0 <= self.overlap <= 1:
            raise ValueError(f"overlap={self.overlap}: give a fraction of the compute time, 0 to 1.")
        if self.accumulation < 1:
            raise ValueError(f"accumulation={self.accumulation}: use 1 or more micro-batches per step.")
        if any(f <= 0 for f in self.colocation.values()):
            raise ValueError(f"colocation={self.colocation}: slow-down factors must be positive.")

    def allreduce_s(self, world_size: int) -> float:
        return self.link.allreduce_seconds(self.grad_bytes, world_size)

    def step_s(self, world_size: int) -> float:
        """One optimizer step (all k micro-batches) at N devices, per-device batch fixed."""
        compute = self.compute_s * (self.colocation.get(world_size, 1.0) if world_size > 1 else 1.0)
        comm = self.allreduce_s(world_size)
        return compute * self.accumulation + comm - min(comm, self.overlap * compute)

    def speedup(self, world_size: int) -> float:
        """Weak scaling: throughput at N devices over one device's (which does not communicate)."""
        return world_size * self.step_s(1) / self.step_s(world_size)

    def efficiency(self, world_size: int) -> float:
        return self.speedup(world_size) / world_size

    def throughput(self, world_size: int, per_device_batch: int) -> float:
        """Images per second at N devices."""
        return world_size * per_device_batch * self.accumulation / self.step_s(world_size)

    def strong_speedup(self, world_size: int) -> float:
        """Fixed global batch: compute_s is the whole batch on one device and shrinks as 1/N (an
        optimistic assumption: small per-device batches use a device less well)."""
        per_device = replace(self, compute_s=self.compute_s / world_size)
        return self.step_s(1) / per_device.step_s(world_size)


def accumulation_for_efficiency(model: CostModel, world_size: int, target: float, limit: int = 1024) -> int:
    """The fewest micro-batches per all-reduce that reach `target` efficiency at N devices."""
    if not 0 < target < 1:
        raise ValueError(f"target={target}: give an efficiency between 0 and 1 (exclusive), e.g. 0.9.")
    for k in range(1, limit + 1):
        m = replace(model, accumulation=k)
        if m.efficiency(world_size) >= target - 1e-12:  # exact ties survive rounding
            return k
    raise ValueError(f"No accumulation up to {limit} micro-batches reaches {target:.0%} at {world_size} devices.")


# ---------------------------------------------------------------------- measured records
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
    hidden, and waiting for peers); compute_s the rest of the step; allreduce_s the summed launch-to-
    completion time of every bucket, of which hidden_s ran while the backward was still computing."""
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


# ---------------------------------------------------------------------- the chapter's jobs
# Short jobs: the chapter measures step times, not accuracy, so it validates once on a small set.
JOB_SIZES = {
    "smoke": dict(per_device_batch=32, max_steps=8, timing_warmup_steps=2, train_samples=2048, val_samples=128),
    "cpu": dict(per_device_batch=32, max_steps=30, timing_warmup_steps=5, train_samples=None, val_samples=500),
    "gpu": dict(per_device_batch=128, max_steps=120, timing_warmup_steps=20, train_samples=None, val_samples=2000),
}


def on_gpu(profile: str) -> bool:
    import torch

    return resolve_profile(profile) == "gpu" and torch.cuda.is_available()


def available_world_sizes(profile: str) -> list[int]:
    """1, 2, 4, ... up to the devices this machine has (GPUs, else one core per rank)."""
    import torch

    most = torch.cuda.device_count() if on_gpu(profile) else (os.cpu_count() or 1)
    sizes = [2**k for k in range(int(math.log2(most)) + 1)]
    return sizes + ([most] if most not in sizes else [])


def job_config(profile: str, world: int, global_batch_size: int, **overrides) -> TrainConfig:
    """One of the chapter's jobs: the profile's model, short, and on a CPU one thread per rank, so
    every rank owns a core and 1 rank vs N ranks is a fair comparison."""
    resolved = resolve_profile(profile)
    sizes = {k: v for k, v in JOB_SIZES[resolved].items() if k != "per_device_batch"}
    hardware = dict(accelerator="gpu") if on_gpu(resolved) else dict(accelerator="cpu", threads_per_rank=1)
    values = dict(sizes, val_every_steps=0, devices=world, global_batch_size=global_batch_size, **hardware)
    values.update(overrides)
    return TrainConfig.from_profile(resolved, **values).validate()


class Jobs:
    """The chapter's training jobs, each run once: asking again for the same configuration returns
    the record already measured (weak and strong scaling share their largest run)."""

    def __init__(self, profile: str, timeout: float = 1800):
        self.profile, self.timeout = profile, timeout
        self.records: dict[tuple[str, int], dict] = {}

    def run(self, world: int, global_batch_size: int, name: str, repeat: int = 0, **overrides) -> dict:
        """repeat > 0 runs the same job again, as a separate run (to bracket others in time)."""
        from fasttrain.launch import config_hash, run

        config = job_config(self.profile, world, global_batch_size, **overrides)
        key = (config_hash(config), repeat)
        if key not in self.records:
            self.records[key] = run(config, name=name, timeout=self.timeout)
        return self.records[key]


def check_world_sizes(world_sizes: Sequence[int], profile: str) -> list[int]:
    have = available_world_sizes(profile)
    bad = [n for n in world_sizes if n < 1 or n > have[-1]]
    if bad:
        raise ConfigError(
            f"world_sizes {bad}: this machine runs 1 to {have[-1]} ranks "
            f"({'GPUs' if on_gpu(profile) else 'one CPU core each'}); e.g. {have}."
        )
    if 1 not in world_sizes:
        raise ConfigError("world_sizes must include 1: speed-up is measured against one rank.")
    return sorted(set(world_sizes))


# ---------------------------------------------------------------------- figures
def plot_speedup(tables: dict[str, list[dict]], save_as: str | None = None):
    """Measured speed-up and efficiency against the ideal line, one curve per scaling mode."""
    import matplotlib.pyplot as plt

    from fasttrain.plots import _save

    fig, (ax_s, ax_e) = plt.subplots(1, 2, figsize=(11, 4))
    most = max(row["world_size"] for rows in tables.values() for row in rows)
    ax_s.plot([1, most], [1, most], "k--", label="ideal")
    ax_e.axhline(1.0, color="k", ls="--", label="ideal")
    for label, rows in tables.items():
        n = [r["world_size"] for r in rows]
        ax_s.plot(n, [r["speedup"] for r in rows], "o-", label=label)
        ax_e.plot(n, [r["efficiency"] for r in rows], "o-", label=label)
    ax_s.set(xlabel="ranks", ylabel="speed-up (throughput / 1 rank)", title="speed-up")
    ax_e.set(xlabel="ranks", ylabel="scaling efficiency", title="efficiency", ylim=(0, 1.2))
    for ax in (ax_s, ax_e):
        ax.set_xticks(sorted({r["world_size"] for rows in tables.values() for r in rows}))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, save_as)


def plot_breakdown(breakdowns: dict[str, dict], save_as: str | None = None):
    """Per-step compute and idle (stacked, = the step), with the all-reduce's own time beside them."""
    import matplotlib.pyplot as plt

    from fasttrain.plots import _save

    labels = list(breakdowns)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4))
    x = range(len(labels))
    compute = [breakdowns[k]["compute_s"] * 1e3 for k in labels]
    idle = [breakdowns[k]["idle_s"] * 1e3 for k in labels]
    ax.bar([i - 0.2 for i in x], compute, 0.4, label="compute (rest of the step)")
    ax.bar([i - 0.2 for i in x], idle, 0.4, bottom=compute, label="idle: waiting for the all-reduce")
    ax.bar(
        [i + 0.2 for i in x],
        [breakdowns[k]["allreduce_s"] * 1e3 for k in labels],
        0.4,
        label="all-reduce, launch to completion (mostly hidden)",
        color="grey",
    )
    ax.set_xticks(list(x), labels, rotation=15)
    ax.set(ylabel="ms per step (median)", title="where a DDP step's time goes (rank 0)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    return _save(fig, save_as)


def plot_allreduce_fit(bench: dict, fit: AlphaBetaFit, grad_bytes: float | None = None, save_as: str | None = None):
    import matplotlib.pyplot as plt

    from fasttrain.plots import _save

    rows = bench["results"]
    n = [r["bytes"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.errorbar(
        n,
        [r["median_s"] * 1e3 for r in rows],
        yerr=[[(r["median_s"] - r["min_s"]) * 1e3 for r in rows], [(r["max_s"] - r["median_s"]) * 1e3 for r in rows]],
        fmt="o",
        capsize=3,
        label=f"measured ({bench['backend']}, {bench['world_size']} ranks; median, min-max)",
    )
    grid = [n[0] * (n[-1] / n[0]) ** (i / 50) for i in range(51)]
    ax.plot(
        grid,
        [fit.predict(g) * 1e3 for g in grid],
        "-",
        label=f"fit: {fit.alpha_s * 1e6:.0f} us + n / {fit.bandwidth_eff / 1e9:.2f} GB/s",
    )
    if grad_bytes:
        ax.axvline(grad_bytes, color="grey", ls=":", label="this model's gradients")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="message size (bytes)",
        ylabel="all-reduce time (ms)",
        title="all-reduce time vs message size",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, save_as)


def plot_extrapolation(
    models: dict[str, CostModel],
    world_sizes: Sequence[int],
    measured: Sequence[tuple[int, float]] = (),
    published: Sequence[tuple[int, float, str]] = (),
    title: str = "",
    save_as: str | None = None,
):
    """Predicted efficiency over world size per interconnect, with measured and published points."""
    import matplotlib.pyplot as plt

    from fasttrain.plots import _save

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, model in models.items():
        ax.plot(world_sizes, [model.efficiency(n) for n in world_sizes], "-", label=label)
    if measured:
        ax.plot(*zip(*measured), "ks", label="measured here")
    for n, eff, label in published:
        ax.plot(n, eff, "r*", ms=11)
        ax.annotate(label, (n, eff), textcoords="offset points", xytext=(5, 5), fontsize=8, color="r")
    ax.set(
        xscale="log",
        xlabel="devices",
        ylabel="predicted scaling efficiency (weak)",
        ylim=(0, 1.05),
        title=title or "cost model: efficiency vs devices",
    )
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, save_as)
