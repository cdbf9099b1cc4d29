"""The speedrun: the fastest recipe this library knows to a fixed Fashion-MNIST accuracy, every lever
measured by leaving it out.

In the spirit of airbench (KellerJordan/cifar10-airbench): one fixed target, n runs, every run's time
and its mean, spread and 95% interval, each run's accuracy on the whole 10,000-image test set, the
hardware, versions and code beside them, and the chapter-00 baseline timed to the same target in the
same invocation, so the speed-up is one measurement.

    python -m fasttrain.chapters.ch04_speedrun                          # this machine's profile
    python -m fasttrain.chapters.ch04_speedrun --profile smoke --runs 2 --loo-runs 1

Time to accuracy counts training steps only, as chapter 00 does: from the first step to the first
validation at or above the target (validation itself off the clock, warm-up on it). The recipe is the
baseline with every lever below switched on; "without <lever>" is the recipe with that one lever set
back to the baseline's value. A configuration other than the recipe stops after a multiple of the
recipe's mean time (CAP_FACTOR): one that has not reached the target by then counts as "more than" its time.
Chapter 04 runs the same configurations through `speedrun`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fasttrain.chapters.ch04_report import (
    comparison_markdown,
    leave_one_out_rows,
    leave_one_out_table,
    plot_time_to_accuracy,
    ratio_to,
    speedrun_table,
    summarize,
    time_to_accuracy,
)
from fasttrain.config import ConfigError, TrainConfig, resolve_profile
from fasttrain.devices import cpu_cores, gpu_count, on_gpu

__all__ = [
    "PLANS",
    "MIXED_PRECISION_MIN_SPEEDUP",
    "TARGETS",
    "comparison_markdown",
    "configurations",
    "leave_one_out_rows",
    "leave_one_out_table",
    "levers",
    "mixed_precision_speedup",
    "plot_time_to_accuracy",
    "run_config",
    "speedrun",
    "speedrun_table",
    "summarize",
    "time_to_accuracy",
]

# The validation accuracy every run of the recipe must reach, on the profile's validation set (cpu: a
# fixed 2,000-image subset of the test split; gpu: all of it). Linear models reach the low-to-mid 80s on
# Fashion-MNIST and ResNet-18 94.9% (docs/references.md). `smoke` aims lower: it runs in CI, where 85%
# took 60 s of training per run here (the chapter says so from its own numbers).
TARGETS = {"smoke": 0.75, "cpu": 0.90, "gpu": 0.94}


@dataclass(frozen=True)
class Plan:
    """How many runs of what: the recipe's runs, the baseline's, and each leave-one-out's."""

    target: float
    runs: int
    baseline_runs: int
    loo_runs: int


# How many runs `make speedrun` makes, and chapter 04 with it: the chapter trains exactly the command's
# jobs, so whichever runs second reads the other's finished runs (cpu: about two hours on 2 cores, README).
# smoke: no leave-one-out, whose 6 jobs would add 6 minutes to CI and decide nothing with one run each.
PLANS = {
    "smoke": Plan(TARGETS["smoke"], 2, 1, 0),
    "cpu": Plan(TARGETS["cpu"], 5, 1, 2),
    "gpu": Plan(TARGETS["gpu"], 5, 2, 3),
}

# The recipe's values. Its batch and rate follow the linear rule from the baseline's lr at its batch.
RECIPE_WIDTH = {"smoke": 0.125, "cpu": 0.125, "gpu": 0.5}
RECIPE_BATCH = {"smoke": 128, "cpu": 128, "gpu": 512}
NESTEROV_WEIGHT_DECAY = 5e-4
LABEL_SMOOTHING = 0.1
WARMUP_FRACTION = 0.05  # of the schedule's steps
# The schedule decays the rate to zero over this many training images (cpu: two epochs); a run at a
# constant rate gets three times as many, and stops at the time cap first.
HORIZON_IMAGES = {"smoke": 16_384, "cpu": 120_000, "gpu": 1_200_000}
CONSTANT_RATE_BUDGET = 3
# Validate about this often, in training images, whatever the batch: every configuration is checked
# at the same resolution.
VALIDATE_EVERY_IMAGES = {"smoke": 1280, "cpu": 3840, "gpu": 60_000}
# The others stop after this many times the recipe's mean time to target: the baseline past the 2x the
# recipe must beat it by (validation-free training time, so a baseline stopped there decides that claim),
# a leave-one-out once it has shown that the lever more than halves the time.
CAP_FACTOR = dict(baseline=2.5, leave_one_out=2.0)
MIXED_PRECISION_MIN_SPEEDUP = 1.2  # below this a measured gain is too small to trust on a noisy machine


@dataclass(frozen=True)
class Lever:
    """One lever: what it is, the recipe's values, and the baseline's (what leaving it out restores)."""

    name: str
    what: str
    on: dict = field(default_factory=dict)
    off: dict = field(default_factory=dict)


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


