"""Chapter 01's profiler timeline (traces read back, checked against the hook) and the crossover batch."""

import json
import os

import pytest
from fasttrain.chapters import ch01_crossover as crossover
from fasttrain.chapters import ch01_timeline as timeline
from fasttrain.config import ConfigError, TrainConfig
from fasttrain.rank import trace
from test_scaling import record as scaling_record


def ev(name, start_ms, end_ms, tid=1, cat="cpu_op"):
    return dict(ph="X", name=name, ts=start_ms * 1e3, dur=(end_ms - start_ms) * 1e3, tid=tid, cat=cat)


def cpu_step(step, t0, comm):
    """One traced step on a CPU rank: forward 0-40 ms, backward 40-90 (ops until 80: the last 10 ms
    wait for the network), update 90-100; `comm`: gloo all-reduce ranges on a worker thread."""
    events = [
        ev(f"{trace.STEP_RANGE}{step}", t0, t0 + 100, cat="user_annotation"),
        ev("[pl][profile][LightningModule]M.optimizer_step", t0, t0 + 100, cat="user_annotation"),
        ev("[pl][profile][Strategy]DDPStrategy.training_step", t0, t0 + 40, cat="user_annotation"),
        ev("[pl][profile][Strategy]DDPStrategy.backward", t0 + 40, t0 + 90, cat="user_annotation"),
        ev("aten::conv2d", t0, t0 + 40),
        ev("autograd::engine::evaluate_function: ConvolutionBackward0", t0 + 40, t0 + 80),
        ev("aten::_foreach_add_", t0 + 90, t0 + 100),
        ev("gloo:broadcast", t0 + 1, t0 + 2, tid=7),
    ]
    return events + [ev("gloo:all_reduce", t0 + a, t0 + b, tid=7) for a, b in comm]


def traced_record(folder, steps, allreduce_ms, exposed_ms):
    n = max(steps) + 2
    return dict(
        name="traced",
        trace=dict(folder=str(folder), steps=steps),
        timing=dict(step_times_s=[0.1] * n),
        communication=dict(
            comm_times_s=[a / 1e3 for a in allreduce_ms] * n, exposed_times_s=[e / 1e3 for e in exposed_ms] * n
        ),
    )


def test_a_cpu_step_is_split_by_the_profilers_own_ranges(tmp_path):
    # Buckets at 50-70 and 60-85 ms: the union is 35 ms, and 80-85 ms ran while no op did: 5 ms exposed.
    events = cpu_step(3, 0, [(50, 70), (60, 85)])
    view = timeline.step_view(events, 3)
    assert view["forward"] == pytest.approx((0, 0.04)) and view["optimizer"] == pytest.approx((0.09, 0.1))
    split = timeline.profiler_split(view)
    assert split["allreduce_s"] == pytest.approx(0.035)
    assert split["exposed_s"] == pytest.approx(0.005)
    assert split["broadcast_s"] == pytest.approx(0.001)
    assert timeline.step_view(events, 4) is None  # not traced
    truncated = [e for e in events if not e["name"].endswith(".backward")]
    assert timeline.step_view(truncated, 3) is None  # the profiler stopped inside it


def test_on_a_gpu_comm_is_ncclss_kernels_and_compute_every_other_kernel():
    events = cpu_step(0, 0, []) + [
        ev("void at::native::conv_kernel", 40, 80, tid=7, cat="kernel"),
        ev("ncclDevKernel_AllReduce_Sum_f32_RING_LL", 70, 95, tid=20, cat="kernel"),
    ]
    split = timeline.profiler_split(timeline.step_view(events, 0))
    assert split["allreduce_s"] == pytest.approx(0.025)
    assert split["exposed_s"] == pytest.approx(0.015)  # 80-95 ms: no compute kernel running


