"""The scaling cost model, the alpha-beta fit, record analysis, and the all-reduce benchmark."""

import math

import pytest
from fasttrain import devices
from fasttrain.chapters import ch01_scaling as scaling
from fasttrain.chapters.ch01_alpha_beta import AlphaBetaFit, fit_alpha_beta
from fasttrain.chapters.ch01_cost_model import ring_factor
from fasttrain.chapters.ch01_netbench import NetbenchError, check_world, measure_allreduce, resolve_backend
from fasttrain.config import ConfigError, TrainConfig


def record(world, images_per_s, step_s=0.2, batch=32, comm=None, config=None):
    """A synthetic result record with the fields the analysis reads."""
    cfg = (config or TrainConfig.from_profile("smoke")).to_dict()
    cfg["global_batch_size"] = batch * world
    return dict(
        name=f"ws{world}",
        config=cfg,
        environment=dict(world_size=world),
        timing=dict(step_time_s=dict(median=step_s)),
        throughput=dict(images_per_s=images_per_s),
        communication=comm or {},
    )


def test_ring_factor_and_link():
    assert ring_factor(1) == 0
    assert ring_factor(2) == 1
    assert ring_factor(8) == pytest.approx(1.75)
    link = scaling.Link("x", 1e-5, 1e9, "test")
    assert link.allreduce_seconds(1e9, 1) == 0
    # 2(N-1) hops of latency plus 2(N-1)/N x S / B
    assert link.allreduce_seconds(1e9, 4) == pytest.approx(6e-5 + 1.5)
    with pytest.raises(ValueError):
        ring_factor(0)


def test_one_server_links_join_no_more_devices_than_a_server_holds():
    link = scaling.Link("x", 1e-6, 1e10, "test", max_ranks=8)
    assert link.allreduce_seconds(1e6, 8) > 0
    assert math.isnan(link.allreduce_seconds(1e6, 16))
    assert math.isnan(scaling.CostModel(0.1, 1e6, link).efficiency(16))
    assert all(link.max_ranks == 8 for link in scaling.NAMED_LINKS if link.name.startswith(("NVLink", "PCIe")))


def test_two_level_allreduce_pays_one_slow_hop_per_node_not_per_device():
    fast, slow = scaling.Link("fast", 1e-6, 1e11, "t", max_ranks=8), scaling.Link("slow", 1e-5, 1e10, "t")
    two = scaling.TwoLevel(fast, slow, per_node=8)
    s = 1e8
    # 2048 devices: a ring of 8 inside each node, then a ring of 256 nodes
    assert two.allreduce_seconds(s, 2048) == pytest.approx(
        fast.allreduce_seconds(s, 8) + slow.allreduce_seconds(s, 256)
    )
    assert two.allreduce_seconds(s, 4) == pytest.approx(fast.allreduce_seconds(s, 4))  # one node
    assert two.allreduce_seconds(s, 1) == 0
    flat = slow.allreduce_seconds(s, 2048)
    # saved: 2 x (2047 - 255) slow hops of latency, less the time inside the nodes
    assert flat - two.allreduce_seconds(s, 2048) >= 2 * (2047 - 255) * 1e-5 - fast.allreduce_seconds(s, 8)
    m2, m1 = scaling.CostModel(0.1, s, two), scaling.CostModel(0.1, s, slow)
    assert m2.efficiency(2048) > m1.efficiency(2048)


def test_amdahl_through_two_times():
    fit = scaling.amdahl_fit(1024, 3.0 + 2048 / 1024, 2048, 3.0 + 2048 / 2048)
    assert fit["serial"] == pytest.approx(3.0) and fit["parallel"] == pytest.approx(2048)
    jia = scaling.amdahl_fit(1024, 8.7, 2048, 6.6)
    assert jia["serial"] == pytest.approx(4.5)  # 2 x 6.6 - 8.7: the part more GPUs did not shorten
    with pytest.raises(ValueError, match="two different"):
        scaling.amdahl_fit(8, 1.0, 8, 2.0)


