"""The launcher runs real multi-process jobs, raises the failing rank's error, and never hangs."""

import json
import os
import time

import pytest
import torch
from conftest import cpu_config
from fasttrain import launch, rundir

pytestmark = pytest.mark.slow  # real jobs, notebooks or processes: make test, not make check


def test_two_process_ddp_matches_one_process():
    """Same seed, same global batch: 2 gloo ranks end with the weights of 1 process (fp32 tolerance).

    Batch norm must see the global batch for this to hold (GlooSyncBatchNorm on CPU); without it each
    rank normalises over its own half, and the runs part ways: the negative control below.
    """
    common = dict(max_steps=3, global_batch_size=16, lr=0.01, save_weights=True, threads_per_rank=1)
    one = launch.run(cpu_config(devices=1, sync_batchnorm=True, **common), name="one", show="none")
    two = launch.run(cpu_config(devices=2, sync_batchnorm=True, **common), name="two", show="none")
    assert one["environment"]["world_size"] == 1 and two["environment"]["world_size"] == 2
    w1, w2 = torch.load(one["weights_path"]), torch.load(two["weights_path"])
    assert w1.keys() == w2.keys()
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=1e-4, atol=1e-5, msg=key)
    assert one["loss"]["values"] == pytest.approx(two["loss"]["values"], rel=1e-5)

    # (Same seed, same config, same losses exactly: test_faults.py checks it on a re-run.)

    per_rank_bn = launch.run(cpu_config(devices=2, sync_batchnorm=False, **common), name="two-local-bn", show="none")
    w3 = torch.load(per_rank_bn["weights_path"])
    assert max((w3[k].float() - w1[k].float()).abs().max().item() for k in w1) > 1e-3


def test_record_of_a_ddp_job(monkeypatch):
    # Rank variables left in the caller's environment (an in-process Lightning run leaves LOCAL_RANK and
    # NODE_RANK behind) once made rank 0 wait for a rank 1 that nobody started: the launcher drops them.
    from fasttrain.rundir import RANK_VARIABLES

    for key in RANK_VARIABLES:
        monkeypatch.setenv(key, "0")
    config = cpu_config(devices=2, max_steps=4, timing_warmup_steps=1, trace_steps=1, test_full=True)
    record = launch.run(config, name="ddp", show="none", timeout=120)
    # the whole test split, each rank its shard, beside the 256-image validation subset
    assert record["test"]["images"] == 10_000 and 0 <= record["test"]["accuracy"] <= 1
    assert record["environment"]["world_size"] == 2
    assert record["steps"] == 4 and len(record["loss"]["values"]) == 4
    assert record["communication"]["bytes_per_step"] > 0  # the DDP hook saw every bucket
    assert record["communication"]["comm_time_s"]["median"] > 0
    # the union of the buckets' intervals: never longer than the step it happened in
    comm, steps = record["communication"]["comm_times_s"], record["timing"]["step_times_s"]
    assert len(comm) == len(steps) and all(0 < c <= s for c, s in zip(comm, steps))
    assert record["throughput"]["images_per_s"] > 0
    assert 0 <= record["final_val_accuracy"] <= 1
    assert record["config"]["global_batch_size"] == 64 and record["config"]["devices"] == 2
    # torch.profiler traced step 2 in both ranks, and the trace reads back as that step
    from fasttrain.chapters import ch01_timeline

    traces = ch01_timeline.load_traces(record)
    assert record["trace"]["steps"] == [2] and sorted(traces) == [0, 1]
    (row,) = ch01_timeline.cross_check(record, ch01_timeline.step_views(traces, record["trace"]["steps"]))
    assert 0 < row["profiler"]["allreduce_s"] <= row["profiler"]["step_s"]


def test_a_time_cap_stops_every_rank_at_the_same_step_by_training_time():
    config = cpu_config(devices=2, max_steps=500, label_smoothing=0.1, max_train_time_s=1.5, val_every_steps=2)
    record = launch.run(config, name="capped", show="none", timeout=120)
    spent, steps = record["timing"]["train_time_s"], record["timing"]["step_times_s"]
    assert 2 <= record["steps"] < 500 and len(steps) == record["steps"]
    # validation (every 2 steps here) is off the clock: the cap is reached by training steps alone
    assert 1.5 <= spent < 1.5 + max(steps)


def test_crashing_rank_raises_its_traceback_without_hanging():
    started = time.perf_counter()
    with pytest.raises(launch.TrainingJobError) as info:
        launch.run(
            cpu_config(devices=2, max_steps=6),
            name="crash",
            show="none",
            timeout=120,
            env={"FASTTRAIN_FAULT": "crash:1:2"},
        )
    assert info.value.rank == 1
    assert "injected fault" in str(info.value) and "Traceback" in info.value.traceback
    assert time.perf_counter() - started < 90


