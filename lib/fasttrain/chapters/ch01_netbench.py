"""All-reduce time over message sizes on this machine's backend: the network half of the cost model.

    python -m fasttrain.chapters.ch01_netbench --devices 2 --out build/netbench.json            # N local processes
    torchrun --nnodes 2 --nproc-per-node 8 -m fasttrain.chapters.ch01_netbench --out nb.json   # a cluster (NCCL)

Every rank all-reduces an fp32 tensor of each size `repeats` times, after a barrier so that all start
together; the time of a repeat is the slowest rank's (a collective finishes when its last rank does).
Rank 0 writes the medians as JSON. Notebooks call `measure_allreduce`, which runs this module in a
subprocess, exactly as one would by hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fasttrain.devices import cuda_available, local_devices

DEFAULT_SIZES = [4**k * 1024 for k in range(8)]  # 1 KiB .. 16 MiB, fp32 tensors
BACKENDS = ("auto", "gloo", "nccl")


class NetbenchError(RuntimeError):
    """The benchmark could not run; the message says what to change."""


def resolve_backend(backend: str) -> str:
    """auto: NCCL where CUDA GPUs are there (what DDP uses on them), gloo on CPUs."""
    if backend not in BACKENDS:
        raise NetbenchError(f"Unknown backend {backend!r}. Choose one of: {', '.join(BACKENDS)}.")
    if backend == "auto":
        return "nccl" if cuda_available() else "gloo"
    if backend == "nccl" and not cuda_available():
        raise NetbenchError("backend='nccl' needs CUDA GPUs and this machine has none; use 'gloo'.")
    return backend


def check_world(devices: int, backend: str) -> None:
    if devices < 2:
        raise NetbenchError(f"devices={devices}: an all-reduce needs at least 2 processes.")
    have = local_devices(on_gpu=backend == "nccl")
    if backend == "nccl" and devices > have:
        raise NetbenchError(
            f"devices={devices} but this machine has {have} GPU(s); use fewer, or torchrun across nodes."
        )
    if backend == "gloo" and devices > have:
        raise NetbenchError(
            f"devices={devices} processes on {have} cores: each needs a core of its own. Use devices <= {have}."
        )


def _bench(
    rank: int, world: int, local_rank: int, backend: str, sizes: list[int], repeats: int, warmup: int, out: str | None
) -> None:
    import torch
    import torch.distributed as dist

    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        torch.set_num_threads(1)  # as the training jobs compared with it: one core per rank
        device = torch.device("cpu")
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    results = []
    for size in sizes:
        x = torch.ones(max(1, size // 4), dtype=torch.float32, device=device)
        times = []
        for i in range(warmup + repeats):
            dist.barrier()
            sync()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        # The slowest rank's time: a collective is done when its last rank is.
        slowest = torch.tensor(times, dtype=torch.float64, device=device)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        values = sorted(slowest.cpu().tolist())
        results.append(
            dict(
                bytes=x.numel() * 4,
                median_s=statistics.median(values),
                min_s=values[0],
                max_s=values[-1],
                n=len(values),
            )
        )
    if rank == 0:
        _write(results, backend, world, repeats, warmup, out)
    dist.destroy_process_group()


def _write(results: list[dict], backend: str, world: int, repeats: int, warmup: int, out: str | None) -> None:
    """Rank 0's record of the benchmark (JSON at `out`), and one line of medians."""
    from fasttrain.results import environment

    record = dict(
        kind="allreduce benchmark",
        backend=backend,
        world_size=world,
        dtype="float32",
        repeats=repeats,
        warmup=warmup,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        environment=environment(),
        results=results,
    )
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=1))
    print("[netbench] " + "  ".join(f"{r['bytes']}B:{r['median_s'] * 1e3:.3f}ms" for r in results), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fasttrain.chapters.ch01_netbench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--devices", type=int, default=2, help="local processes to start (ignored under torchrun)")
    parser.add_argument("--backend", default="auto", help="auto (NCCL on GPUs, else gloo), gloo or nccl")
    parser.add_argument("--sizes", type=int, nargs="*", default=DEFAULT_SIZES, help="message sizes in bytes")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=None, help="JSON file rank 0 writes")
    args = parser.parse_args(argv)
    try:
        backend = resolve_backend(args.backend)
        if args.repeats < 1 or not args.sizes or min(args.sizes) < 4:
            raise NetbenchError("Give repeats >= 1 and message sizes of at least 4 bytes.")
        common = (backend, list(args.sizes), args.repeats, args.warmup, args.out)
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun / a cluster started the ranks
            _bench(
                int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)), *common
            )
            return 0
        check_world(args.devices, backend)
        # Started by hand on one machine: torchrun starts the ranks, as for a training job.
        from fasttrain.rundir import child_environment, torchrun_command

        argv = sys.argv[1:] if argv is None else list(argv)
        command = torchrun_command(args.devices, ["fasttrain.chapters.ch01_netbench", *argv])
        os.execve(command[0], command, child_environment())
    except NetbenchError as exc:
        print(f"fasttrain.chapters.ch01_netbench: {exc}", file=sys.stderr, flush=True)
        return 2


def measure_allreduce(
    devices: int = 2,
    backend: str = "auto",
    sizes: list[int] | None = None,
    repeats: int = 10,
    warmup: int = 2,
    timeout: float = 300,
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run the benchmark as a real multi-process job in a subprocess; return what rank 0 wrote."""
    from fasttrain.paths import build_dir

    backend = resolve_backend(backend)
    check_world(devices, backend)
    out = Path(out or build_dir() / "netbench" / f"allreduce-{backend}-{devices}.json")
    out.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "fasttrain.chapters.ch01_netbench",
        "--devices",
        str(devices),
        "--backend",
        backend,
        "--repeats",
        str(repeats),
        "--warmup",
        str(warmup),
        "--out",
        str(out),
        "--sizes",
        *map(str, sizes or DEFAULT_SIZES),
    ]
    from fasttrain.launch.supervise import stop
    from fasttrain.rundir import child_environment

    proc = subprocess.Popen(
        command,
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)  # torchrun stops its ranks on SIGTERM
        raise NetbenchError(
            f"The all-reduce benchmark did not finish within {timeout:.0f} s; give it more "
            "time (timeout=...) or fewer / smaller sizes."
        ) from None
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join(output.strip().splitlines()[-20:])
        raise NetbenchError(f"The all-reduce benchmark failed (exit code {proc.returncode}):\n{tail}")
    return json.loads(out.read_text())


if __name__ == "__main__":
    sys.exit(main())