def test_fit_recovers_known_alpha_and_bandwidth():
    sizes = [4**k * 1024 for k in range(8)]
    seconds = [2e-4 + n / 1.5e9 for n in sizes]
    fit = fit_alpha_beta(sizes, seconds, world_size=4, backend="gloo")
    assert fit.alpha_s == pytest.approx(2e-4, rel=1e-6)
    assert fit.bandwidth_eff == pytest.approx(1.5e9, rel=1e-6)
    assert fit.link_bandwidth == pytest.approx(1.5e9 * 1.5)
    # The link reproduces the fitted world size's timing, and extrapolates to others.
    link = fit.link()
    assert link.allreduce_seconds(1e6, 4) == pytest.approx(fit.predict(1e6))
    assert link.allreduce_seconds(1e6, 8) > link.allreduce_seconds(1e6, 4)


def test_fit_rejects_what_cannot_be_fitted():
    with pytest.raises(ValueError, match="two or more different"):
        fit_alpha_beta([1024, 1024], [1e-4, 2e-4], 2)
    with pytest.raises(ValueError, match="do not grow"):
        fit_alpha_beta([1024, 1e6], [1e-3, 1e-4], 2)
    with pytest.raises(ValueError, match="2 or more ranks"):
        fit_alpha_beta([1024, 1e6], [1e-4, 1e-3], 1)


def test_cost_model_computes_what_it_says():
    link = scaling.Link("x", 1e-4, 1e9, "test")
    model = scaling.CostModel(compute_s=0.1, grad_bytes=1e7, link=link)
    comm2 = 2e-4 + 1e7 / 1e9
    assert model.step_s(1) == pytest.approx(0.1)
    assert model.step_s(2) == pytest.approx(0.1 + comm2)
    assert model.throughput(2, 32) == pytest.approx(64 / (0.1 + comm2))
    assert model.speedup(2) == pytest.approx(2 * 0.1 / (0.1 + comm2))
    assert model.efficiency(2) == pytest.approx(0.1 / (0.1 + comm2))
    # Overlap hides up to overlap x compute of the all-reduce.
    hidden = scaling.CostModel(0.1, 1e7, link, overlap=0.05)
    assert hidden.step_s(2) == pytest.approx(0.1 + comm2 - 0.005)
    assert scaling.CostModel(0.1, 1e7, link, overlap=1).step_s(2) == pytest.approx(0.1)
    # Accumulation: k micro-batches of compute, one all-reduce.
    acc = scaling.CostModel(0.1, 1e7, link, accumulation=4)
    assert acc.step_s(2) == pytest.approx(0.4 + comm2)
    assert acc.efficiency(2) > model.efficiency(2)
    # Strong scaling: the global batch's compute split N ways.
    assert model.strong_speedup(2) == pytest.approx(0.1 / (0.05 + comm2))
    with pytest.raises(ValueError, match="positive"):
        scaling.CostModel(0, 1, link)
    with pytest.raises(ValueError, match="fraction"):
        scaling.CostModel(1, 1, link, overlap=2)
    # Co-location: at 2 ranks each computes 1.5x slower; 1 rank alone is unaffected.
    shared = scaling.CostModel(0.1, 1e7, link, colocation={2: 1.5})
    assert shared.step_s(1) == pytest.approx(0.1)
    assert shared.step_s(2) == pytest.approx(0.15 + comm2)
    assert shared.speedup(2) == pytest.approx(2 * 0.1 / (0.15 + comm2))


def test_accumulation_for_efficiency():
    link = scaling.Link("x", 0.0, 1e9, "test")
    model = scaling.CostModel(0.01, 1e7, link)  # all-reduce at 2 ranks: 10 ms, as long as the compute
    assert model.efficiency(2) == pytest.approx(0.5)
    # k x 10 / (k x 10 + 10) >= 0.8  <=>  k >= 4
    assert scaling.accumulation_for_efficiency(model, 2, 0.8) == 4
    assert scaling.accumulation_for_efficiency(model, 2, 0.5) == 1
    with pytest.raises(ValueError, match="between 0 and 1"):
        scaling.accumulation_for_efficiency(model, 2, 1.5)


def test_scaling_table_and_efficiency():
    rows = scaling.scaling_table([record(2, 150), record(1, 100)])
    assert [r["world_size"] for r in rows] == [1, 2]
    assert rows[1]["speedup"] == pytest.approx(1.5)
    assert rows[1]["efficiency"] == pytest.approx(0.75)
    assert scaling.scaling_efficiency(record(1, 100), record(4, 360)) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="1-rank"):
        scaling.scaling_table([record(2, 150)])


