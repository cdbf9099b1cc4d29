"""The alpha-beta model of one all-reduce, t = alpha + n / bandwidth, fitted to `ch01_netbench`'s timings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fasttrain.chapters.ch01_cost_model import Link, ring_factor


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
