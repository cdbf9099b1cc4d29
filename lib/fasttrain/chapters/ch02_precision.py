"""Chapter 02 (mixed precision), the names its notebook uses, from the modules that hold them:

- `ch02_formats`: number formats, where values fall in them, casts, loss scales, lost updates;
- `ch02_gradients`: one real training step's weights and gradients;
- `ch02_autocast`: what torch.autocast does to each op;
- `ch02_benchmarks`: matrix product and convolution speed per mode (torch.utils.benchmark.Timer);
- `ch02_parity`: training runs across precisions, accuracy parity, throughput and memory;
- `ch02_figures`: its figures.
"""

from fasttrain.chapters.ch02_autocast import autocast_table
from fasttrain.chapters.ch02_benchmarks import MODES, conv_speed, matmul_speed
from fasttrain.chapters.ch02_figures import plot_exponents, plot_loss_scale, plot_parity, plot_rates, plot_scale_sweep
from fasttrain.chapters.ch02_formats import (
    cast_fractions,
    exponent_histogram,
    format_table,
    largest_safe_scale,
    lost_updates,
    scale_sweep,
)
from fasttrain.chapters.ch02_gradients import capture_step
from fasttrain.chapters.ch02_parity import (
    parity_summary,
    parity_verdict,
    precision_run,
    precision_runs,
    reference_speedups,
    speedups,
)

__all__ = [
    "MODES",
    "autocast_table",
    "capture_step",
    "cast_fractions",
    "conv_speed",
    "exponent_histogram",
    "format_table",
    "largest_safe_scale",
    "lost_updates",
    "matmul_speed",
    "parity_summary",
    "parity_verdict",
    "plot_exponents",
    "plot_loss_scale",
    "plot_parity",
    "plot_rates",
    "plot_scale_sweep",
    "precision_run",
    "precision_runs",
    "reference_speedups",
    "scale_sweep",
    "speedups",
]