def test_stalled_rank_ends_the_job_within_the_process_group_timeout():
    """Rank 1 sleeps in step 2; rank 0 waits for it in the all-reduce until the process-group timeout,
    fails with gloo's timeout, and torchrun stops rank 1 (at once: fasttrain.run exits on SIGTERM)."""
    started = time.perf_counter()
    with pytest.raises(launch.TrainingJobError) as info:
        launch.run(
            cpu_config(devices=2, max_steps=6, process_group_timeout_s=10),
            name="hang",
            show="none",
            timeout=150,
            env={"FASTTRAIN_FAULT": "hang:1:2"},
        )
    assert time.perf_counter() - started < 60
    assert info.value.rank == 0 and "timed out" in str(info.value).lower(), str(info.value)


def test_timeout_stops_every_rank():
    started = time.perf_counter()
    with pytest.raises(launch.TrainingTimeout, match="did not finish within 3 s"):
        launch.run(cpu_config(devices=2, max_steps=500), name="slow", show="none", timeout=3)
    assert time.perf_counter() - started < 30


def test_configuration_error_is_reported_plainly_before_any_process_starts(tmp_path):
    from fasttrain.config import ConfigError

    started = time.perf_counter()
    with pytest.raises(ConfigError, match="devices=64 CPU processes"):
        launch.run(cpu_config(devices=64, global_batch_size=64, out_dir=str(tmp_path)), name="too-many", show="none")
    assert time.perf_counter() - started < 5 and not list(tmp_path.iterdir())  # nothing started, nothing left


def test_every_rank_leaves_the_process_group_when_training_ends(tmp_path):
    """A rank that exits with gloo's group still open can abort in interpreter teardown (SIGABRT after
    "Trainer.fit stopped"; it failed chapter 03 in CI): train() closes the group on the way out."""
    import torch.distributed as dist
    from fasttrain.rank.job import train

    before = dict(os.environ)
    try:
        record = train(
            cpu_config(
                strategy="ddp", max_steps=2, timing_warmup_steps=1, val_samples=16, global_batch_size=4, image_size=16
            ),
            str(tmp_path / "r.json"),
        )
    finally:  # Lightning leaves MASTER_PORT, LOCAL_RANK, ... in this process; later tests start jobs from it
        os.environ.clear()
        os.environ.update(before)
    assert record["environment"]["world_size"] == 1 and record["communication"]["bytes_per_step"] > 0
    assert not dist.is_initialized()


def test_a_rank_ended_by_a_signal_is_reported_with_a_cause_only_where_one_is_known():
    assert "OOM killer" in launch.killed_by("SIGKILL")
    abort = launch.killed_by("SIGABRT")
    assert abort.startswith(launch.KILLED_MARK) and "SIGABRT" in abort and "OOM" not in abort
    assert "likely" not in launch.killed_by("SIGUSR1")


def test_the_rank_a_signal_ended_is_the_cause_before_the_peers_it_left_waiting():
    from fasttrain.launch.failures import first_failure

    killed = dict(rank=1, signal="SIGKILL", timestamp=101, exitcode=-9)
    waiting = dict(rank=0, signal=None, timestamp=100, exitcode=1)
    assert first_failure([waiting, killed]) is killed
    later = dict(rank=1, signal=None, timestamp=101, exitcode=1)
    assert first_failure([later, waiting]) is waiting


@pytest.mark.parametrize(
    "message",
    ["RuntimeError: Application timeout caused pair closure", "RuntimeError: [gloo] Timed out waiting 10000ms"],
)
def test_a_collective_timeout_is_said_in_words_whatever_gloo_calls_it(tmp_path, message):
    from fasttrain.launch.failures import job_failure

    rows = [dict(rank=0, signal=None, timestamp=100, exitcode=1, message=message, traceback=f"Traceback\n{message}\n")]
    (tmp_path / rundir.FAILURES).write_text(json.dumps(rows))
    error = job_failure("hang", tmp_path, 1, [], tmp_path / "log.txt")
    assert error.rank == 0 and "a collective timed out" in str(error) and "process_group_timeout_s" in str(error)
    rows[0].update(message="ValueError: bad batch", traceback="Traceback\nValueError: bad batch\n")
    (tmp_path / rundir.FAILURES).write_text(json.dumps(rows))
    assert "timed out" not in str(job_failure("bad", tmp_path, 1, [], tmp_path / "log.txt"))
