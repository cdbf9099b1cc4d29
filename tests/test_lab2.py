"""Lab 2: the instructor notebook passes its own checks, and each typical wrong answer fails them."""

from pathlib import Path

import pytest
from fasttrain.grading.notebooks import read, replace_solution
from labrun import assert_a_check_fails, run_lab

LAB = Path(__file__).resolve().parents[1] / "labs" / "source" / "lab2_mixed_precision.ipynb"  # the instructor source

_SCALER_HEAD = """
grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
"""

WRONG = {
    # flush to zero: the paper's shorthand, the normal limit, and zeros counted as flushed
    "flush: below 2^-24 (ties and round-up ignored)": ("flush", "return (g != 0) & (g.abs() < 2.0 ** -24)"),
    "flush: below the smallest normal 2^-14": ("flush", "return (g != 0) & (g.abs() < 2.0 ** -14)"),
    "flush: zeros reported as flushed": ("flush", "return g.abs() <= 2.0 ** -25"),
    "flush: strictly below 2^-25 (the tie rounds to zero)": ("flush", "return (g != 0) & (g.abs() < 2.0 ** -25)"),
    # underflow fraction
    "fraction: zeros in the denominator": ("fraction", "return flushes_to_zero(g * scale).sum().item() / g.numel()"),
    "fraction: scale ignored": (
        "fraction",
        "nonzero = g[g != 0]\nreturn flushes_to_zero(nonzero).sum().item() / nonzero.numel()",
    ),
    # dynamic loss scaling: the case first
    "scaler: forgets to skip overflowing steps": (
        "scaler",
        _SCALER_HEAD
        + """
for grad in grads:
    grad.div_(self.scale)
found = not all(torch.isfinite(grad).all() for grad in grads)
optimizer.step()
if found:
    self.scale *= self.backoff_factor
    self.growth_tracker = 0
    return False
self.growth_tracker += 1
if self.growth_tracker == self.growth_interval:
    self.scale *= self.growth_factor
    self.growth_tracker = 0
return True
""",
    ),
    "scaler: skips but never backs off": (
        "scaler",
        _SCALER_HEAD
        + """
for grad in grads:
    grad.div_(self.scale)
if not all(torch.isfinite(grad).all() for grad in grads):
    self.growth_tracker = 0
    return False
optimizer.step()
self.growth_tracker += 1
if self.growth_tracker == self.growth_interval:
    self.scale *= self.growth_factor
    self.growth_tracker = 0
return True
""",
    ),
    "scaler: clean-step count not reset on overflow": (
        "scaler",
        _SCALER_HEAD
        + """
for grad in grads:
    grad.div_(self.scale)
if not all(torch.isfinite(grad).all() for grad in grads):
    self.scale *= self.backoff_factor
    return False
optimizer.step()
self.growth_tracker += 1
if self.growth_tracker == self.growth_interval:
    self.scale *= self.growth_factor
    self.growth_tracker = 0
return True
""",
    ),
    "scaler: steps on scaled gradients (no unscale)": (
        "scaler",
        _SCALER_HEAD
        + """
if not all(torch.isfinite(grad).all() for grad in grads):
    self.scale *= self.backoff_factor
    self.growth_tracker = 0
    return False
optimizer.step()
self.growth_tracker += 1
if self.growth_tracker == self.growth_interval:
    self.scale *= self.growth_factor
    self.growth_tracker = 0
return True
""",
    ),
    "scaler: grows one clean step late": (
        "scaler",
        _SCALER_HEAD
        + """
for grad in grads:
    grad.div_(self.scale)
if not all(torch.isfinite(grad).all() for grad in grads):
    self.scale *= self.backoff_factor
    self.growth_tracker = 0
    return False
optimizer.step()
self.growth_tracker += 1
if self.growth_tracker > self.growth_interval:
    self.scale *= self.growth_factor
    self.growth_tracker = 0
return True
""",
    ),
    "scaler: NaN not treated as overflow": (
        "scaler",
        _SCALER_HEAD
        + """
for grad in grads:
    grad.div_(self.scale)
if any(torch.isinf(grad).any() for grad in grads):
    self.scale *= self.backoff_factor
    self.growth_tracker = 0
    return False
optimizer.step()
self.growth_tracker += 1
if self.growth_tracker == self.growth_interval:
    self.scale *= self.growth_factor
    self.growth_tracker = 0
return True
""",
    ),
    "safe scale: overflow ignored": (
        "safe_scale",
        "for k in range(25):\n    if underflow_fraction(g, 2.0 ** k) <= max_lost:\n"
        "        return 2.0 ** k\nreturn None",
    ),
    "safe scale: a strict limit (<)": (
        "safe_scale",
        "for k in range(25):\n    if g.abs().max().item() * 2.0 ** k > 65504:\n        return None\n"
        "    if underflow_fraction(g, 2.0 ** k) < max_lost:\n        return 2.0 ** k\nreturn None",
    ),
}


@pytest.mark.parametrize("case", list(WRONG), ids=list(WRONG))
def test_wrong_answer_fails(case):
    grade_id, code = WRONG[case]
    nb = replace_solution(read(LAB), grade_id, code)
    assert_a_check_fails(nb)


@pytest.mark.parametrize(
    "case",
    [
        "flush: below 2^-24 (ties and round-up ignored)",
        "flush: strictly below 2^-25 (the tie rounds to zero)",
        "scaler: clean-step count not reset on overflow",
    ],
)
def test_hidden_tests_catch_what_visible_ones_miss(case):
    """These wrong answers pass the visible checks; only the hidden ones fail them."""
    from fasttrain.grading.notebooks import HIDDEN

    grade_id, code = WRONG[case]
    nb = replace_solution(read(LAB), grade_id, code)
    for cell in nb.cells:
        cell.source = HIDDEN.sub("", cell.source)
    run_lab(nb, stop_after=f"{grade_id}_test")  # no hidden tests: its own test cell passes
