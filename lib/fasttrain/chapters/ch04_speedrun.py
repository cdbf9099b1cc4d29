"""The whole recipe, lever by lever, and the speedrun: the fastest way this library knows to a fixed
validation accuracy on Fashion-MNIST, on the machine at hand.

In the spirit of airbench (KellerJordan/cifar10-airbench): one fixed target, n runs, the mean and
spread of the time to reach it, the hardware and code version beside them, and the chapter-00
baseline timed to the same target in the same invocation, so the speed-up is one measurement.

    python -m fasttrain.chapters.ch04_speedrun                          # this machine's profile, 5 runs
    python -m fasttrain.chapters.ch04_speedrun --profile smoke --runs 2

Time to accuracy counts training steps only, as chapter 00 does: from the first step to the first
validation at or above the target (validation itself off the clock, compilation and warm-up on it).
Chapter 04 trains the same `stages`, adding one lever at a time; the last stage is the speedrun.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fasttrain.chapters.ch03_large_batch import (
    time_to_accuracy,  # training seconds to the first validation past a target
)
from fasttrain.config import ConfigError, TrainConfig, resolve_profile

# The validation accuracy every run must reach (on the profile's validation set). `cpu`: chapter 00's
# target, which the baseline needs minutes for on a 2-core machine.
TARGETS = {"smoke": 0.55, "cpu": 0.80, "gpu": 0.90}
# Validate about this often, in training images, whatever the batch: the clock stops at the first
# validation past the target, so every configuration is checked at the same resolution.
VALIDATE_EVERY_IMAGES = {"smoke": 1280, "cpu": 1600, "gpu": 25_600}
# The most training images a run may use before it counts as "did not reach" (the baseline's budget).
IMAGE_BUDGET = {"smoke": 8 * 1024, "cpu": 96_000, "gpu": 1_280_000}
# The schedule lever decays the learning rate to zero over this many images: long enough to reach
# the target (measured on the 2-core machine), short enough that the decay helps to get there.
DECAY_IMAGES = {"smoke": 4096, "cpu": 12_800, "gpu": 256_000}
LARGE_BATCH = {"smoke": 256, "cpu": 256, "gpu": 2048}
# Chapter 04 trains every stage, so on a CPU it aims lower and runs each stage once: at 80% with two
# repeats its five stages took 30 minutes (1,778 s) on the 2-core machine (AMD EPYC), the whole
# course's budget. `make speedrun` keeps TARGETS and gives the spread over 5 runs.
CHAPTER_TARGETS = {**TARGETS, "cpu": 0.75}
CHAPTER_REPEATS = {"smoke": 1, "cpu": 1, "gpu": 3}
MIXED_PRECISION_MIN_SPEEDUP = 1.2  # below this a measured gain is too small to trust on a noisy machine


@dataclass(frozen=True)
class Stage:
    """One configuration of the recipe: a name, what it adds, and its config overrides."""

    name: str
    adds: str
    overrides: dict = field(default_factory=dict)


def _hardware(profile: str) -> dict[str, Any]:
    import torch

    if profile == "gpu" and torch.cuda.is_available():
        return dict(accelerator="gpu", devices=torch.cuda.device_count())
    # One rank per core, one thread each (chapter 01): the fairest way to use a CPU's cores with DDP.
    return dict(accelerator="cpu", devices=os.cpu_count() or 1, threads_per_rank=1)


def mixed_precision_speedup(profile: str) -> dict[str, float]:
    """Measured, not guessed: a 3x3 convolution's forward and weight-gradient time in fp32 and bf16
    on this profile's device, one thread per rank on a CPU (chapter 02 has the full story)."""
    import torch

    from fasttrain.chapters.ch02_precision import conv_speed

    device = torch.device("cuda" if profile == "gpu" and torch.cuda.is_available() else "cpu")
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        shape = dict(batch=32, channels=64, size=14) if device.type == "cpu" else dict(batch=128, channels=256, size=28)
        seconds = {
            mode: sum(
                conv_speed(device, mode, direction=d, channels_last=True, repeats=5, **shape)["seconds"]
                for d in ("forward", "weight_grad")
            )
            for mode in ("fp32", "bf16")
        }
    finally:
        torch.set_num_threads(threads)
    return dict(fp32_s=seconds["fp32"], bf16_s=seconds["bf16"], speedup=seconds["fp32"] / seconds["bf16"])


