"""Chapter 02's lessons as claims, each decided from this run's numbers (`fasttrain.report.claims`).

Each function takes the measurements a section made and records one claim: whether it holds here,
what was measured, and in which profiles it must hold. The thresholds are the claims' words ("most",
"all but 1%"); the values compared with them are this run's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fasttrain.report.claims import Claims
from fasttrain.report.stats import spread, t_975

ALL = ("smoke", "cpu", "gpu")
LARGER = ("cpu", "gpu")


def flush_claim(claims: Claims, sweep: list[dict], scale: float, flushed_unscaled: float = 0.10) -> bool:
    """fp16 flushes more than `flushed_unscaled` of the nonzero activation gradients; `scale` keeps all but 1%."""
    raw = next(r for r in sweep if r["scale"] == 1.0)
    scaled = next(r for r in sweep if r["scale"] == scale)
    e = int(math.log2(scale))
    return claims.check(
        f"fp16 without loss scaling flushes more than {flushed_unscaled:.0%} of the nonzero activation gradients, "
        f"and a loss scale of 2^{e} recovers all but 1% of them, overflowing under 0.1%",
        holds=raw["underflow"] > flushed_unscaled and scaled["underflow"] < 0.01 and scaled["overflow"] < 0.001,
        measured=f"flushed {raw['underflow']:.1%} unscaled, {scaled['underflow']:.2%} at 2^{e} "
        f"(overflowed {scaled['overflow']:.3%}), of {raw['nonzero']:,} nonzero values",
        robust=ALL,
    )


def bf16_flush_claim(claims: Claims, flushed: dict[str, float]) -> bool:
    """bf16 (fp32's 8 exponent bits) flushes (almost) none of the same gradients, without any scaling."""
    worst = max(flushed.values())
    return claims.check(
        "bf16 without loss scaling flushes under 0.01% of the nonzero gradients (fp32's exponent range)",
        holds=worst < 1e-4,
        measured=", ".join(f"{name} {f:.4%}" for name, f in flushed.items()),
        robust=ALL,
    )


def master_weights_claim(claims: Claims, lost: dict[str, dict]) -> bool:
    """Held in fp16 most SGD updates vanish; added to fp32 master weights, all but a few percent land."""
    fp16, fp32 = lost["fp16"]["measured"], lost["fp32"]["measured"]
    rule_gap = max(abs(r["measured"] - r["rule"]) for r in lost.values())
    return claims.check(
        "held in fp16, most (over 50%) of plain SGD's updates are lost; fp32 master weights keep all but 10%, "
        "and the mantissa rule |u| < |w| x 2^-(mantissa+1) predicts each within 5 points",
        holds=fp16 > 0.5 and fp32 < 0.10 and rule_gap < 0.05,
        measured=f"lost: fp16 {fp16:.1%}, bf16 {lost['bf16']['measured']:.1%}, fp32 {fp32:.2%} of "
        f"{lost['fp16']['updates']:,} updates; the rule is off by at most {100 * rule_gap:.1f} points",
        robust=ALL,
    )


def scaler_events(loss_scale: dict) -> dict[str, Any]:
    """Replay GradScaler's rule over a record's scale history: halve on a skipped step, double after
    `growth_interval` clean steps in a row, else keep. Returns the counts and the steps that break the rule."""
    scale, clean, grown, broken = loss_scale["initial"], 0, 0, []
    for step, after, skipped in zip(loss_scale["steps"], loss_scale["values"], loss_scale["skipped"]):
        if skipped:
            expected, clean = scale / 2, 0
        else:
            clean += 1
            expected = scale * 2 if clean == loss_scale["growth_interval"] else scale
            if expected != scale:
                grown, clean = grown + 1, 0
        if after != expected:
            broken.append(step)
        scale = after
    return dict(steps=len(loss_scale["steps"]), skipped=sum(loss_scale["skipped"]), grown=grown, broken=broken)


def scaler_claim(claims: Claims, records: Sequence[dict]) -> bool:
    """GradScaler skips overflowing steps (halving the scale) and grows it after clean runs, in every 16-mixed run."""
    events = [scaler_events(r["loss_scale"]) for r in records if "loss_scale" in r]
    shown = bool(events) and all(e["skipped"] and e["grown"] and not e["broken"] for e in events)
    measured = "; ".join(
        f"{e['steps']} steps: {e['skipped']} skipped (scale halved), {e['grown']} doublings, "
        f"{len(e['broken'])} steps off the rule"
        for e in events
    )
    return claims.check(
        "the dynamic loss scaler skips the steps whose gradients overflow (halving the scale) and doubles the "
        "scale after each run of growth_interval clean steps: both happen, and every step follows that rule",
        holds=shown,
        measured=measured or "no 16-mixed run with a loss-scale record",
        robust=ALL,
    )


def within_band(reference: Sequence[float], values: Sequence[float]) -> tuple[bool | None, str]:
    """Whether every one of `values` lies within `reference`'s run-to-run spread: inside its 95%
    prediction interval for one more run, mean ± t s sqrt(1 + 1/n). Each run is judged on its own; the
    overlap of two means' intervals would say little when the other side has two runs."""
    ref = spread(reference)
    if ref["n"] < 2 or not values:
        return None, "fewer than 2 reference runs: no spread to judge against"
    half = t_975(ref["n"] - 1) * ref["std"] * math.sqrt(1 + 1 / ref["n"])
    inside = all(abs(v - ref["mean"]) <= half for v in values)
    shown = ", ".join(f"{v:.3f}" for v in values)
    return inside, f"{shown} vs {ref['mean']:.3f} ± {half:.3f} (95% prediction band of {ref['n']} runs)"


def parity_claim(claims: Claims, runs: dict[str, list[dict]], chance: float, reference: str = "32-true") -> bool:
    """Every precision's final accuracy lies within fp32's seed-to-seed band, once every run has learned."""
    acc = {p: [r["final_val_accuracy"] for r in rs] for p, rs in runs.items()}
    learned = 3 * chance
    worst = min(min(v) for v in acc.values())
    ref = spread(acc[reference])
    half = t_975(ref["n"] - 1) * ref["std"] * math.sqrt(1 + 1 / ref["n"]) if ref["n"] > 1 else math.inf
    verdicts = {p: within_band(acc[reference], v) for p, v in acc.items() if p != reference}
    words = "; ".join(f"{p}: {w}" for p, (_, w) in verdicts.items())
    if worst < learned:
        holds, why = (
            None,
            f"a run ended at {worst:.1%}, under 3x chance ({learned:.0%}): not all learned, nothing to compare",
        )
    elif half >= ref["mean"] - chance:
        holds, why = None, f"fp32's band (±{half:.1%}) is as wide as its gain over chance: too noisy to compare"
    else:
        holds, why = all(v for v, _ in verdicts.values()), f"all runs learned (lowest {worst:.1%})"
    return claims.check(
        "bf16-mixed and 16-mixed reach fp32's validation accuracy within fp32's seed-to-seed spread, "
        "after runs long enough that every one learns (over 3x chance)",
        holds=holds,
        measured=f"{why}; {words}",
        robust=LARGER,
    )


def has_bf16_units(device_type: str) -> bool | None:
    """bf16 arithmetic in hardware: AMX or AVX512_BF16 on a CPU, compute capability 8.0+ on a GPU; None: unknown."""
    import torch

    if device_type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        return None
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16")) if flags else None


def speed_claim(claims: Claims, units: bool | None, ratios: dict[str, float], device_name: str) -> bool:
    """bf16 maths beats fp32 exactly where the device has bf16 units, and loses where it has none."""
    faster = [k for k, r in ratios.items() if r > 1]
    measured = ", ".join(f"{k} {r:.3g}x fp32" for k, r in ratios.items())
    kind = {True: "has bf16 units", False: "has no bf16 units", None: "cannot tell whether it has bf16 units"}[units]
    holds = None if units is None else (len(faster) == len(ratios) if units else not faster)
    return claims.check(
        "bf16 maths (matrix product, convolution weight gradient) is faster than fp32 on this device exactly "
        "where it has bf16 units (AMX / AVX512_BF16 on a CPU, tensor cores on a GPU), slower where it has none",
        holds=holds,
        measured=f"{device_name} {kind}; bf16 ran at {measured}",
        robust=ALL,
    )
