"""Chapter 01's timeline: a traced job's torch.profiler traces (rank/trace.py), read back per rank and step.

A step is the "fasttrain step <i>" range of the rank's main thread; inside it, Lightning's ranges give the
forward pass (training_step), the backward pass (backward) and the update (the rest of optimizer_step).
Communication is what the backend shows: "gloo:all_reduce" ranges on gloo's worker threads, or NCCL
all-reduce kernels on a GPU (where compute is every other kernel). The profiler's split of a step is
computed independently of the comm hook's:

- all-reduce: the union of the all-reduce intervals (the hook: union of launch-to-completion per bucket);
- exposed: the part of that union during which the rank computes nothing (no op on the main thread, or
  no compute kernel on the GPU) (the hook: from the last bucket's launch to the end of backward).

A kernel counts in the step whose host range it starts in: a GPU that runs behind its host would push
a step's last kernels into the next one. The GPU path is tested on constructed traces only so far.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fasttrain.intervals import busy_seconds, uncovered_pieces, uncovered_seconds
from fasttrain.rundir import STEP_RANGE

_RANK = re.compile(r"-(\d+)-.*\.pt\.trace\.json$")


def load_traces(record: dict) -> dict[int, list[dict]]:
    """Each rank's complete events ("X"), from the traced job's folder."""
    info = record.get("trace")
    if not info:
        raise ValueError(f"run {record.get('name')!r} recorded no trace: run it with trace_steps > 0")
    folder = Path(info["folder"])
    files = sorted(folder.glob("*.pt.trace.json"))
    if not files:
        raise FileNotFoundError(
            f"no trace files in {folder}: the run folder was moved or cleaned; run the job again (recompute=True)"
        )
    newest: dict[int, Path] = {}  # a job trained again (recompute) leaves its earlier traces beside the new
    for path in files:
        match = _RANK.search(path.name)
        if match and (
            int(match.group(1)) not in newest or path.stat().st_mtime > newest[int(match.group(1))].stat().st_mtime
        ):
            newest[int(match.group(1))] = path
    traces = {}
    for rank, path in sorted(newest.items()):
        events = json.loads(path.read_text())["traceEvents"]
        traces[rank] = [e for e in events if e.get("ph") == "X" and "dur" in e]
    return traces


def _span(e: dict) -> tuple[float, float]:
    return e["ts"] / 1e6, (e["ts"] + e["dur"]) / 1e6


def _is_nccl_allreduce(e: dict) -> bool:
    return e.get("cat") == "kernel" and "nccl" in e["name"].lower() and "allreduce" in e["name"].lower()


def step_views(traces: dict[int, list[dict]], steps: list[int]) -> dict[int, list[dict]]:
    """Each rank's views of the steps its trace covers whole (`step_view`), read once for the table and
    the figure."""
    views = {}
    for rank, events in sorted(traces.items()):
        on_gpu = any(_is_nccl_allreduce(e) for e in events)
        views[rank] = [v for s in steps if (v := step_view(events, s, on_gpu))]
    return views


def step_view(events: list[dict], step: int, on_gpu: bool | None = None) -> dict | None:
    """One step of one rank: its span, phases, all-reduce and broadcast intervals, and busy compute.
    on_gpu: whether the trace holds NCCL kernels (None: look)."""
    marker = next((e for e in events if e["name"] == f"{STEP_RANGE}{step}"), None)
    if marker is None:
        return None
    start, end = _span(marker)
    main = marker["tid"]

    def inside(e: dict) -> bool:
        return start <= e["ts"] / 1e6 <= end

    def named(suffix: str) -> tuple[float, float] | None:
        found = [e for e in events if e["tid"] == main and inside(e) and e["name"].endswith(suffix)]
        return _span(found[0]) if found else None

    forward, backward, update = named(".training_step"), named(".backward"), named(".optimizer_step")
    if backward is None:
        return None  # the profiler stopped during this step
    if on_gpu is None:
        on_gpu = any(_is_nccl_allreduce(e) for e in events)
    if on_gpu:
        kernels = [e for e in events if e.get("cat") == "kernel" and inside(e)]
        comm = [_span(e) for e in kernels if _is_nccl_allreduce(e)]
        compute = [_span(e) for e in kernels if "nccl" not in e["name"].lower()]
        broadcast = [_span(e) for e in kernels if "nccl" in e["name"].lower() and "broadcast" in e["name"].lower()]
    else:
        comm = [_span(e) for e in events if e["name"] == "gloo:all_reduce" and inside(e)]
        broadcast = [_span(e) for e in events if e["name"] == "gloo:broadcast" and inside(e)]
        compute = [_span(e) for e in events if e["tid"] == main and e.get("cat") == "cpu_op" and inside(e)]
    return dict(
        step=step,
        start=start,
        end=end,
        forward=forward,
        backward=backward,
        optimizer=(backward[1], update[1]) if update else None,
        allreduce=sorted(comm),
        broadcast=sorted(broadcast),
        compute=compute,
    )


def profiler_split(view: dict) -> dict[str, float]:
    """The profiler's numbers for one step: its length, the time an op (a compute kernel on a GPU) ran,
    the all-reduce (union), the exposed all-reduce and DDP's buffer broadcast."""
    return dict(
        step_s=view["end"] - view["start"],
        compute_s=busy_seconds(view["compute"]),
        allreduce_s=busy_seconds(view["allreduce"]),
        exposed_s=uncovered_seconds(view["allreduce"], view["compute"]),
        broadcast_s=busy_seconds(view["broadcast"]),
    )