def test_step_breakdown():
    comm = dict(
        comm_time_s=dict(n=5, median=0.03), exposed_time_s=dict(median=0.01), bytes_per_step=1000, buckets_per_step=3
    )
    b = scaling.step_breakdown(record(2, 100, step_s=0.2, comm=comm))
    assert b["idle_s"] == pytest.approx(0.01)
    assert b["compute_s"] == pytest.approx(0.19)
    assert b["hidden_s"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="no timed all-reduce"):
        scaling.step_breakdown(record(1, 100, comm=dict(comm_time_s=dict(n=0))))


def test_model_from_records_uses_measured_compute_and_model_bytes():
    config = TrainConfig.from_profile("smoke")
    fit = AlphaBetaFit(1e-4, 1e9, 2, "gloo")
    model = scaling.model_from_records(record(1, 160, step_s=0.2, config=config), fit)
    assert model.compute_s == 0.2
    assert model.grad_bytes == scaling.gradient_bytes(config)
    expected = 2 * 32 / (0.2 + 1e-4 + model.grad_bytes / 1e9)
    assert model.throughput(2, 32) == pytest.approx(expected)
    with pytest.raises(ValueError, match="1-rank"):
        scaling.model_from_records(record(2, 160), fit)
    # Ranks sharing one machine: the no-exchange runs at N ranks give the compute slow-down at N.
    noop = [record(2, 200, step_s=s, config=config.replace(comm_hook="noop")) for s in (0.3, 0.26)]
    shared = scaling.model_from_records(record(1, 160, step_s=0.2, config=config), fit, colocated=noop)
    assert shared.colocation == {2: pytest.approx(1.3)}  # the faster noop run: interference only adds time
    assert shared.step_s(1) == pytest.approx(0.2)
    assert shared.throughput(2, 32) == pytest.approx(2 * 32 / (0.26 + 1e-4 + model.grad_bytes / 1e9))
    # A noop run faster than the 1-rank job is drift (the 1-rank job ran through outside load), not a gain.
    drift = [record(2, 200, step_s=0.18, config=config.replace(comm_hook="noop"))]
    drifted = scaling.model_from_records(record(1, 160, step_s=0.2, config=config), fit, colocated=drift)
    assert drifted.colocation == {2: 1.0}
    with pytest.raises(ValueError, match="co-location"):
        scaling.model_from_records(record(1, 160, config=config), fit, colocated=[record(2, 200, config=config)])


def test_gradient_bytes_counts_every_parameter():
    config = TrainConfig.from_profile("smoke")
    from fasttrain.rank.models import count_parameters, resnet50

    assert scaling.gradient_bytes(config) == 4 * count_parameters(resnet50(10, 1, config.width, True))


def test_job_config_and_world_sizes():
    config = scaling.job_config("smoke", 2, 64)
    assert config.threads_per_rank == 1 and config.devices == 2 and config.per_device_batch_size == 32
    with pytest.raises(ConfigError, match="must include 1"):
        scaling.check_world_sizes([2], "smoke")
    with pytest.raises(ConfigError, match="this machine runs"):
        scaling.check_world_sizes([1, 10**4], "smoke")


@pytest.mark.parametrize("cores, sizes", [(1, [1]), (2, [1, 2]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])])
def test_world_sizes_are_powers_of_two_up_to_every_core(monkeypatch, cores, sizes):
    monkeypatch.setattr(devices, "cpu_cores", lambda: cores)
    assert scaling.available_world_sizes("smoke") == sizes
    assert scaling.check_world_sizes([cores, 1], "smoke") == sorted({1, cores})


def test_jobs_are_named_by_their_shape(monkeypatch):
    """Weak and strong scaling ask for their largest job under one name, so launch.run trains it once."""
    from fasttrain import launch

    asked = []
    monkeypatch.setattr(launch, "run", lambda config, name, timeout: asked.append((name, config)) or {})
    scaling.run_job("smoke", 2, 64)
    scaling.run_job("smoke", 2, 64, name="noop-2-after", comm_hook="noop")
    assert [n for n, _ in asked] == ["2x32", "noop-2-after"]
    assert asked[0][1].devices == 2 and asked[1][1].comm_hook == "noop"


