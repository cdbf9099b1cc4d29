"""What the library costs: its Lightning job against a plain PyTorch loop, and DDP on one rank against none.

    python -m fasttrain.bench                  # `make bench`; prints a table of ratios
    python -m fasttrain.bench --steps 60 --repeats 5 --width 0.25

Every variant trains the same model on the same Fashion-MNIST batches with the same optimizer, in a
process of its own with the same number of threads, and reports its median step time (start to start,
warm-up excluded) exactly as the training job does. Variants run interleaved, `--repeats` times each,
so a slow spell on a noisy machine hits them all alike; the table shows the median over repeats and the
spread, and the ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fasttrain.config import TrainConfig
from fasttrain.devices import threads_per_rank
from fasttrain.rank.measure import summarize
from fasttrain.rundir import child_environment, free_port

VARIANTS = {
    "plain": "plain PyTorch loop, no DDP",
    "plain-ddp1": "plain PyTorch loop in DistributedDataParallel, 1 rank (gloo/nccl)",
    "lightning": "fasttrain.run (Lightning), single device",
    "lightning-ddp1": "fasttrain.run (Lightning), strategy ddp, 1 rank",
}


def bench_config(args) -> TrainConfig:
    return TrainConfig.from_profile(
        args.profile,
        width=args.width,
        global_batch_size=args.batch,
        max_steps=args.steps,
        timing_warmup_steps=args.warmup,
        val_every_steps=0,
        val_samples=256,
        train_samples=max(4096, args.batch * args.steps),
        comm_hook="none",
        accelerator=args.accelerator,
    ).validate()


def plain_loop(config: TrainConfig, ddp: bool) -> list[float]:
    """The training step of fasttrain.run written by hand: what Lightning is compared with."""
    import torch.nn.functional as F

    from fasttrain.rank.data import build_datamodule
    from fasttrain.rank.models import resnet50
    from fasttrain.rank.optim import build_optimizer, build_scheduler

    device = torch.device("cuda" if config.on_gpu else "cpu")
    if not config.on_gpu:
        torch.set_num_threads(threads_per_rank(config.devices, config.threads_per_rank))
    torch.manual_seed(config.seed)
    model = resnet50(config.num_classes, config.in_channels, config.width, config.small_input).to(device)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    if ddp:
        import torch.distributed as dist

        dist.init_process_group("nccl" if config.on_gpu else "gloo", rank=0, world_size=1)
        model = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=config.bucket_cap_mb)
    datamodule = build_datamodule(config)
    datamodule.setup()
    times, last = [], None
    step = 0
    while step < config.max_steps:
        for x, y in datamodule.train_dataloader():
            if last is None:
                last = time.perf_counter()
            x, y = x.to(device, non_blocking=True).contiguous(memory_format=layout), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            times.append(now - last)
            last, step = now, step + 1
            if step == config.max_steps:
                break
    return times


_STRATEGY = {"lightning": "auto", "lightning-ddp1": "ddp"}


def run_variant(variant: str, config: TrainConfig) -> float:
    """Median step time of one variant, measured in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        env = child_environment({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())})
        job = config if variant.startswith("plain") else config.replace(strategy=_STRATEGY[variant])
        (Path(tmp) / "config.json").write_text(json.dumps(job.to_dict()))
        if variant.startswith("plain"):
            args = ["fasttrain.bench", "--worker", variant, "--config-json", str(Path(tmp) / "config.json")]
        else:
            args = ["fasttrain.run", "--config", str(Path(tmp) / "config.json")]
        command = [sys.executable, "-m", *args, "--out" if variant.startswith("plain") else "--record", str(out)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"benchmark variant {variant} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        result = json.loads(out.read_text())
        if variant.startswith("plain"):
            return summarize(result["step_times_s"][config.timing_warmup_steps :])["median"]
        return result["timing"]["step_time_s"]["median"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="auto")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["plain", "plain-ddp1"], help=argparse.SUPPRESS)
    parser.add_argument("--config-json", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        config = TrainConfig.from_dict(json.loads(Path(args.config_json).read_text()))
        Path(args.out).write_text(json.dumps({"step_times_s": plain_loop(config, args.worker == "plain-ddp1")}))
        return 0

    config = bench_config(args)
    medians: dict[str, list[float]] = {v: [] for v in VARIANTS}
    started = time.perf_counter()
    for repeat in range(args.repeats):
        for variant in VARIANTS:
            medians[variant].append(run_variant(variant, config))
            print(
                f"repeat {repeat + 1}/{args.repeats} {variant:<15} {medians[variant][-1] * 1e3:8.1f} ms/step",
                flush=True,
            )

    from fasttrain.results import environment

    env = environment()
    device = torch.cuda.get_device_name(0) if config.on_gpu else f"{env['cpu']} ({env['cpu_count']} cores)"
    print(
        f"\nResNet-50 width {config.width}, {config.image_size}px Fashion-MNIST, batch {config.global_batch_size}, "
        f"{config.max_steps} steps ({config.timing_warmup_steps} warm-up), {args.repeats} repeats, "
        f"on {device}, torch {env['torch']}, Lightning {env['lightning']}, code {env['code_version']}; "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(f"{'variant':<16}{'median ms/step':>15}{'min':>8}{'max':>8}   what")
    for variant, what in VARIANTS.items():
        values = [m * 1e3 for m in medians[variant]]
        print(f"{variant:<16}{statistics.median(values):>15.1f}{min(values):>8.1f}{max(values):>8.1f}   {what}")

    def ratio(a: str, b: str) -> float:
        return statistics.median(medians[a]) / statistics.median(medians[b])

    print("\nratio                          value   target")
    print(f"{'lightning / plain':<30}{ratio('lightning', 'plain'):>6.3f}   <= 1.05 (Lightning within 5% per step)")
    print(f"{'lightning-ddp1 / lightning':<30}{ratio('lightning-ddp1', 'lightning'):>6.3f}   DDP's cost on one rank")
    print(f"{'plain-ddp1 / plain':<30}{ratio('plain-ddp1', 'plain'):>6.3f}   the same without Lightning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
