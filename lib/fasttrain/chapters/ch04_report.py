"""Chapter 04's reading of its runs: time to target per configuration (every run, mean, spread and 95%
interval), what leaving each lever out cost, the comparison with published figures, and the figure."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

import matplotlib.pyplot as plt

from fasttrain import references as ref
from fasttrain.report.claims import compare_pooled
from fasttrain.report.figures import save
from fasttrain.report.stats import spread
from fasttrain.report.tables import markdown_table


def _first_reach(record: dict, target: float) -> dict | None:
    return next((v for v in record["validation"] if v["accuracy"] >= target), None)


def time_to_accuracy(record: dict, target: float) -> float | None:
    """Training seconds (validation excluded) until validation first reached `target`, else None."""
    v = _first_reach(record, target)
    return None if v is None else v["train_time_s"]


def images_to_accuracy(record: dict, target: float) -> int | None:
    """Training images (steps x global batch) until validation first reached `target`, else None: what a
    lever does to learning, apart from what it does to a step's cost."""
    v = _first_reach(record, target)
    return None if v is None else v["step"] * record["config"]["global_batch_size"]


def summarize(name: str, records: list[dict], target: float) -> dict[str, Any]:
    """One configuration's runs: every time to target (None where a run stopped short, with the training
    time it had spent by then as a lower bound), their mean, spread and 95% interval, the full-test and
    final validation accuracies, steps and images/s."""
    times = [time_to_accuracy(r, target) for r in records]
    bounds = [t if t is not None else r["timing"]["train_time_s"] for t, r in zip(times, records)]
    images = [images_to_accuracy(r, target) for r in records]
    image_bounds = [
        i if i is not None else r["steps"] * r["config"]["global_batch_size"] for i, r in zip(images, records)
    ]
    reached = [t for t in times if t is not None]
    time, accuracy = spread(reached), spread(r["final_val_accuracy"] for r in records)
    tests = [r.get("test", {}).get("accuracy") for r in records]
    return dict(
        name=name,
        runs=len(records),
        reached=len(reached),
        times_s=times,
        at_least_s=bounds,
        time_mean_s=time["mean"],
        time_std_s=time["std"],
        time_ci95_s=[time["ci95_low"], time["ci95_high"]],
        test_accuracies=tests,
        test_accuracy_mean=spread(t for t in tests if t is not None)["mean"],
        accuracy_mean=accuracy["mean"],
        accuracy_std=accuracy["std"],
        images_to_target=images,
        images_at_least=image_bounds,
        steps_mean=statistics.fmean(r["steps"] for r in records),
        images_per_s_runs=[r["throughput"]["images_per_s"] for r in records],
        images_per_s=statistics.fmean(r["throughput"]["images_per_s"] for r in records),
    )


def ratio_to(row: dict, reference: dict) -> tuple[float, bool]:
    """How many times `reference`'s mean time to target `row` took, and whether that is exact (every run
    of both reached it) or a lower bound (a run of `row` stopped short: its time counts as what it had
    spent). NaN where `reference` itself missed."""
    if reference["reached"] < reference["runs"] or not reference["reached"]:
        return float("nan"), False
    return statistics.fmean(row["at_least_s"]) / reference["time_mean_s"], row["reached"] == row["runs"]


def ratio_text(ratio: float, exact: bool) -> str:
    """A `ratio_to` result as table text: "2.50x", "> 2.50x" for a lower bound, "" where undefined."""
    return "" if ratio != ratio else f"{'' if exact else '> '}{ratio:.2f}x"


def _times(row: dict) -> str:
    return ", ".join(f"{t:.1f}" if t is not None else f">{b:.0f}" for t, b in zip(row["times_s"], row["at_least_s"]))


def speedrun_table(rows: list[dict], target: float) -> str:
    """Every configuration's runs as a record table: times, mean ± std and 95% interval, against the
    recipe (the first row), full-test accuracy, steps and images/s."""
    recipe = rows[0]

    def mean_text(r: dict) -> str:
        if r["reached"] < r["runs"]:
            return f"> {statistics.fmean(r['at_least_s']):.1f} ({r['reached']}/{r['runs']} reached)"
        if r["runs"] == 1:
            return f"{r['time_mean_s']:.1f} (one run)"  # one run has no spread, not a spread of 0
        low, high = r["time_ci95_s"]
        return f"{r['time_mean_s']:.1f} ± {r['time_std_s']:.1f} [{low:.1f}, {high:.1f}]"

    def against(r: dict) -> str:
        if r is recipe:
            return "1.00x"
        return ratio_text(*ratio_to(r, recipe))

    head = [
        "configuration",
        "runs",
        f"time to {target:.0%} (s) per run",
        "mean ± std [95% interval]",
        "time vs recipe",
        "full test set, per run",
        "steps",
        "images/s",
    ]
    cells = [
        (
            r["name"],
            r["runs"],
            _times(r),
            mean_text(r),
            against(r),
            ", ".join("-" if t is None else f"{t:.4f}" for t in r["test_accuracies"]),
            f"{r['steps_mean']:.0f}",
            f"{r['images_per_s']:,.0f}",
        )
        for r in rows
    ]
    return markdown_table(head, cells)


