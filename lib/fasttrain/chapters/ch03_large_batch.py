"""Large batches (chapter 03): optimizer steps to a fixed validation accuracy against batch size (Shallue
et al. 2018; McCandlish et al. 2018), with and without the linear scaling rule and warm-up (Goyal et al.
2017) and with LARS (You et al. 2017), the knee of that curve against the gradient noise scale B_simple
measured in the same data-parallel jobs, all read from the result records of real training jobs.

The modules: `ch03_target` (each profile's steps-to-target plan and its jobs), `ch03_knee` (steps to the
target, the fitted knee, the noise scale with a bootstrap interval), `ch03_report` (tables and sentences),
`ch03_knee_figures`, `ch03_claims` (the chapter's claims).
"""

from fasttrain.chapters.ch03_claims import state_claims
from fasttrain.chapters.ch03_knee import (
    doublings,
    fit_critical_batch,
    knee,
    noise_scale_estimate,
    noise_table,
    target_table,
)
from fasttrain.chapters.ch03_knee_figures import knee_figure
from fasttrain.chapters.ch03_report import (
    batchnorm_sentence,
    doublings_table,
    knee_sentence,
    noise_estimates,
    plan_from_parameters,
    plan_table,
    recipe_sentences,
    target_rows,
)
from fasttrain.chapters.ch03_target import RECIPE_LABELS, default_devices, run_target_sweep, target_config, target_plan

__all__ = [
    "RECIPE_LABELS",
    "batchnorm_sentence",
    "default_devices",
    "doublings",
    "doublings_table",
    "fit_critical_batch",
    "knee",
    "knee_figure",
    "knee_sentence",
    "noise_estimates",
    "noise_scale_estimate",
    "noise_table",
    "plan_from_parameters",
    "plan_table",
    "recipe_sentences",
    "run_target_sweep",
    "state_claims",
    "target_config",
    "target_plan",
    "target_rows",
    "target_table",
]