def levers(profile: str, low_precision: str | None = None) -> list[Lever]:
    """The recipe's levers, each against chapter 00's baseline. low_precision: "bf16-mixed" where
    `mixed_precision_speedup` showed it faster on this device (a lever only there); a width or a
    data-parallel lever only where the recipe differs from the baseline in it."""
    profile = resolve_profile(profile)
    base = TrainConfig.from_profile(profile)
    batch = RECIPE_BATCH[profile]
    out = [
        Lever(
            "schedule",
            f"warm-up over the first {WARMUP_FRACTION:.0%} of steps, then a linear decay to zero",
            dict(schedule="linear"),
            dict(schedule=base.schedule),
        ),
        Lever(
            "optimizer",
            f"SGD with Nesterov momentum and weight decay {NESTEROV_WEIGHT_DECAY:g} (baseline: heavy-ball, "
            f"{base.weight_decay:g})",
            dict(nesterov=True, weight_decay=NESTEROV_WEIGHT_DECAY),
            dict(nesterov=base.nesterov, weight_decay=base.weight_decay),
        ),
        Lever(
            "batch and rate",
            f"batch {batch} at lr {base.lr:g} x {batch}/{base.global_batch_size} (the linear rule; "
            f"baseline: {base.global_batch_size} at {base.lr:g})",
            dict(global_batch_size=batch, base_batch_size=base.global_batch_size),
            dict(global_batch_size=base.global_batch_size, base_batch_size=None),
        ),
        Lever(
            "label smoothing",
            f"training targets put {LABEL_SMOOTHING:g} of their mass evenly on every class",
            dict(label_smoothing=LABEL_SMOOTHING),
            dict(label_smoothing=0.0),
        ),
        Lever("channels_last", "channels_last memory layout", dict(channels_last=True), dict(channels_last=False)),
    ]
    if RECIPE_WIDTH[profile] != base.width:
        out.append(
            Lever(
                "width",
                f"ResNet-50 at width {RECIPE_WIDTH[profile]:g} (baseline: {base.width:g})",
                dict(width=RECIPE_WIDTH[profile]),
                dict(width=base.width),
            )
        )
    hardware = _hardware(profile)
    if hardware["devices"] > 1:
        out.append(
            Lever(
                "data parallel",
                f"DDP over {hardware['devices']} ranks"
                + (", one thread each (baseline: one process, every core)" if not on_gpu(profile) else ""),
                hardware,
                dict(devices=1, accelerator=base.accelerator, threads_per_rank=None),
            )
        )
    if low_precision:
        out.append(Lever("mixed precision", low_precision, dict(precision=low_precision), dict(precision="32-true")))
    return out


def configurations(profile: str, low_precision: str | None = None) -> dict[str, dict[str, Any]]:
    """Every configuration by name: the recipe, chapter 00's baseline, and "without <lever>" for each."""
    recipe_levers = levers(profile, low_precision)
    recipe = {k: v for lever in recipe_levers for k, v in lever.on.items()}
    out = {"recipe": recipe, "baseline": {}}
    for lever in recipe_levers:
        out[f"without {lever.name}"] = {**recipe, **lever.off}
    return out