def test_hook_and_profiler_are_cross_checked_per_step_with_a_tolerance_that_can_fail(tmp_path):
    for rank in (0, 1):
        events = cpu_step(3, 0, [(50, 70), (60, 85)]) + cpu_step(4, 100, [(50, 85)])
        (tmp_path / f"fit-trace-{rank}-[Strategy]DDPStrategy.training_step.123.pt.trace.json").write_text(
            json.dumps(dict(traceEvents=events))
        )
    stale = tmp_path / "fit-trace-0-[Strategy]DDPStrategy.training_step.99.pt.trace.json"  # an earlier run's
    stale.write_text(json.dumps(dict(traceEvents=[])))
    os.utime(stale, (1, 1))
    good = traced_record(tmp_path, [3, 4], allreduce_ms=[36], exposed_ms=[6])
    traces = timeline.load_traces(good)
    assert sorted(traces) == [0, 1]
    views = timeline.step_views(traces, [3, 4])
    rows = timeline.cross_check(good, views)
    assert [r["step"] for r in rows] == [3, 4]
    assert rows[1]["profiler"]["allreduce_s"] == pytest.approx(0.035)
    assert timeline.agreement(rows, "allreduce_s", abs_s=1e-3, rel=0.15)["agree"]
    off = traced_record(tmp_path, [3, 4], allreduce_ms=[60], exposed_ms=[6])  # the hook double counts
    assert not timeline.agreement(timeline.cross_check(off, views), "allreduce_s", abs_s=1e-3, rel=0.15)["agree"]
    figure = timeline.plot_timeline(views)
    assert len(figure.axes[0].get_yticks()) == 4  # compute and comm lanes for each rank


def test_missing_traces_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="trace_steps > 0"):
        timeline.load_traces(dict(name="plain"))
    with pytest.raises(FileNotFoundError, match="recompute=True"):
        timeline.load_traces(traced_record(tmp_path / "gone", [3], [1], [1]))


def test_trace_steps_are_checked_against_the_job_length():
    config = TrainConfig.from_profile("smoke", max_steps=8, timing_warmup_steps=2, trace_steps=3)
    assert list(trace.traced_steps(config.validate())) == [3, 4, 5]
    with pytest.raises(ConfigError, match="max_steps must be at least 8"):
        TrainConfig.from_profile("smoke", max_steps=7, timing_warmup_steps=3, trace_steps=3).validate()
    assert trace.profiler(TrainConfig.from_profile("smoke"), None) is None
    # A config that traces nothing keeps the run folder (and the finished record) it always had.
    assert "trace_steps" not in TrainConfig.from_profile("smoke").to_dict()


def sweep_record(batch, compute_ms, allreduce_ms, world=2):
    comm = dict(
        comm_time_s=dict(n=5, median=allreduce_ms / 1e3),
        exposed_time_s=dict(median=0.001),
        bytes_per_step=1000,
        buckets_per_step=1,
    )
    return scaling_record(world, 100, step_s=compute_ms / 1e3 + 0.001, batch=batch, comm=comm)


def test_crossover_predicted_from_one_rank_and_fitted_from_the_sweep():
    fit = crossover.AlphaBetaFit(alpha_s=1e-3, bandwidth_eff=1e9, world_size=2, backend="gloo")
    one = scaling_record(1, 100, step_s=0.032, batch=32)  # 1 ms per image
    predicted = crossover.predict(one, fit, 2)
    assert predicted["per_image_s"] == pytest.approx(1e-3)
    assert predicted["batch"] == pytest.approx(predicted["allreduce_s"] / 1e-3)
    # compute = 10 ms + 1 ms per image; all-reduce 20 ms: they meet at 10 images per device.
    rows = crossover.sweep([sweep_record(b, 10 + b, 20) for b in (32, 4, 16)])
    assert [r["per_device_batch"] for r in rows] == [4, 16, 32]
    assert [r["comm_bound"] for r in rows] == [True, False, False]
    line = crossover.fitted(rows)
    assert line["fixed_s"] == pytest.approx(0.01) and line["batch"] == pytest.approx(10)
    assert crossover.agrees(dict(batch=10), rows) and not crossover.agrees(dict(batch=2), rows)
    # A fixed cost longer than the all-reduce: no batch is communication-bound.
    assert crossover.fitted(crossover.sweep([sweep_record(b, 30 + b, 20) for b in (2, 8)]))["batch"] is None
    with pytest.raises(ValueError, match="two or more"):
        crossover.fitted(crossover.sweep([sweep_record(8, 30, 20)]))
