"""Chapter 02 (mixed precision), the names its notebook uses, from the modules that hold them:

- `ch02_formats`: number formats, where values fall in them, casts, loss scales, lost updates;
- `ch02_gradients`: one real training step's weights and gradients;
- `ch02_autocast`: what torch.autocast does to each op;
- `ch02_benchmarks`: matrix product and convolution speed per mode (torch.utils.benchmark.Timer);
- `ch02_parity`: training runs across precisions, accuracy parity, throughput and memory;
- `ch02_plan`: the chapter's sizes per profile (parity runs, seeds per precision, micro-benchmarks);
- `ch02_claims`: its lessons as claims, decided from this run's numbers;
- `ch02_figures`: its figures.
"""

from fasttrain.chapters.ch02_autocast import autocast_table
from fasttrain.chapters.ch02_benchmarks import MODES, conv_speed, matmul_speed
from fasttrain.chapters.ch02_claims import (
    bf16_flush_claim,
    flush_claim,
    has_bf16_units,
    master_weights_claim,
    parity_claim,
    scaler_claim,
    speed_claim,
    within_band,
)
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
    parity_lines,
    parity_summary,
    parity_verdict,
    precision_run,
    precision_runs,
    reference_speedups,
    speedups,
)
from fasttrain.chapters.ch02_plan import ANALYSIS_BATCH, BENCH, SPEED, parity_config, seeds_per_precision

__all__ = [
    "ANALYSIS_BATCH",
    "BENCH",
    "MODES",
    "SPEED",
    "bf16_flush_claim",
    "flush_claim",
    "has_bf16_units",
    "master_weights_claim",
    "parity_claim",
    "parity_config",
    "parity_lines",
    "scaler_claim",
    "seeds_per_precision",
    "speed_claim",
    "within_band",
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
