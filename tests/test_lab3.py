"""Lab 3: the instructor notebook passes its own checks, and each typical wrong answer fails them."""

from pathlib import Path

import pytest
from fasttrain.grading.notebooks import read, replace_solution
from labrun import assert_a_check_fails

LAB = Path(__file__).resolve().parents[1] / "labs" / "source" / "lab3_large_batches.ipynb"  # the instructor source


WRONG = {
    # the case: weight decay on batch-norm (and bias) parameters, trust ratio only on weights
    "lars_step: weight decay on batch-norm parameters": (
        "lars_step",
        """
for name, p in model.named_parameters():
    if p.grad is None:
        continue
    new_p, buffers[name] = lars_update(p.data, p.grad, buffers.get(name), lr=lr, momentum=momentum,
                                       weight_decay=weight_decay, eta=eta, adapt=p.ndim > 1)
    p.data = new_p
""",
    ),
    "lars_step: trust ratio on batch-norm parameters too": (
        "lars_step",
        """
for name, p in model.named_parameters():
    if p.grad is None:
        continue
    new_p, buffers[name] = lars_update(p.data, p.grad, buffers.get(name), lr=lr, momentum=momentum,
                                       weight_decay=weight_decay if p.ndim > 1 else 0.0, eta=eta, adapt=True)
    p.data = new_p
""",
    ),
    "lars_update: no weight decay in the trust ratio's denominator": (
        "lars_update",
        """
d = grad + weight_decay * p
if adapt:
    w_norm, g_norm = p.norm(), grad.norm()
    trust = eta * w_norm / (g_norm + eps)
    if w_norm == 0 or g_norm == 0:
        trust = torch.ones_like(trust)
    d = d * trust
new_buf = d.clone() if buf is None else momentum * buf + d
return p - lr * new_buf, new_buf
""",
    ),
    "lars_update: trust ratio applied after momentum": (
        "lars_update",
        """
d = grad + weight_decay * p
new_buf = d.clone() if buf is None else momentum * buf + d
step = new_buf
if adapt:
    w_norm, g_norm = p.norm(), grad.norm()
    trust = eta * w_norm / (g_norm + weight_decay * w_norm + eps)
    if w_norm == 0 or g_norm == 0:
        trust = torch.ones_like(trust)
    step = new_buf * trust
return p - lr * step, new_buf
""",
    ),
    "scaled_lr: warm-up starting from zero": (
        "scaled_lr",
        """
peak = base_lr * batch / base_batch
if warmup_steps and step < warmup_steps:
    return peak * step / warmup_steps
return peak
""",
    ),
    "scaled_lr: warm-up that overshoots by one step": (
        "scaled_lr",
        """
peak = base_lr * batch / base_batch
if warmup_steps and step <= warmup_steps:
    return peak * (step + 1) / (warmup_steps + 1)
return peak
""",
    ),
    "scaled_lr: off by one at the end of the ramp (<=)": (
        "scaled_lr",
        """
peak = base_lr * batch / base_batch
if warmup_steps and step <= warmup_steps:
    return peak * (step + 1) / warmup_steps
return peak
""",
    ),
    "run_noise_scale: skip ignored": (
        "run_noise",
        'return noise_scale_estimate(run["local_sq_norm"], run["global_sq_norm"], run["b_small"], run["b_big"])[2]',
    ),
    "noise_scale: mean of per-step ratios": (
        "noise_scale",
        """
g2 = [(b_big * gb - b_small * gs) / (b_big - b_small) for gs, gb in zip(g_small_sq, g_big_sq)]
s = [(gs - gb) / (1 / b_small - 1 / b_big) for gs, gb in zip(g_small_sq, g_big_sq)]
mean_g2, mean_s = sum(g2) / len(g2), sum(s) / len(s)
return mean_g2, mean_s, sum(a / b for a, b in zip(s, g2)) / len(s)
""",
    ),
    "noise_scale: |g_big|^2 taken as |G|^2": (
        "noise_scale",
        """
g2 = list(g_big_sq)
s = [(gs - gb) / (1 / b_small - 1 / b_big) for gs, gb in zip(g_small_sq, g_big_sq)]
mean_g2, mean_s = sum(g2) / len(g2), sum(s) / len(s)
return mean_g2, mean_s, mean_s / mean_g2
""",
    ),
}


@pytest.mark.parametrize("grade_id,code", WRONG.values(), ids=list(WRONG))
def test_wrong_answer_fails(grade_id, code):
    nb = replace_solution(read(LAB), grade_id, code)
    assert_a_check_fails(nb)
