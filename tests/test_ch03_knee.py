"""Chapter 03's steps-to-target analysis: steps on the validation grid, the fitted knee, per-doubling
savings, the noise scale's bootstrap interval, the plans' jobs and the claims' verdicts."""

import math
import random

import pytest
from fasttrain.chapters import ch03_knee as kn
from fasttrain.chapters.ch03_claims import state_claims
from fasttrain.chapters.ch03_target import target_config, target_plan
from fasttrain.config import ConfigError
from fasttrain.report.claims import Claims


def _record(recipe="scaled", batch=64, steps=(10, 20, 30), accs=(0.3, 0.6, 0.7), target=0.65, noise=None):
    return dict(
        config=dict(
            global_batch_size=batch,
            lr=0.05,
            base_batch_size=16 if recipe != "fixed" else None,
            devices=2,
            num_nodes=1,
            grad_accumulation=1,
            warmup_steps=4,
            max_steps=100,
            val_every_steps=10,
            extra=dict(recipe=recipe),
        ),
        validation=[dict(step=s, accuracy=a, train_time_s=s / 10) for s, a in zip(steps, accs)],
        target_accuracy=target,
        time_to_target_s=next((s / 10 for s, a in zip(steps, accs) if a >= target), None),
        steps=steps[-1],
        timing=dict(step_time_s=dict(median=0.1)),
        gradient_noise=noise,
    )


def _row(recipe, batch, steps, before=None, best=0.7):
    return dict(
        recipe=recipe,
        batch=batch,
        steps=steps,
        steps_before=steps - 2 if before is None else before,
        steps_run=steps or 100,
        best_accuracy=best,
        time_s=1.0,
    )


def test_steps_to_target_reads_the_grid():
    assert kn.steps_to_target(_record()) == (30, 20)
    assert kn.steps_to_target(_record(target=0.5)) == (20, 10)
    assert kn.steps_to_target(_record(target=0.9)) == (None, 30)
    row = kn.target_row(_record(batch=64))
    assert row["per_rank"] == 32 and row["lr"] == pytest.approx(0.2) and row["steps"] == 30
    assert kn.target_row(_record("fixed", batch=64))["lr"] == pytest.approx(0.05)


def test_fit_recovers_a_known_knee():
    batches = [16, 32, 64, 128, 256]
    steps = [100 * (1 + 50 / b) for b in batches]
    fit = kn.fit_critical_batch(batches, steps)
    assert fit["s_min"] == pytest.approx(100) and fit["b_crit"] == pytest.approx(50)
    # perfect scaling all the way: no floor
    assert kn.fit_critical_batch([16, 32, 64], [400, 200, 100])["b_crit"] > 1e6
    # no gain at all: knee at zero
    assert kn.fit_critical_batch([16, 32, 64], [100, 100, 100])["b_crit"] == pytest.approx(0, abs=1e-9)


def test_knee_and_doublings_on_rows():
    rows = [_row("scaled", b, round(100 * (1 + 50 / b))) for b in (16, 32, 64, 128)] + [_row("fixed", 128, 300)]
    k = kn.knee(rows)
    assert 30 < k["b_crit"] < 80 and k["low"] <= k["b_crit"] <= k["high"]
    d = kn.doublings(rows)
    assert [x["small"] for x in d] == [16, 32, 64]
    assert d[0]["ratio"] > d[-1]["ratio"] and all(x["ratio_low"] <= x["ratio"] <= x["ratio_high"] for x in d)


def test_noise_scale_estimate_covers_the_truth():
    rng = random.Random(1)
    g2, trace = 2.0, 200.0  # B_simple = 100
    steps = 200
    noise = dict(
        true_grad_sq=[g2 + rng.gauss(0, 2.0) for _ in range(steps)],
        trace_sigma=[trace + rng.gauss(0, 100.0) for _ in range(steps)],
    )
    est = kn.noise_scale_estimate([_record(noise=noise)], span=5, resamples=500)
    assert est["low"] < 100 < est["high"] and est["steps"] == steps
    assert kn.noise_scale_estimate([_record(noise=None)])["spans"] == 0
    assert "B_simple" in kn.noise_table({"all": est})


def test_plans_give_valid_jobs():
    plan = target_plan("smoke").validate(devices=2)
    c = target_config(plan, "scaled", plan.batch_sizes[-1], "smoke", devices=2)
    assert c.target_accuracy == plan.target_accuracy and c.effective_lr > plan.lr and c.warmup_steps > 0
    assert c.val_every_steps < c.max_steps / 10
    base_fixed = target_config(plan, "fixed", plan.base_batch_size, "smoke", devices=2)
    assert base_fixed == target_config(plan, "scaled", plan.base_batch_size, "smoke", devices=2)
    lars = target_config(plan, "lars", plan.batch_sizes[-1], "smoke", devices=2)
    assert lars.optimizer == "lars" and lars.warmup_steps == c.warmup_steps
    for profile in ("cpu", "gpu"):
        target_plan(profile).validate(devices=2)
    with pytest.raises(ConfigError, match="smallest first"):
        target_plan("smoke", batch_sizes=(64, 16, 32)).validate()
    with pytest.raises(ConfigError, match="Unknown plan field"):
        target_plan("smoke", batchsize=3)


def test_claims_decide_from_the_numbers(tmp_path):
    rows = [_row("scaled", b, round(100 * (1 + 50 / b))) for b in (8, 16, 32, 64, 128, 256)]
    rows += [_row("fixed", 256, None, before=300, best=0.5), _row("lars", 256, 130)]
    rows[-2]["steps_run"] = 300
    noise = dict(b_simple=80.0, low=50.0, high=130.0, steps=200)
    claims = state_claims(Claims("03", "smoke"), rows, kn.knee(rows), kn.doublings(rows), noise, 0.65)
    verdicts = {c.claim.split(" ")[0] + str(i): c.holds for i, c in enumerate(claims.items)}
    assert len(claims.items) >= 4
    assert all(v is True for v in verdicts.values()), claims.markdown()
    # a flat curve: the knee is at the bottom, "below the knee" cannot be decided, "above" holds
    flat = [_row("scaled", b, 60) for b in (16, 32, 64)]
    claims = state_claims(Claims("03", "smoke"), flat, kn.knee(flat), kn.doublings(flat), noise, 0.65)
    below = next(c for c in claims.items if c.claim.startswith("below"))
    assert below.holds is None and "below the knee" in below.measured
    assert not math.isnan(kn.knee(flat)["b_crit"])
