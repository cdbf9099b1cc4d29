"""Training runs across precisions, compared: accuracy parity over seeds, throughput and memory.

Every run goes through `launch.run`, which returns the finished run where one is on disk. A run is
named by its precision settings and seed, so the speed comparison asks for the parity runs it shares
with them by the same name and finds them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from fasttrain.config import ConfigError, TrainConfig
from fasttrain.report.stats import spread


def run_name(config: TrainConfig, prefix: str = "ch02") -> str:
    """<prefix>-<precision>[-tf32][-channels-last]-seed<seed>: the same settings, the same run folder."""
    tf32 = "-tf32" if config.matmul_precision != "highest" else ""
    layout = "-channels-last" if config.channels_last else ""
    return f"{prefix}-{config.precision}{tf32}{layout}-seed{config.seed}"


def precision_run(config: TrainConfig, prefix: str = "ch02", **launch_kw: Any) -> dict:
    """launch.run under `run_name`: asked again for the same settings, it returns the finished run."""
    from fasttrain import launch

    return launch.run(config, name=run_name(config, prefix), **launch_kw)


def precision_runs(
    config: TrainConfig,
    precisions: Iterable[str],
    seeds: int | dict[str, int],
    prefix: str = "ch02",
    **launch_kw: Any,
) -> dict[str, list[dict]]:
    """One training job per precision and seed, all else equal; records grouped by precision.
    `seeds`: runs per precision, one number for all or a number per precision."""
    precisions = list(precisions)
    counts = seeds if isinstance(seeds, dict) else dict.fromkeys(precisions, seeds)
    for precision in precisions:
        if counts.get(precision, 0) < 1:
            raise ConfigError(
                f"seeds={seeds}: run each precision ({precision}) at least once (2 or more show the spread)."
            )
    return {
        precision: [
            precision_run(config.replace(precision=precision, seed=seed), prefix, **launch_kw)
            for seed in range(counts[precision])
        ]
        for precision in precisions
    }


def parity_summary(runs: dict[str, list[dict]], last_steps: int = 0) -> list[dict[str, Any]]:
    """Per precision: final validation accuracy and final training loss (mean of the last `last_steps`
    steps, default a quarter of the run) over seeds, step time, throughput, memory, skipped steps."""
    rows = []
    for precision, records in runs.items():
        k = last_steps or max(1, len(records[0]["loss"]["values"]) // 4)
        rows.append(
            dict(
                precision=precision,
                seeds=len(records),
                accuracy=spread([r["final_val_accuracy"] for r in records]),
                final_loss=spread([statistics.fmean(r["loss"]["values"][-k:]) for r in records]),
                step_time_s=statistics.median(r["timing"]["step_time_s"]["median"] for r in records),
                images_per_s=statistics.median(r["throughput"]["images_per_s"] for r in records),
                peak_memory_bytes=max(r["memory"]["peak_bytes"] for r in records),
                skipped_steps=[r.get("loss_scale", {}).get("skipped_steps", 0) for r in records],
            )
        )
    return rows


def parity_verdict(rows: list[dict], reference: str = "32-true") -> list[str]:
    """Whether each precision's accuracy range overlaps the reference's run-to-run range, from the numbers."""
    ref = next(r for r in rows if r["precision"] == reference)
    lines = []
    for r in rows:
        if r is ref:
            continue
        a, b = r["accuracy"], ref["accuracy"]
        gap = 100 * (a["mean"] - b["mean"])
        overlap = a["min"] <= b["max"] and b["min"] <= a["max"]
        where = (
            "inside the seed-to-seed range, so no difference is measurable at this budget"
            if overlap
            else "outside the seed-to-seed range: a real difference at this budget"
        )
        lines.append(
            f"{r['precision']}: accuracy {100 * a['mean']:.1f}% vs {reference} {100 * b['mean']:.1f}% "
            f"({gap:+.1f} points), ranges [{100 * a['min']:.1f}, {100 * a['max']:.1f}] and "
            f"[{100 * b['min']:.1f}, {100 * b['max']:.1f}]: {where}"
        )
    return lines


def parity_lines(runs: dict[str, list[dict]], chance: float, reference: str = "32-true") -> list[str]:
    """Per precision: runs, accuracies against chance, median step time against the reference's, and why a
    precision has fewer runs than the reference, from those step times."""
    ref_step = statistics.median(timed_steps(runs[reference]))
    lines = []
    for precision, records in runs.items():
        acc = [r["final_val_accuracy"] for r in records]
        step = statistics.median(timed_steps(records))
        line = (
            f"{precision}: {len(records)} run(s), final accuracy {', '.join(f'{100 * a:.1f}%' for a in acc)} "
            f"(chance {chance:.0%}); median step {1e3 * step:,.0f} ms, {step / ref_step:.2f}x {reference}'s"
        )
        if len(records) < len(runs[reference]):
            line += (
                f"; fewer runs than {reference}'s {len(runs[reference])}, by this profile's plan"
                + (f" (a step here costs {step / ref_step:.1f} of {reference}'s)" if step > ref_step else "")
                + f", each judged against {reference}'s seed-to-seed band"
            )
        lines.append(line)
    return lines


def timed_steps(records: list[dict]) -> list[float]:
    """Every step time after each record's warm-up, pooled over records (e.g. the seeds of one setting)."""
    return [t for r in records for t in r["timing"]["step_times_s"][r["timing"]["timing_warmup_steps"] :]]