def test_netbench_errors_are_actionable():
    with pytest.raises(NetbenchError, match="Choose one of"):
        resolve_backend("mpi")
    with pytest.raises(NetbenchError, match="at least 2"):
        check_world(1, "gloo")
    with pytest.raises(NetbenchError, match="core"):
        check_world(10**4, "gloo")


@pytest.mark.slow
def test_netbench_runs_a_real_two_process_allreduce(tmp_path):
    # Sizes 1,000x apart: with 1 MiB against 4 KiB, a loaded 2-core CI machine once timed the small
    # message slower than the large one, and no bandwidth could be fitted.
    sizes = [4096, 4 << 20]
    bench = measure_allreduce(2, "gloo", sizes=sizes, repeats=5, warmup=1, out=tmp_path / "nb.json")
    assert bench["world_size"] == 2 and bench["backend"] == "gloo"
    assert [r["bytes"] for r in bench["results"]] == sizes
    assert all(0 < r["min_s"] <= r["median_s"] <= r["max_s"] for r in bench["results"])
    fit = scaling.fit_netbench(bench)
    assert (fit.world_size, fit.backend) == (2, "gloo")  # the benchmark's own, not fit_alpha_beta's defaults


def test_noop_hook_sends_nothing_and_keeps_each_ranks_gradient():
    """The co-location runs' hook: no exchange, so N ranks time pure side-by-side compute."""
    import torch
    from fasttrain.rank.comm import CommTimer

    class Bucket:  # the one method of dist.GradBucket the hook uses
        def __init__(self, tensor):
            self.tensor = tensor

        def buffer(self):
            return self.tensor

    state = CommTimer("noop")
    grad = torch.arange(4.0)
    assert torch.equal(CommTimer.hook(state, Bucket(grad)).wait(), grad)
    step = state.take_step()
    assert step["bytes"] == 0 and step["buckets"] == 1
    assert TrainConfig.from_profile("smoke", comm_hook="noop").validate().comm_hook == "noop"


def test_a_steps_communication_is_the_union_of_its_buckets_intervals():
    """Buckets queued behind each other overlap in time: their union counts the wire once, their sum would not."""
    from fasttrain.intervals import busy_seconds, uncovered_pieces, uncovered_seconds

    assert busy_seconds([]) == 0
    assert busy_seconds([(0.0, 1.0), (2.0, 3.0)]) == pytest.approx(2.0)  # apart: the sum
    assert busy_seconds([(0.0, 3.0), (1.0, 3.5), (2.0, 4.0)]) == pytest.approx(4.0)  # queued: 4, not 7.5
    assert busy_seconds([(1.0, 2.0), (0.0, 5.0)]) == pytest.approx(5.0)  # one inside another
    # what compute left uncovered: the exposed part of an all-reduce
    assert uncovered_seconds([(0.0, 3.0)], [(0.0, 1.0), (2.0, 2.5)]) == pytest.approx(1.5)
    assert uncovered_pieces([(0.0, 3.0)], [(0.0, 1.0), (2.0, 2.5)]) == [(1.0, 2.0), (2.5, 3.0)]
    assert uncovered_pieces([(1.0, 2.0)], [(0.0, 5.0)]) == []


def test_on_a_gpu_the_hook_times_buckets_with_cuda_events_and_never_waits_for_the_device(monkeypatch):
    """No GPU needed: fake CUDA events stand in for the stream's, and synchronising the device fails the test."""
    import torch
    from fasttrain.rank.comm import CommTimer, CudaClock

    times = iter([0.0, 4.0, 1.0, 6.0])  # ms on the stream: bucket 1 from 0 to 4, bucket 2 queued from 1 to 6

    class FakeEvent:
        def __init__(self, enable_timing=False):
            assert enable_timing
            self.t = None

        def record(self, stream=None):
            self.t = next(times)

        def elapsed_time(self, other):
            assert self.t is not None and other.t is not None
            return other.t - self.t

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: pytest.fail("the hook synchronised the device"))

    class Buffer:  # what the noop exchange needs of a CUDA gradient buffer
        is_cuda = True

    class Bucket:
        def buffer(self):
            return Buffer()

    state = CommTimer("noop")
    for _ in range(2):
        CommTimer.hook(state, Bucket()).wait()
    assert isinstance(state.clock, CudaClock)
    assert state.take_step()["seconds"] == pytest.approx(0.006)  # the union: 6 ms, where the sum says 9
