#!/usr/bin/env python
"""Full-size ResNet-50 throughput on one GPU, recorded as reference runs (results/reference/).

    PYTHONPATH=lib python3 ci/gpu_check.py                 # on a GPU: the real check (< 8 minutes)
    PYTHONPATH=lib python3 ci/gpu_check.py --tiny          # on a CPU: the same code path, seconds

Each configuration is a real training job started through fasttrain.launch (the path the chapters
use): torchvision's ResNet-50 at 224x224 on synthetic images made on the device, in fp32, TF32 and
bf16-mixed, with and without channels_last, at batch sizes that fill the card. Every job writes a
result record naming its hardware and versions; this script prints a table and copies the records
to --out. It needs nothing newer than torch 2.11 and no papermill.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

import torch  # noqa: E402
from fasttrain import launch  # noqa: E402
from fasttrain.config import TrainConfig  # noqa: E402
from fasttrain.paths import reference_dir  # noqa: E402

# name, precision, matmul precision, channels_last, global batch
GPU_RUNS = [
    ("fp32", "32-true", "highest", False, 256),
    ("tf32", "32-true", "high", False, 256),
    ("bf16-mixed", "bf16-mixed", "high", False, 256),
    ("bf16-mixed-cl", "bf16-mixed", "high", True, 256),
    ("bf16-mixed-cl-b512", "bf16-mixed", "high", True, 512),
    ("tf32-cl-b512", "32-true", "high", True, 512),
]


def configs(tiny: bool, steps: int) -> list[TrainConfig]:
    out = []
    for name, precision, matmul, channels_last, batch in GPU_RUNS:
        if tiny and name not in ("fp32", "tf32-cl-b512"):
            continue  # bf16 on a CPU without bf16 units takes minutes (chapter 02); two runs cover the path
        values = dict(
            data="synthetic",
            image_size=224,
            in_channels=3,
            num_classes=1000,
            width=1.0,
            small_input=False,
            accelerator="gpu",
            devices=1,
            precision=precision,
            matmul_precision=matmul,
            channels_last=channels_last,
            global_batch_size=batch,
            max_steps=steps,
            timing_warmup_steps=max(3, steps // 4),
            val_every_steps=0,
            val_samples=batch,
            train_samples=batch * 8,
            profile="gpu",
            name=name,
        )
        if tiny:
            values.update(
                image_size=32,
                width=0.125,
                small_input=True,
                accelerator="cpu",
                global_batch_size=8,
                max_steps=4,
                timing_warmup_steps=1,
                val_samples=8,
                train_samples=64,
                profile="smoke",
            )
        out.append(TrainConfig.from_dict(values).validate())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU mode: the same code path, tiny sizes")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per configuration")
    parser.add_argument("--out", default=None, help="where records go (default results/reference/<device>)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds allowed per configuration")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("No CUDA GPU here: run with --tiny for the CPU mode of this check.", file=sys.stderr)
        return 2

    device = torch.cuda.get_device_name(0) if not args.tiny else "cpu-tiny"
    out = Path(args.out) if args.out else reference_dir(device)
    out.mkdir(parents=True, exist_ok=True)
    rows, failures, steps = [], [], 0
    started = time.perf_counter()
    for config in configs(args.tiny, args.steps):
        try:
            record = launch.run(config, timeout=args.timeout, show="progress")
        except launch.TrainingJobError as exc:
            # Out of memory at the largest batch is a finding, not a reason to lose the other runs.
            failures.append((config.name, str(exc).splitlines()[0]))
            continue
        steps = record["steps"]
        record_path = out / f"resnet50-{config.name}.json"
        record_path.write_text(json.dumps(record, indent=1))
        t = record["timing"]["step_time_s"]
        rows.append(
            (
                config.name,
                config.global_batch_size,
                record["throughput"]["images_per_s"],
                t["median"] * 1e3,
                (t["p90"] - t["p10"]) * 1e3,
                record["flops"]["mfu"],
                record["memory"]["peak_bytes"] / 2**30,
            )
        )

    print(
        f"\nResNet-50 training throughput on {device} (torch {torch.__version__}), "
        f"{steps} steps each, median over the steps after warm-up; {time.perf_counter() - started:.0f} s total"
    )
    print(f"{'config':<20}{'batch':>6}{'img/s':>10}{'ms/step':>10}{'p90-p10':>9}{'MFU':>8}{'GiB':>7}")
    for name, batch, rate, ms, spread, mfu, gib in rows:
        mfu_text = f"{100 * mfu:.1f}%" if mfu else "n/a"
        print(f"{name:<20}{batch:>6}{rate:>10,.0f}{ms:>10.1f}{spread:>9.1f}{mfu_text:>8}{gib:>7.1f}")
    for name, reason in failures:
        print(f"{name:<20} FAILED: {reason}")
    print(f"records in {out}")
    return 1 if not rows else 0


if __name__ == "__main__":
    sys.exit(main())
