"""Chapter 01's cost model of data-parallel scaling, and the interconnects it can be fed.

Every step each of N devices computes its share (time `compute_s`, the same at any N when the
per-device batch is fixed and each rank owns its device; ranks sharing one machine slow each other,
the `colocation` factor) and then all-reduces the gradients, S bytes. A ring all-reduce sends each
byte 2(N-1)/N times over each link and pays a latency per hop (NVIDIA/nccl-tests doc/PERFORMANCE.md
gives the bandwidth term):

    t_allreduce(N) = 2(N-1) x alpha_hop + 2(N-1)/N x S / B
    t_step(N)      = compute_s + t_allreduce(N) - hidden      (hidden: what overlaps the backward)
    speed-up(N)    = N x compute_s / t_step(N),   efficiency = speed-up / N

alpha_hop and B are fitted from an all-reduce benchmark on this machine (`ch01_alpha_beta`), or taken
from a named interconnect in `NAMED_LINKS`. A flat ring of thousands of devices is a topology nobody
builds: NVLink and PCIe join the devices of one server (`Link.max_ranks`), and clusters all-reduce in
two levels (`TwoLevel`, Jia et al.'s hybrid all-reduce): within each node over its fast link, then one
device per node across the nodes, which pays 2(N/g - 1) slow hops instead of 2(N-1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace


def ring_factor(ranks: int) -> float:
    """How many times each byte crosses a link in a ring all-reduce: 2(n-1)/n (0 for one rank)."""
    if ranks < 1:
        raise ValueError(f"ranks={ranks}: a ring has at least one member.")
    return 2 * (ranks - 1) / ranks


# ---------------------------------------------------------------------- the network
@dataclass(frozen=True)
class Link:
    """An interconnect for the ring model: latency per hop (s) and bandwidth per link, one direction (bytes/s)."""

    name: str
    latency_s: float
    bandwidth: float
    source: str
    max_ranks: int | None = None  # the most devices one such ring joins (one server's); None: any number

    def allreduce_seconds(self, n_bytes: float, ranks: int) -> float:
        """Seconds for a ring all-reduce of n_bytes over `ranks` devices; nan past max_ranks (no such ring)."""
        if ranks == 1:
            return 0.0  # nothing to exchange
        if self.max_ranks is not None and ranks > self.max_ranks:
            return math.nan
        return 2 * (ranks - 1) * self.latency_s + ring_factor(ranks) * n_bytes / self.bandwidth

    def describe(self) -> str:
        return f"{self.name} ({self.latency_s * 1e6:.0f} us, {self.bandwidth / 1e9:.1f} GB/s)"


@dataclass(frozen=True)
class TwoLevel:
    """A hierarchical all-reduce (Jia et al.'s hybrid): the `per_node` devices of each node reduce over
    `intra`, one device per node all-reduces across the nodes over `inter`, and the result goes back
    over `intra`. Each level is costed as a ring all-reduce of all the bytes."""

    intra: Link
    inter: Link
    per_node: int = 8

    @property
    def name(self) -> str:
        return f"{self.per_node} per node on {self.intra.name}, {self.inter.name} between nodes"

    def allreduce_seconds(self, n_bytes: float, ranks: int) -> float:
        local = min(self.per_node, ranks)
        nodes = math.ceil(ranks / local)
        return self.intra.allreduce_seconds(n_bytes, local) + self.inter.allreduce_seconds(n_bytes, nodes)

    def describe(self) -> str:
        return f"two levels: {self.name}"


GB = 1e9
# Named interconnects for extrapolation. Every bandwidth is one direction's, which is what a ring's
# S / B uses (each byte crosses a link one way). Only NVLink's rate is in the course's reference list
# (docs/references.md, `references.H100_NVLINK_PER_DIRECTION_GBPS`): the H100's 900 GB/s is both
# directions together, 450 GB/s each way. The Ethernet and InfiniBand rates are the nominal line rates
# their names state; PCIe's is the nominal rate of a 4.0 x16 slot; every latency is an assumption of a
# typical per-hop figure. Replace them with your own hardware's: Link(name, latency_s,
# bandwidth_bytes_per_s, source).
NAMED_LINKS = (
    Link("PCIe 4.0 x16", 5e-6, 32 * GB, "assumed: nominal ~32 GB/s per direction; latency assumed", max_ranks=8),
    Link(
        "NVLink (H100)",
        3e-6,
        450 * GB,
        "NVIDIA H100 datasheet: NVLink 900 GB/s both directions together, 450 GB/s each way; latency assumed",
        max_ranks=8,
    ),
    Link("100 GbE", 10e-6, 100e9 / 8, "nominal 100 Gbit/s line rate; latency assumed"),
    Link("InfiniBand HDR 200 Gb/s", 3e-6, 200e9 / 8, "nominal 200 Gbit/s line rate; latency assumed"),
)
_BY_NAME = {link.name: link for link in NAMED_LINKS}
# Servers of 8 GPUs on NVLink, joined by Ethernet (as Jia et al.'s cluster was) or by InfiniBand.
TWO_LEVEL_LINKS = (
    TwoLevel(_BY_NAME["NVLink (H100)"], _BY_NAME["100 GbE"]),
    TwoLevel(_BY_NAME["NVLink (H100)"], _BY_NAME["InfiniBand HDR 200 Gb/s"]),
)


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
    link: Link | TwoLevel
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


def amdahl_fit(n_a: int, t_a: float, n_b: int, t_b: float) -> dict[str, float]:
    """Amdahl's law through two times to train, T(N) = serial + parallel / N: the part no number of
    devices shortens, and the part that shrinks as 1/N (both in the times' unit)."""
    if n_a == n_b:
        raise ValueError("two different device counts are needed to separate the two parts.")
    parallel = (t_a - t_b) / (1 / n_a - 1 / n_b)
    return dict(serial=t_a - parallel / n_a, parallel=parallel)