def speedups(runs: dict[str, list[dict]], baseline: str) -> list[dict[str, Any]]:
    """Throughput (global batch / median of the pooled timed steps) and peak memory of each labelled set of
    records against the baseline's, computed from the records."""

    def rate(records):
        return records[0]["config"]["global_batch_size"] / statistics.median(timed_steps(records))

    base = runs[baseline]
    base_memory = max(r["memory"]["peak_bytes"] for r in base)
    rows = []
    for label, records in runs.items():
        ratio = rate(records) / rate(base)
        memory = max(r["memory"]["peak_bytes"] for r in records)
        rows.append(
            dict(
                label=label,
                runs=len(records),
                timed_steps=len(timed_steps(records)),
                images_per_s=rate(records),
                step_time_s=statistics.median(timed_steps(records)),
                speedup=ratio,
                verdict="baseline" if label == baseline else ("faster" if ratio > 1 else "slower"),
                peak_memory_bytes=memory,
                memory_kind=records[0]["memory"]["kind"],
                memory_ratio=memory / base_memory,
            )
        )
    return rows


def reference_speedups(records: list[dict]) -> list[dict[str, Any]]:
    """Recorded runs (results/reference/) against the strict-fp32 record of the same device and image size."""

    def key(r):
        return r["environment"]["device_name"], r["config"]["image_size"], r["config"]["width"]

    def is_fp32(r):
        c = r["config"]
        return c["precision"] in ("32-true", "32") and c["matmul_precision"] == "highest" and not c["channels_last"]

    baselines: dict[Any, dict] = {}
    for r in sorted(records, key=lambda r: r["config"]["global_batch_size"]):
        if is_fp32(r):
            baselines.setdefault(key(r), r)
    rows = []
    for r in records:
        base = baselines.get(key(r))
        c = r["config"]
        rows.append(
            dict(
                name=r.get("name"),
                device=r["environment"]["device_name"],
                precision=c["precision"],
                matmul_precision=c["matmul_precision"],
                channels_last=c["channels_last"],
                batch=c["global_batch_size"],
                image_size=c["image_size"],
                images_per_s=r["throughput"]["images_per_s_per_device"],
                peak_memory_bytes=r["memory"]["peak_bytes"],
                speedup=(
                    r["throughput"]["images_per_s_per_device"] / base["throughput"]["images_per_s_per_device"]
                    if base
                    else None
                ),
            )
        )
    return rows