def cross_check(record: dict, views: dict[int, list[dict]], rank: int = 0) -> list[dict]:
    """Per traced step, the hook's numbers (rank 0's, in the record) beside the profiler's (rank 0's trace)."""
    comm = record["communication"]
    rows = []
    for view in views[rank]:
        step = view["step"]
        rows.append(
            dict(
                step=step,
                hook=dict(
                    step_s=record["timing"]["step_times_s"][step],
                    compute_s=record["timing"]["step_times_s"][step] - comm["exposed_times_s"][step],
                    allreduce_s=comm["comm_times_s"][step],
                    exposed_s=comm["exposed_times_s"][step],
                ),
                profiler=profiler_split(view),
            )
        )
    return rows


def agreement(rows: list[dict], what: str, abs_s: float, rel: float) -> dict:
    """How far the hook's and the profiler's `what` (allreduce_s, exposed_s) are apart, summed over the
    traced steps, against a tolerance of abs_s per step plus rel of the larger sum."""
    hook = sum(r["hook"][what] for r in rows)
    prof = sum(r["profiler"][what] for r in rows)
    tolerance = abs_s * len(rows) + rel * max(hook, prof)
    return dict(
        what=what,
        hook_s=hook,
        profiler_s=prof,
        gap_s=hook - prof,
        tolerance_s=tolerance,
        agree=bool(rows) and abs(hook - prof) <= tolerance,
    )


def plot_timeline(views: dict[int, list[dict]], save_as: str | None = None):
    """Per rank, two lanes: compute (forward, backward, optimizer, and the exposed wait hatched) and
    communication (each all-reduce, and DDP's broadcast of buffers), on one clock for all ranks."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from fasttrain.report.figures import save

    steps = sorted({v["step"] for vs in views.values() for v in vs})
    origin = min(v["start"] for vs in views.values() for v in vs)
    shortest = 0.003 * (max(v["end"] for vs in views.values() for v in vs) - origin)  # thinner: not visible
    colours = dict(
        forward="tab:blue", backward="tab:orange", optimizer="tab:green", allreduce="tab:red", broadcast="tab:gray"
    )
    fig, ax = plt.subplots(figsize=(12, 1.3 + 1.1 * len(views)))
    labels, lane = [], 0

    def bars(intervals, y, colour, **kw):
        ax.broken_barh(
            [((a - origin) * 1e3, (b - a) * 1e3) for a, b in intervals], (y - 0.35, 0.7), facecolors=colour, **kw
        )

    for rank, vs in views.items():
        for v in vs:
            for phase in ("forward", "backward", "optimizer"):
                if v[phase]:
                    bars([v[phase]], lane, colours[phase])
            waits = [(a, b) for a, b in uncovered_pieces(v["allreduce"], v["compute"]) if b - a >= shortest]
            bars(waits, lane, "none", edgecolor="black", hatch="////", linewidth=0)
            bars(v["allreduce"], lane + 1, colours["allreduce"], edgecolor="white", linewidth=0.3)
            bars(v["broadcast"], lane + 1, colours["broadcast"])
        labels += [f"rank {rank} compute", f"rank {rank} comm"]
        lane += 2
    ax.set_yticks(range(lane), labels)
    ax.invert_yaxis()
    ax.set_xlabel("ms since the first traced step began (one clock for every rank)")
    ax.set_title(f"torch.profiler timeline, steps {steps[0]}-{steps[-1]}")
    names = dict(allreduce="all-reduce (a bar per bucket)", broadcast="broadcast (DDP's buffers)")
    handles = [Patch(color=c, label=names.get(k, k)) for k, c in colours.items()]
    handles.append(
        Patch(facecolor="none", edgecolor="black", hatch="////", label="exposed: waiting, nothing to compute")
    )
    ax.legend(
        handles=handles,
        ncol=6,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35 if len(views) > 1 else -0.5),
        fontsize=8,
        frameon=False,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save(fig, save_as)
