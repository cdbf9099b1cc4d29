"""What notebooks call: start a real (multi-process) training job through torchrun, return its record.

    from fasttrain import launch
    record = launch.run(profile="smoke", devices=2, accelerator="cpu", name="ddp2")

Why a subprocess: Lightning refuses strategy="ddp" inside an IPython kernel, and fork-based DDP
breaks once CUDA is touched. torchrun is also exactly what one runs by hand on a cluster.

    jobs.py       run(): config -> run folder (lock, reuse) -> torchrun -> record
    agent.py      the torchrun agent the launcher starts (stops with the launcher, writes failures.json)
    supervise.py  streams the agent's output, enforces the timeout, stops the job on an interrupt
    progress.py   the progress bar and the summary line
    failures.py   the error that names the rank that failed first, with its traceback or signal
    reuse.py      which finished runs count as finished
"""

from fasttrain.launch.failures import KILLED_MARK, TrainingJobError, TrainingTimeout, killed_by
from fasttrain.launch.jobs import run
from fasttrain.launch.reuse import finished_record

__all__ = ["KILLED_MARK", "TrainingJobError", "TrainingTimeout", "finished_record", "killed_by", "run"]
