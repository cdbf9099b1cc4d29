"""Large batches (chapter 03): batch-size sweeps, the linear scaling rule with warm-up, LARS, the
gradient noise scale and time to accuracy, all read from the result records of real training jobs.

A sweep holds the *epochs* fixed, so a batch k times larger takes k times fewer optimizer steps.
Three recipes answer "what learning rate goes with a bigger batch?":

- `fixed`:  the same peak learning rate at every batch size;
- `scaled`: the linear scaling rule lr = lr_base x B / B_base with gradual warm-up (Goyal et al. 2017);
- `lars`:   the scaled rule with LARS's per-layer trust ratio (You et al. 2017; Jia et al. 2018).

Every job is a real data-parallel job when there are two or more ranks, and then also measures the
gradient noise scale B_simple (McCandlish et al. 2018) from one rank's and the all-reduced gradient.

The modules: `ch03_plans` (each profile's sweep), `ch03_sweep` (its training jobs), `ch03_analysis`
(rows, time to accuracy, the noise scale over training), `ch03_figures`.
"""

from fasttrain.chapters.ch03_analysis import (
    noise_scale_curve,
    summary,
    sweep_table,
    time_to_accuracy,
    useful_batch_limit,
)
from fasttrain.chapters.ch03_figures import noise_scale_figure, sweep_figure, time_to_accuracy_figure
from fasttrain.chapters.ch03_plans import RECIPE_LABELS, plan_for
from fasttrain.chapters.ch03_sweep import default_devices, run_recipe

__all__ = [
    "RECIPE_LABELS",
    "default_devices",
    "noise_scale_curve",
    "noise_scale_figure",
    "plan_for",
    "run_recipe",
    "summary",
    "sweep_figure",
    "sweep_table",
    "time_to_accuracy",
    "time_to_accuracy_figure",
    "useful_batch_limit",
]
