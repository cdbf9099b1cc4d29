"""Chapter 01 (scaling out), the names its notebook and lab use, from the modules that hold them:

- `ch01_cost_model`: the ring all-reduce model, `Link`s (named interconnects), two-level all-reduce,
  `CostModel`, accumulation, Amdahl's law through two times;
- `ch01_alpha_beta`: the alpha-beta fit of `ch01_netbench`'s all-reduce timings;
- `ch01_analysis`: speed-up, efficiency and the step breakdown from result records; the model fed by them;
- `ch01_jobs`: the chapter's training jobs, at 1, 2, 4, ... ranks;
- `ch01_figures`: its figures.
"""

from fasttrain.chapters.ch01_alpha_beta import fit_netbench
from fasttrain.chapters.ch01_analysis import (
    gradient_bytes,
    model_from_records,
    scaling_efficiency,
    scaling_table,
    step_breakdown,
    throughput,
    world_size,
)
from fasttrain.chapters.ch01_cost_model import (
    NAMED_LINKS,
    TWO_LEVEL_LINKS,
    CostModel,
    Link,
    TwoLevel,
    accumulation_for_efficiency,
    amdahl_fit,
)
from fasttrain.chapters.ch01_figures import plot_allreduce_fit, plot_breakdown, plot_extrapolation, plot_speedup
from fasttrain.chapters.ch01_jobs import JOB_SIZES, available_world_sizes, check_world_sizes, job_config, run_job
from fasttrain.devices import on_gpu

__all__ = [
    "JOB_SIZES",
    "NAMED_LINKS",
    "TWO_LEVEL_LINKS",
    "CostModel",
    "Link",
    "TwoLevel",
    "accumulation_for_efficiency",
    "amdahl_fit",
    "available_world_sizes",
    "check_world_sizes",
    "fit_netbench",
    "gradient_bytes",
    "job_config",
    "model_from_records",
    "on_gpu",
    "plot_allreduce_fit",
    "plot_breakdown",
    "plot_extrapolation",
    "plot_speedup",
    "run_job",
    "scaling_efficiency",
    "scaling_table",
    "step_breakdown",
    "throughput",
    "world_size",
]
