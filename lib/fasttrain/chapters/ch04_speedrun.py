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
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fasttrain.chapters.ch04_report import (
    comparison_markdown,
    lever_verdicts,
    plot_time_to_accuracy,
    speedrun_table,
    speedup_rows,
    summarize,
    time_to_accuracy,
)
from fasttrain.config import ConfigError, TrainConfig, resolve_profile
from fasttrain.devices import cpu_cores, gpu_count, on_gpu

# What chapter 04's notebook uses besides the stages and the command (the report lives in ch04_report).
__all__ = [
    "CHAPTER_REPEATS",
    "CHAPTER_TARGETS",
    "MIXED_PRECISION_MIN_SPEEDUP",
    "comparison_markdown",
    "lever_verdicts",
    "mixed_precision_speedup",
    "plot_time_to_accuracy",
    "run_stage",
    "speedrun_table",
    "speedup_rows",
    "stage_config",
    "stages",
    "summarize",
    "time_to_accuracy",
]

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
# LARS's peak rate at a reference batch (scaled linearly from there) and its trust coefficient, as this
# stage was tuned: the narrow models of smoke and cpu, and a quarter of both for the full-width gpu model.
LARS_RATES = {
    "smoke": dict(lr=0.05, at_batch=16, eta=0.02),
    "cpu": dict(lr=0.05, at_batch=32, eta=0.02),
    "gpu": dict(lr=0.0125, at_batch=32, eta=0.005),
}
# Chapter 04 trains every stage, so on a CPU it aims lower and runs each stage once: at 80% with two
# repeats its five stages alone would take the whole course's cpu budget (README, "Measured here").
# `make speedrun` keeps TARGETS and gives the spread over 5 runs.
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
    if on_gpu(profile):
        return dict(accelerator="gpu", devices=gpu_count())
    # One rank per core, one thread each (chapter 01): the fairest way to use a CPU's cores with DDP.
    return dict(accelerator="cpu", devices=cpu_cores(), threads_per_rank=1)


def mixed_precision_speedup(profile: str) -> dict[str, float]:
    """Measured, not guessed: a 3x3 convolution's forward and weight-gradient time in fp32 and bf16
    on this profile's device, one thread per rank on a CPU (chapter 02 has the full story)."""
    import torch

    from fasttrain.chapters.ch02_benchmarks import conv_speed

    gpu = on_gpu(profile)
    device = torch.device("cuda" if gpu else "cpu")
    shape = dict(batch=128, channels=256, size=28) if gpu else dict(batch=32, channels=64, size=14)
    seconds = {
        mode: sum(
            conv_speed(device, mode, direction=d, channels_last=True, threads=1, **shape)["seconds"]
            for d in ("forward", "weight_grad")
        )
        for mode in ("fp32", "bf16")
    }
    return dict(fp32_s=seconds["fp32"], bf16_s=seconds["bf16"], speedup=seconds["fp32"] / seconds["bf16"])


def stages(profile: str, low_precision: str | None = None, compile: bool = False) -> list[Stage]:
    """Chapter 00's baseline, then one lever at a time; each stage keeps the levers before it.

    low_precision: "bf16-mixed" where `mixed_precision_speedup` showed it faster on this device, None
    where it is slower (a CPU without bf16 units); compile: add torch.compile as a last stage.
    """
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
    big, lars = LARGE_BATCH[profile], LARS_RATES[profile]
    steps = 2 * DECAY_IMAGES[profile] // big  # large batches need more epochs: twice the images
    levers.update(
        global_batch_size=big,
        optimizer="lars",
        lr=lars["lr"] * base_batch / lars["at_batch"],
        lars_eta=lars["eta"],
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


# ---------------------------------------------------------------------- the command
def _arguments(argv: Iterable[str] | None) -> argparse.Namespace:
    """The command's arguments, checked; the profile resolved and the target filled in."""
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
    args.profile = resolve_profile(args.profile)
    if args.runs < 1 or args.baseline_runs < 1:
        raise ConfigError("Give --runs and --baseline-runs of 1 or more (the full speedrun uses --runs 5).")
    args.target = args.target or TARGETS[args.profile]
    if not 0 < args.target < 1:
        raise ConfigError(f"--target {args.target}: give an accuracy between 0 and 1, e.g. 0.85.")
    return args


def _write_summary(
    profile: str, target: float, env: dict, rows: list[dict], probe: dict, stage: Stage, records
) -> Path:
    from fasttrain.paths import build_dir
    from fasttrain.results import code_version, now_iso, write_record

    summary = dict(
        created=now_iso(),
        profile=profile,
        target=target,
        environment=env,
        code_version=code_version(),
        rows=speedup_rows(rows),
        mixed_precision_probe=probe,
        speedrun_config=stage.overrides,
        records=[r["name"] for r in records],
    )
    return write_record(summary, Path(build_dir()) / "speedrun" / f"summary-{profile}.json")


def main(argv: Iterable[str] | None = None) -> int:
    try:
        args = _arguments(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from fasttrain.paths import build_dir
    from fasttrain.results import code_version, environment

    profile, target = args.profile, args.target
    probe = mixed_precision_speedup(profile)
    low = "bf16-mixed" if probe["speedup"] >= MIXED_PRECISION_MIN_SPEEDUP else None
    fastest_stage = speedrun_stage(profile, low)
    env = environment()
    print(
        f"speedrun, profile {profile}: target {target:.0%} validation accuracy on Fashion-MNIST\n"
        f"hardware: {env.get('cpu')}, {cpu_cores()} cores"
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
    print("\n" + speedrun_table(rows, target))
    path = _write_summary(profile, target, env, rows, probe, fastest_stage, baseline + fastest)
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