def run_config(
    name: str, values: dict, profile: str, seed: int = 0, target: float | None = None, cap_s: float | None = None
) -> TrainConfig:
    """The training job of one configuration: validates at a fixed image interval, stops at the target
    (or at cap_s seconds in fit), and measures the whole test set at the end."""
    profile = resolve_profile(profile)
    config = TrainConfig.from_profile(profile, **values)
    scheduled = config.schedule != "constant"
    images = HORIZON_IMAGES[profile] * (1 if scheduled else CONSTANT_RATE_BUDGET)
    steps = max(10, images // config.global_batch_size)
    return config.replace(
        max_steps=steps,
        warmup_steps=max(1, int(steps * WARMUP_FRACTION)) if scheduled else 0,
        seed=seed,
        target_accuracy=target or TARGETS[profile],
        val_every_steps=max(1, VALIDATE_EVERY_IMAGES[profile] // config.global_batch_size),
        checkpoint_every_steps=0,
        timing_warmup_steps=3,
        test_full=True,
        max_train_time_s=round(cap_s, 1) if cap_s else None,
        name=f"speedrun-{'-'.join(re.findall(r'[a-z0-9]+', name.lower()))}-s{seed}",
        extra=dict(chapter="04", configuration=name),
    ).validate()


def _finished(config: TrainConfig) -> dict | None:
    """The finished record of this job in the runs folder (same config, same training code), else None."""
    from fasttrain import rundir
    from fasttrain.launch.reuse import finished_record
    from fasttrain.paths import runs_dir

    return finished_record(rundir.folder_for(config.to_dict(), runs_dir()), config)


def _train(name, values, profile, runs, target, cap_s, show, say, finished_only=False) -> list[dict]:
    from fasttrain import launch

    records = []
    for seed in range(runs):
        config = run_config(name, values, profile, seed, target, cap_s)
        if finished_only:
            record = _finished(config)
            if record is None:
                say(f"{name:>26}  seed {seed}  not trained yet: left out of this report")
                break
        else:
            # The launcher's own timeout sits well past the cap: a stalled job still ends.
            record = launch.run(config, timeout=max(600.0, 4 * (cap_s or 1800)), show=show)
        tta = time_to_accuracy(record, config.target_accuracy)
        test = record.get("test", {}).get("accuracy", float("nan"))
        reached = f"reached {config.target_accuracy:.0%} in {tta:6.1f} s" if tta is not None else "did NOT reach"
        stop = f"stopped at {record['timing']['train_time_s']:.0f} s" if tta is None else f"{record['steps']} steps"
        say(f"{name:>26}  seed {seed}  {reached}  ({stop}, full test set {test:.3f})")
        records.append(record)
    return records


def speedrun(
    profile: str,
    plan: Plan,
    low_precision: str | None = None,
    show: str = "none",
    say: Callable[[str], None] = print,
    finished_only: bool = False,
) -> dict[str, list[dict]]:
    """Train the recipe `plan.runs` times, then the baseline and every leave-one-out, each capped at
    CAP_FACTOR times the recipe's mean time to target; returns every configuration's records by name.
    finished_only: train nothing, read the runs an earlier (perhaps interrupted) invocation finished."""
    profile = resolve_profile(profile)
    configs = configurations(profile, low_precision)
    runs = {
        "recipe": _train("recipe", configs["recipe"], profile, plan.runs, plan.target, None, show, say, finished_only)
    }
    if len(runs["recipe"]) < plan.runs:  # the caps follow from all of the recipe's runs
        raise ConfigError(
            f"Only {len(runs['recipe'])} of the recipe's {plan.runs} runs are finished: run without --finished-only."
        )
    # A recipe run that missed counts as the time it trained (its schedule's end): the caps stay bounded.
    mean = statistics.fmean(
        t if t is not None else r["timing"]["train_time_s"]
        for r in runs["recipe"]
        for t in [time_to_accuracy(r, plan.target)]
    )
    for name, values in configs.items():
        if name != "recipe":
            kind = "baseline" if name == "baseline" else "leave_one_out"
            n = plan.baseline_runs if kind == "baseline" else plan.loo_runs
            cap = CAP_FACTOR[kind] * mean
            if n:
                records = _train(name, values, profile, n, plan.target, cap, show, say, finished_only)
                if records:
                    runs[name] = records
    return runs


def plain_loop_images_per_s(profile: str, low_precision: str | None, steps: int = 30) -> dict[str, Any]:
    """The recipe's model, batch and layout in a plain PyTorch loop (`make bench`'s), in one process (the
    recipe without data parallelism, where it has that lever): what the Lightning job is measured against."""
    from fasttrain import bench

    configs = configurations(profile, low_precision)
    values = configs.get("without data parallel", configs["recipe"])
    config = TrainConfig.from_profile(profile, **values).replace(
        max_steps=steps, timing_warmup_steps=5, val_every_steps=0, comm_hook="none"
    )
    step_s = bench.run_variant("plain", config)
    return dict(images_per_s=config.global_batch_size / step_s, steps=steps, config=config.to_dict())


# ---------------------------------------------------------------------- the command
def _arguments(argv: Iterable[str] | None) -> argparse.Namespace:
    """The command's arguments, checked; the profile resolved and the plan filled in."""
    parser = argparse.ArgumentParser(
        prog="python -m fasttrain.chapters.ch04_speedrun",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--profile", default="auto", help="smoke, cpu, gpu or auto (default)")
    parser.add_argument("--runs", type=int, help="runs of the recipe (default: smoke 2, cpu and gpu 5)")
    parser.add_argument("--baseline-runs", type=int, help="runs of the chapter-00 baseline (default 1; gpu 2)")
    parser.add_argument("--loo-runs", type=int, help="runs of each leave-one-out (default: smoke 0, cpu 2, gpu 3)")
    parser.add_argument("--target", type=float, help="validation accuracy to reach (default: the profile's)")
    parser.add_argument("--no-plain-loop", action="store_true", help="skip the plain PyTorch loop's images/s")
    parser.add_argument(
        "--finished-only", action="store_true", help="train nothing: report the runs an earlier invocation finished"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    args.profile = resolve_profile(args.profile)
    default = PLANS[args.profile]
    plan = Plan(
        args.target if args.target is not None else default.target,
        default.runs if args.runs is None else args.runs,
        default.baseline_runs if args.baseline_runs is None else args.baseline_runs,
        default.loo_runs if args.loo_runs is None else args.loo_runs,
    )
    if plan.runs < 1 or plan.baseline_runs < 0 or plan.loo_runs < 0:
        raise ConfigError("Give --runs of 1 or more, and --baseline-runs and --loo-runs of 0 or more.")
    if not 0 < plan.target < 1:
        raise ConfigError(f"--target {plan.target}: give an accuracy between 0 and 1, e.g. 0.85.")
    args.plan = plan
    return args


def summary(
    profile: str,
    plan: Plan,
    runs: dict[str, list[dict]],
    low_precision: str | None,
    probe: dict,
    plain: dict | None,
    env: dict,
) -> dict[str, Any]:
    """The record of one invocation: what an airbench-style table needs, and the exact recipe."""
    from fasttrain.results import code_version, now_iso

    recipe_config = runs["recipe"][0]["config"]
    rows = [summarize(name, records, plan.target) for name, records in runs.items()]
    return dict(
        created=now_iso(),
        profile=profile,
        target=plan.target,
        validation_images=recipe_config["val_samples"] or 10_000,
        plan=vars(plan),
        environment={**env, "cores": cpu_cores(), "device": runs["recipe"][0]["environment"]["device_name"]},
        code_version=code_version(),
        recipe=dict(
            levers=[vars(lever) for lever in levers(profile, low_precision)],
            config={k: v for k, v in recipe_config.items() if k not in ("seed", "name", "extra")},
        ),
        cap_factor=CAP_FACTOR,
        rows=rows,
        leave_one_out=leave_one_out_rows(rows),
        speedup_vs_baseline=_speedup(rows),
        mixed_precision_probe=probe,
        plain_loop=plain,
        records=[r["name"] for records in runs.values() for r in records],
    )


def _speedup(rows: list[dict]) -> dict[str, Any] | None:
    """The baseline's time over the recipe's: exact, or "at least" where a baseline run stopped short."""
    base = next((r for r in rows if r["name"] == "baseline"), None)
    if base is None:
        return None
    value, exact = ratio_to(base, rows[0])
    return dict(value=value, exact=exact)


def main(argv: Iterable[str] | None = None) -> int:
    try:
        args = _arguments(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from fasttrain.paths import build_dir
    from fasttrain.results import code_version, environment, write_record

    profile, plan = args.profile, args.plan
    probe = mixed_precision_speedup(profile)
    low = "bf16-mixed" if probe["speedup"] >= MIXED_PRECISION_MIN_SPEEDUP else None
    env = environment()
    print(
        f"speedrun, profile {profile}: target {plan.target:.0%} validation accuracy on Fashion-MNIST; "
        f"recipe {plan.runs} run(s), baseline {plan.baseline_runs}, each leave-one-out {plan.loo_runs}\n"
        f"hardware: {env.get('cpu')}, {cpu_cores()} cores"
        + (f", GPU {env.get('gpus')}" if env.get("gpus") else "")
        + f"; torch {env['torch']}, Lightning {env['lightning']}; code {code_version()}\n"
        f"bf16 convolutions run {probe['speedup']:.2f}x as fast as fp32 here: mixed precision "
        f"{'on' if low else 'off'}\nrecipe: "
        + "; ".join(f"{lever.name}: {lever.what}" for lever in levers(profile, low)),
        flush=True,
    )
    try:
        runs = speedrun(profile, plan, low, finished_only=args.finished_only)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    plain = None if args.no_plain_loop or args.finished_only else plain_loop_images_per_s(profile, low)
    record = summary(profile, plan, runs, low, probe, plain, env)
    print("\n" + speedrun_table(record["rows"], plan.target))
    if len(record["rows"]) > 2:
        print("\nleave-one-out, against the recipe:\n" + leave_one_out_table(record["leave_one_out"]))
    if plain:
        lightning = next((r for r in record["rows"] if r["name"] == "without data parallel"), record["rows"][0])
        print(
            f"\nimages/s: a plain PyTorch loop of the same model {plain['images_per_s']:,.0f}; the library's job "
            f"({lightning['name']}) {lightning['images_per_s']:,.0f}"
        )
    from fasttrain import references as ref

    print("\nfor scale (published accuracies; no published time-to-accuracy record was found):")
    for figure in (ref.SMALL_TARGET_FINDINGS[0], ref.FMNIST_SMALL_CONV, ref.FMNIST_RESNET18):
        print("  " + figure.cite())
    path = write_record(record, Path(build_dir()) / "speedrun" / f"summary-{profile}.json")
    print(f"\nsummary written to {path}; the records of every run are in {Path(build_dir()) / 'runs'}")
    missed = record["rows"][0]["runs"] - record["rows"][0]["reached"]
    if missed:
        print(f"error: the recipe did not reach {plan.target:.0%} in {missed} of its runs.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