def leave_one_out_rows(rows: list[dict]) -> list[dict]:
    """What each lever bought: the recipe against the recipe without it (and against the baseline),
    weighed against the runs' spread (`compare_pooled`: the recipe's runs lend their spread to the fewer
    runs without a lever), in time to target (the record's measure) and in its two factors:
    training images to the target (learning per image) and images/s (a step's cost), each run one value.
    A run that stopped short counts as what it had spent, a lower bound, so "slower" or "more images"
    can still be decided, "faster" or "fewer" then not."""
    recipe, out = rows[0], []
    for row in rows[1:]:
        ratio, exact = ratio_to(row, recipe)
        sign, words = _compare_bound(row["at_least_s"], recipe["times_s"], exact)
        kimages = [None if i is None else i / 1000 for i in recipe["images_to_target"]]
        image_sign, image_words = _compare_bound([i / 1000 for i in row["images_at_least"]], kimages, exact)
        rate_sign, rate_words = compare_pooled(row["images_per_s_runs"], recipe["images_per_s_runs"])
        lever = row["name"].removeprefix("without ")
        one_run = min(row["runs"], recipe["runs"]) < 2
        out.append(
            dict(
                configuration=row["name"],
                lever=lever if row["name"] != "baseline" else "all of them",
                ratio=ratio,
                exact=exact,
                sign=sign,
                measured=words,
                verdict="one run: not decided"
                if one_run
                else {">": "pays", "<": "costs", "~": "within the spread"}[sign],
                images_sign=image_sign,
                images_measured=image_words,
                rate_sign=rate_sign,
                rate_measured=rate_words,
                through="one run: not decided" if one_run else _through(image_sign, rate_sign),
            )
        )
    return out


def _compare_bound(without: list[float], recipe: list[float | None], exact: bool) -> tuple[str, str]:
    sign, words = compare_pooled(without, [v for v in recipe if v is not None])
    if sign == "<" and not exact:
        return "~", words + " (a run stopped short: its value is only a lower bound)"
    return sign, words


def _through(image_sign: str, rate_sign: str) -> str:
    """Where a lever's effect shows beyond the spread: in images to the target, in images/s, or neither."""
    parts = []
    if image_sign != "~":
        parts.append(f"{'fewer' if image_sign == '>' else 'more'} images to the target")
    if rate_sign != "~":
        parts.append(f"{'more' if rate_sign == '<' else 'fewer'} images/s")
    return " and ".join(parts) or "neither beyond the spread"


def leave_one_out_table(loo: list[dict]) -> str:
    head = (
        "left out",
        "time to target vs the recipe",
        "times (s), without vs with",
        "the lever",
        "thousand images to target, without vs with",
        "images/s, without vs with",
        "with the lever: beyond the spread",
    )
    cells = [
        (
            r["configuration"],
            ratio_text(r["ratio"], r["exact"]),
            r["measured"],
            f"**{r['verdict']}**",
            r["images_measured"],
            r["rate_measured"],
            r["through"],
        )
        for r in loo
    ]
    return markdown_table(head, cells)


def comparison_markdown(
    runs: dict[str, list[dict]], rows: list[dict], target: float, references_: Iterable[dict] = ()
) -> str:
    """This run's stages beside the published figures and recorded GPU runs, in the same units:
    images/s per device, fraction of peak, time to accuracy, scaling efficiency."""

    def per_device(records: list[dict]) -> float:
        return statistics.fmean(r["throughput"]["images_per_s_per_device"] for r in records)

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.1%}"

    cells = []
    for row in rows:
        records = runs[row["name"]]
        efficiency = ""
        if row["name"] == "recipe" and "without data parallel" in runs:  # per device against one process
            efficiency = f"{per_device(records) / per_device(runs['without data parallel']):.0%}"
        cells.append(
            (
                f"this run: {row['name']} ({records[0]['environment']['device_name']})",
                f"{per_device(records):,.0f}",
                pct(records[0]["flops"]["mfu"]),
                f"{row['time_mean_s']:.1f} s to {target:.0%}" if row["reached"] == row["runs"] else "",
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
    """Bars of mean time to target per configuration, one dot per run; a configuration with a run that
    stopped short is hatched and its bar is a lower bound (open triangles: the runs that missed)."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for i, r in enumerate(rows):
        whole = r["reached"] == r["runs"]
        ax.bar(
            i,
            statistics.fmean(r["at_least_s"]),
            color="tab:green" if i == 0 else "tab:blue",
            hatch=None if whole else "//",
            yerr=r["time_std_s"] if whole and r["reached"] > 1 else None,
            capsize=4,
            alpha=0.8 if whole else 0.35,
        )
        made = [t for t in r["times_s"] if t is not None]
        missed = [b for t, b in zip(r["times_s"], r["at_least_s"]) if t is None]
        ax.scatter([i] * len(made), made, color="black", s=12, zorder=3)
        ax.scatter([i] * len(missed), missed, marker="^", facecolors="none", edgecolors="black", s=30, zorder=3)
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel(f"training seconds to {target:.0%}")
    ax.set_title("the recipe, the baseline, and the recipe without each lever (bars: mean, dots: runs)")
    return save(fig, save_as)
