"""Chapter 04's reading of its runs: time to target per stage (mean and spread over runs), speed-ups, what
each lever did, the comparison with published figures, and the time-to-accuracy figure."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

import matplotlib.pyplot as plt

from fasttrain import references as ref
from fasttrain.report.figures import save
from fasttrain.report.stats import spread
from fasttrain.report.tables import markdown_table


def time_to_accuracy(record: dict, target: float) -> float | None:
    """Training seconds (validation excluded) until validation first reached `target`, else None."""
    for v in record["validation"]:
        if v["accuracy"] >= target:
            return v["train_time_s"]
    return None


def summarize(name: str, records: list[dict], target: float) -> dict[str, Any]:
    """Mean and spread of time to target and of final accuracy over a stage's runs."""
    times = [time_to_accuracy(r, target) for r in records]
    reached = [t for t in times if t is not None]
    time, accuracy = spread(reached), spread(r["final_val_accuracy"] for r in records)
    return dict(
        name=name,
        runs=len(records),
        reached=len(reached),
        time_mean_s=time["mean"],
        time_std_s=time["std"],
        times_s=times,
        accuracy_mean=accuracy["mean"],
        accuracy_std=accuracy["std"],
        steps_mean=statistics.fmean(r["steps"] for r in records),
        images_per_s=statistics.fmean(r["throughput"]["images_per_s"] for r in records),
    )


def speedup_rows(rows: list[dict]) -> list[dict]:
    """Each row's speed-up in mean time to target over the first (the baseline); NaN where a run of
    either missed the target, since a mean over the runs that made it would flatter that row."""
    base = rows[0]

    def speedup(row: dict) -> float:
        if row["reached"] < row["runs"] or base["reached"] < base["runs"]:
            return float("nan")
        return base["time_mean_s"] / row["time_mean_s"]

    return [dict(row, speedup=speedup(row)) for row in rows]


def speedrun_table(rows: list[dict], target: float) -> str:
    """The stages' rows (`summarize`) as a Markdown table, with each one's speed-up over the first."""

    def spread_text(std: float, n: int, digits: int) -> str:
        return f" ± {std:.{digits}f}" if n > 1 else " (one run)"  # one run has no spread, not a spread of 0

    head = [
        "configuration",
        "runs",
        f"reached {target:.0%}",
        f"time to {target:.0%} (s), mean ± std",
        "speed-up",
        "final accuracy, mean ± std",
        "steps",
        "images/s",
    ]
    cells = [
        (
            r["name"],
            r["runs"],
            f"{r['reached']}/{r['runs']}",
            f"{r['time_mean_s']:.1f}{spread_text(r['time_std_s'], r['reached'], 1)}",
            f"{r['speedup']:.2f}x",
            f"{r['accuracy_mean']:.3f}{spread_text(r['accuracy_std'], r['runs'], 3)}",
            f"{r['steps_mean']:.0f}",
            f"{r['images_per_s']:,.0f}",
        )
        for r in speedup_rows(rows)
    ]
    return markdown_table(head, cells)


def lever_verdicts(rows: list[dict], target: float) -> list[str]:
    """What each stage did against the one before it, weighed against the run-to-run spread."""
    out = []
    for before, after in zip(rows, rows[1:]):
        if after["reached"] < after["runs"]:
            said = f"did not reach {target:.0%} in {after['runs'] - after['reached']} of {after['runs']} runs"
        elif before["reached"] < before["runs"]:
            said = "reached the target, which the stage before did not always"
        else:
            change = after["time_mean_s"] / before["time_mean_s"]
            said = f"{1 / change:.2f}x faster" if change < 1 else f"{change:.2f}x slower"
            noise = max(before["time_std_s"], after["time_std_s"])
            if noise > 0 and abs(after["time_mean_s"] - before["time_mean_s"]) <= noise:
                said += " (within the run-to-run spread)"
            elif noise == 0:
                said += " (one run each: no spread to weigh it against)"
        out.append(f"+ {after['name']:<20} {said}")
    return out


def comparison_markdown(
    runs: dict[str, list[dict]], rows: list[dict], target: float, references_: Iterable[dict] = ()
) -> str:
    """This run's stages beside the published figures and recorded GPU runs, in the same units:
    images/s per device, fraction of peak, time to accuracy, scaling efficiency."""

    def per_device(records: list[dict]) -> float:
        return statistics.fmean(r["throughput"]["images_per_s_per_device"] for r in records)

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.1%}"

    names = list(runs)
    cells = []
    for row in rows:
        records = runs[row["name"]]
        efficiency = ""
        if row["name"] == "data parallel":  # per device against the stage before it on one process
            efficiency = f"{per_device(records) / per_device(runs[names[names.index(row['name']) - 1]]):.0%}"
        cells.append(
            (
                f"this run: {row['name']} ({records[0]['environment']['device_name']})",
                f"{per_device(records):,.0f}",
                pct(records[0]["flops"]["mfu"]),
                f"{row['time_mean_s']:.1f} s to {target:.0%}",
                efficiency,
            )
        )
    cells += _published_rows()
    for r in references_:
        cells.append(
            (
                f"recorded: {r.get('name')} on {r['environment']['device_name']} ({r['config']['precision']})",
                f"{r['throughput']['images_per_s_per_device']:,.0f}",
                pct(r["flops"]["mfu"]),
                "",
                "",
            )
        )
    head = ("what", "images/s per device", "fraction of peak", "time to accuracy", "scaling efficiency")
    return markdown_table(head, cells)


def _published_rows() -> list[tuple[str, ...]]:
    """The published figures, in comparison_markdown's columns."""
    return [
        (
            "Jia et al.: ResNet-50, ImageNet, 2,048 P40",
            "",
            "",
            f"{ref.JIA_2048_MINUTES.value} min to {ref.JIA_2048_TOP1.value}% top-1",
            f"{ref.JIA_SCALING_EFFICIENCY.value}%",
        ),
        (
            "Goyal et al.: 256 P100, batch 8K",
            "",
            "",
            f"1 hour to {ref.GOYAL_TOP1.value}% top-1",
            f"~{ref.GOYAL_SCALING_EFFICIENCY.value}% (8 to 256 GPUs)",
        ),
        (
            "NVIDIA: A100 80GB, AMP",
            f"{ref.A100_AMP_1GPU.value:,.0f}",
            f"{ref.A100_AMP_MFU.value}% of bf16 peak",
            "",
            f"{ref.A100_AMP_8GPU.value / (8 * ref.A100_AMP_1GPU.value):.0%} (8 GPUs)",
        ),
    ]


def plot_time_to_accuracy(rows: list[dict], target: float, save_as: str | None = None):
    """Bars of mean time to target per configuration, one dot per run."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = [r["name"] for r in rows]
    for i, r in enumerate(rows):
        ax.bar(
            i,
            r["time_mean_s"] if r["reached"] else 0,
            color="tab:blue" if r["reached"] == r["runs"] else "tab:red",
            yerr=r["time_std_s"] if r["reached"] > 1 else None,
            capsize=4,
            alpha=0.8,
        )
        ax.scatter([i] * r["reached"], [t for t in r["times_s"] if t is not None], color="black", s=12, zorder=3)
    ax.set_xticks(range(len(rows)), names, rotation=20, ha="right")
    ax.set_ylabel(f"training seconds to {target:.0%} validation accuracy")
    ax.set_title("time to accuracy, one lever added at a time (bars: mean, dots: runs)")
    return save(fig, save_as)
