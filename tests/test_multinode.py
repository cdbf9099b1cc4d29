"""Two "nodes" of one process each, on localhost: the way a job spans machines."""

import json
import os
import subprocess
import sys
import time

import pytest
from fasttrain.rundir import LIB_DIR, free_port

pytestmark = pytest.mark.slow  # real jobs, notebooks or processes: make test, not make check

JOB = [
    "-m",
    "fasttrain.run",
    "--profile",
    "smoke",
    "--accelerator",
    "cpu",
    "--num_nodes",
    "2",
    "--devices",
    "1",
    "--max_steps",
    "3",
    "--val_every_steps",
    "0",
    "--timing_warmup_steps",
    "1",
    "--train_samples",
    "1024",
    "--val_samples",
    "256",
    "--threads_per_rank",
    "1",
]


def _start_nodes(commands, env_per_node, tmp_path):
    procs = []
    for node, command in enumerate(commands):
        env = {**os.environ, "PYTHONPATH": str(LIB_DIR), **env_per_node[node]}
        procs.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
            )
        )
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a node did not finish within 240 s")
    assert all(p.returncode == 0 for p in procs), "\n\n".join(outputs)[-4000:]


@pytest.mark.parametrize("how", ["lightning-env", "torchrun"])
def test_two_nodes_of_one_process(how, tmp_path):
    port, record = str(free_port()), tmp_path / "record.json"
    if how == "lightning-env":  # what Lightning reads on a hand-made cluster
        # The same command on every node, as on a cluster with a shared file system.
        commands = [[sys.executable, *JOB, "--record", str(record)] for node in (0, 1)]
        envs = [dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(node)) for node in (0, 1)]
    else:  # what one runs on each machine of a cluster
        commands = [
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(node),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                port,
                *JOB,
                "--record",
                str(record),
            ]
            for node in (0, 1)
        ]
        envs = [{}, {}]
    _start_nodes(commands, envs, tmp_path)
    result = json.loads(record.read_text())
    assert result["environment"]["world_size"] == 2 and result["steps"] == 3
    assert result["communication"]["bytes_per_step"] > 0


def test_a_node_that_never_comes_ends_the_head_within_the_timeout_saying_what_it_waited_for(tmp_path):
    """Node 0 of 2 alone: it waits for node 1 for process_group_timeout_s, then says whom it waited for."""
    port = str(free_port())
    env = {**os.environ, "PYTHONPATH": str(LIB_DIR), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NODE_RANK": "0"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *JOB, "--process_group_timeout_s", "5", "--record", str(tmp_path / "r.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and time.perf_counter() - started < 60
    assert f"did not all meet at 127.0.0.1:{port} within process_group_timeout_s=5" in done.stderr, done.stderr[-2000:]


def test_a_worker_facing_a_foreign_listener_ends_within_the_timeout(tmp_path):
    """Node 1 finds something else on MASTER_PORT (not node 0's store): it gives up within the timeout."""
    import socket

    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = str(foreign.getsockname()[1])
        env = {**os.environ, "PYTHONPATH": str(LIB_DIR), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        env["NODE_RANK"] = "1"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, *JOB, "--process_group_timeout_s", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2 and time.perf_counter() - started < 60, done.stderr[-2000:]
    assert "did not all meet at 127.0.0.1:" in done.stderr and "node 1 of 2" in done.stderr