def stages(profile: str, low_precision: str | None = None, compile: bool = False) -> list[Stage]:
    """Chapter 00's baseline, then one lever at a time; each stage keeps the levers before it.

    low_precision: "bf16-mixed" where `mixed_precision_speedup` showed it faster on this device, None
    where it is slower (a CPU without bf16 units); compile: add torch.compile as a last stage.
    """
    from fasttrain.chapters.ch03_large_batch import plan_for

    profile = resolve_profile(profile)
    base_batch = TrainConfig.from_profile(profile).global_batch_size
    hardware = _hardware(profile)
    horizon = DECAY_IMAGES[profile] // base_batch
    out = [Stage("baseline", f"chapter 00: one device, fp32, SGD at a constant rate, batch {base_batch}")]
    levers: dict[str, Any] = dict(
        optimizer="adamw", lr=0.003, schedule="linear", warmup_steps=max(1, horizon // 10), max_steps=horizon
    )
    out.append(Stage("schedule", f"AdamW, warm-up, linear decay to 0 over {horizon} steps", dict(levers)))
    levers["channels_last"] = True
    adds = "channels_last memory layout"
    if low_precision:
        levers["precision"] = low_precision
        adds = f"{low_precision} and " + adds
    out.append(Stage("precision + layout", adds, dict(levers)))
    if hardware["devices"] > 1:
        levers.update(hardware)
        out.append(Stage("data parallel", f"DDP over {hardware['devices']} ranks, same global batch", dict(levers)))
    big, plan = LARGE_BATCH[profile], plan_for(profile)
    steps = 2 * DECAY_IMAGES[profile] // big  # large batches need more epochs: twice the images
    levers.update(
        global_batch_size=big,
        optimizer="lars",
        lr=plan.lars_lr * base_batch / plan.base_batch_size,
        lars_eta=plan.lars_eta,
        base_batch_size=base_batch,
        max_steps=steps,
        warmup_steps=max(1, steps // 5),
    )
    out.append(Stage("large batch", f"batch {big}: LARS, linear scaling rule, warm-up, {steps} steps", dict(levers)))
    if compile:
        levers["compile"] = True
        out.append(Stage("torch.compile", "compiled model (compile time on the clock)", dict(levers)))
    return out


def speedrun_stage(profile: str, low_precision: str | None = None) -> Stage:
    """The speedrun's configuration: the levers that paid on the 2-core machine (chapter 04 measures
    each one), plus data parallelism where there are several GPUs. On that machine data parallelism
    over its two cores bought nothing (within the run-to-run spread) and the large batch lost time to
    the target, so they are left out."""
    recipe = {s.name: s for s in stages(profile, low_precision)}
    names = [n for n in recipe if n != "baseline"]
    last = "data parallel" if resolve_profile(profile) == "gpu" and "data parallel" in recipe else "precision + layout"
    return Stage("speedrun", " + ".join(names[: names.index(last) + 1]), recipe[last].overrides)


def _steps(profile: str, batch: int) -> int:
    """The step budget at `batch`: the baseline's budget of training images."""
    return max(10, IMAGE_BUDGET[profile] // batch)


def stage_config(stage: Stage, profile: str, seed: int = 0, target: float | None = None) -> TrainConfig:
    """The training job of one stage: stops at the target, validates at a fixed image interval."""
    profile = resolve_profile(profile)
    batch = stage.overrides.get("global_batch_size", TrainConfig.from_profile(profile).global_batch_size)
    values: dict[str, Any] = dict(max_steps=_steps(profile, batch))
    values.update(stage.overrides)  # a schedule's own horizon wins over the budget
    values.update(
        seed=seed,
        target_accuracy=target or TARGETS[profile],
        val_every_steps=max(1, VALIDATE_EVERY_IMAGES[profile] // batch),
        checkpoint_every_steps=0,
        timing_warmup_steps=min(5, values["max_steps"] // 4),
        extra=dict(chapter="04", stage=stage.name),
    )
    return TrainConfig.from_profile(profile, **values).validate()


def run_stage(
    stage: Stage, profile: str, repeats: int, target: float | None = None, prefix: str = "04", timeout: float = 3600
) -> list[dict]:
    """Train one stage `repeats` times (seeds 0, 1, ...); returns the records."""
    from fasttrain import launch

    records = []
    for seed in range(repeats):
        config = stage_config(stage, profile, seed, target)
        slug = "-".join(re.findall(r"[a-z0-9]+", stage.name.lower()))
        record = launch.run(config, name=f"{prefix}-{slug}-s{seed}", timeout=timeout, show="none")
        tta = time_to_accuracy(record, config.target_accuracy)
        print(
            f"{stage.name:>16}  seed {seed}  "
            + (
                f"reached {config.target_accuracy:.0%} in {tta:6.1f} s"
                if tta is not None
                else f"did NOT reach {config.target_accuracy:.0%}"
            )
            + f"  ({record['steps']} steps, accuracy {record['final_val_accuracy']:.3f})",
            flush=True,
        )
        records.append(record)
    return records


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(name: str, records: list[dict], target: float) -> dict[str, Any]:
    """Mean and spread of time to target and of final accuracy over a stage's runs."""
    times = [time_to_accuracy(r, target) for r in records]
    reached = [t for t in times if t is not None]
    mean, std = _mean_std(reached)
    acc_mean, acc_std = _mean_std([r["final_val_accuracy"] for r in records])
    return dict(
        name=name,
        runs=len(records),
        reached=len(reached),
        time_mean_s=mean,
        time_std_s=std,
        times_s=times,
        accuracy_mean=acc_mean,
        accuracy_std=acc_std,
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


def markdown_table(rows: list[dict], target: float) -> str:
    lines = [
        f"| configuration | runs | reached {target:.0%} | time to {target:.0%} (s), mean ± std | speed-up | "
        "final accuracy, mean ± std | steps | images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def spread(std: float, n: int, digits: int) -> str:
        return f" ± {std:.{digits}f}" if n > 1 else " (one run)"  # one run has no spread, not a spread of 0

    for r in speedup_rows(rows):
        lines.append(
            f"| {r['name']} | {r['runs']} | {r['reached']}/{r['runs']} | {r['time_mean_s']:.1f}"
            f"{spread(r['time_std_s'], r['reached'], 1)} | {r['speedup']:.2f}x | "
            f"{r['accuracy_mean']:.3f}{spread(r['accuracy_std'], r['runs'], 3)} | "
            f"{r['steps_mean']:.0f} | {r['images_per_s']:,.0f} |"
        )
    return "\n".join(lines)


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
    from fasttrain import references as ref

    def per_device(records: list[dict]) -> float:
        return statistics.fmean(r["throughput"]["images_per_s_per_device"] for r in records)

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.1%}"

    lines = [
        "| what | images/s per device | fraction of peak | time to accuracy | scaling efficiency |",
        "|---|---|---|---|---|",
    ]
    names = list(runs)
    for row in rows:
        records = runs[row["name"]]
        efficiency = ""
        if row["name"] == "data parallel":  # per device against the stage before it on one process
            efficiency = f"{per_device(records) / per_device(runs[names[names.index(row['name']) - 1]]):.0%}"
        lines.append(
            f"| this run: {row['name']} ({records[0]['environment']['device_name']}) | "
            f"{per_device(records):,.0f} | {pct(records[0]['flops']['mfu'])} | "
            f"{row['time_mean_s']:.1f} s to {target:.0%} | {efficiency} |"
        )
    lines += [
        f"| Jia et al.: ResNet-50, ImageNet, 2,048 P40 | | | {ref.JIA_2048_MINUTES.value} min to "
        f"{ref.JIA_2048_TOP1.value}% top-1 | {ref.JIA_SCALING_EFFICIENCY.value}% |",
        f"| Goyal et al.: 256 P100, batch 8K | | | 1 hour to {ref.GOYAL_TOP1.value}% top-1 | "
        f"~{ref.GOYAL_SCALING_EFFICIENCY.value}% (8 to 256 GPUs) |",
        f"| NVIDIA: A100 80GB, AMP | {ref.A100_AMP_1GPU.value:,.0f} | {ref.A100_AMP_MFU.value}% of bf16 peak | | "
        f"{ref.A100_AMP_8GPU.value / (8 * ref.A100_AMP_1GPU.value):.0%} (8 GPUs) |",
    ]
    for r in references_:
        lines.append(
            f"| recorded: {r.get('name')} on {r['environment']['device_name']} ({r['config']['precision']}) | "
            f"{r['throughput']['images_per_s_per_device']:,.0f} | {pct(r['flops']['mfu'])} | | |"
        )
    return "\n".join(lines)


def plot_time_to_accuracy(rows: list[dict], target: float, save_as: str | None = None):
    """Bars of mean time to target per configuration, one dot per run."""
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    from fasttrain.plots import _save

    _save(fig, save_as)
    return fig


# ---------------------------------------------------------------------- the command
def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fasttrain.chapters.ch04_speedrun",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--profile", default="auto", help="smoke, cpu, gpu or auto (default)")
    parser.add_argument("--runs", type=int, default=5, help="runs of the fastest configuration (default 5)")
    parser.add_argument("--baseline-runs", type=int, default=2, help="runs of the chapter-00 baseline (default 2)")
    parser.add_argument(
        "--target", type=float, default=None, help="validation accuracy to reach (default: the profile's)"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        profile = resolve_profile(args.profile)
        if args.runs < 1 or args.baseline_runs < 1:
            raise ConfigError("Give --runs and --baseline-runs of 1 or more (the full speedrun uses --runs 5).")
        target = args.target or TARGETS[profile]
        if not 0 < target < 1:
            raise ConfigError(f"--target {target}: give an accuracy between 0 and 1, e.g. 0.85.")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from fasttrain.paths import build_dir
    from fasttrain.results import code_version, environment, now_iso, write_record

    probe = mixed_precision_speedup(profile)
    low = "bf16-mixed" if probe["speedup"] >= MIXED_PRECISION_MIN_SPEEDUP else None
    fastest_stage = speedrun_stage(profile, low)
    env = environment()
    print(
        f"speedrun, profile {profile}: target {target:.0%} validation accuracy on Fashion-MNIST\n"
        f"hardware: {env.get('cpu')}, {os.cpu_count()} cores"
        + (f", GPU {env.get('gpus')}" if env.get("gpus") else "")
        + f"; torch {env['torch']}, Lightning {env['lightning']}; code {code_version()}\n"
        f"bf16 convolutions run {probe['speedup']:.2f}x as fast as fp32 here: mixed precision "
        f"{'on' if low else 'off'}",
        flush=True,
    )
    baseline = run_stage(stages(profile)[0], profile, args.baseline_runs, target, prefix="speedrun")
    fastest = run_stage(fastest_stage, profile, args.runs, target, prefix="speedrun")
    rows = [
        summarize("chapter-00 baseline", baseline, target),
        summarize("speedrun: " + fastest_stage.adds, fastest, target),
    ]
    print("\n" + markdown_table(rows, target))
    summary = dict(
        created=now_iso(),
        profile=profile,
        target=target,
        environment=env,
        code_version=code_version(),
        rows=speedup_rows(rows),
        mixed_precision_probe=probe,
        speedrun_config=fastest_stage.overrides,
        records=[r["name"] for r in baseline + fastest],
    )
    path = write_record(summary, Path(build_dir()) / "speedrun" / f"summary-{profile}.json")
    print(f"\nsummary written to {path}; the records of every run are in {Path(build_dir()) / 'runs'}")
    missed = [r for r in rows if r["reached"] < r["runs"]]
    if missed:
        print(
            f"error: {', '.join(r['name'] for r in missed)} did not reach {target:.0%} in every run.", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
