"""Chapter 02's claims (fasttrain.chapters.ch02_claims) and plan (ch02_plan): decided from known numbers, fast."""

import pytest
from fasttrain.chapters import ch02_claims
from fasttrain.chapters import ch02_precision as P
from fasttrain.report.claims import Claims


def record(accuracy, steps=(0.1, 0.1, 0.1, 0.1), warmup=1, loss_scale=None):
    r = dict(final_val_accuracy=accuracy, timing=dict(step_times_s=list(steps), timing_warmup_steps=warmup))
    if loss_scale:
        r["loss_scale"] = loss_scale
    return r


def scale_history(values, skipped, interval, initial=2.0**16):
    return dict(initial=initial, steps=list(range(1, len(values) + 1)), values=values, skipped=skipped,
                growth_interval=interval)  # fmt: skip


def test_scaler_replay_follows_gradscaler_rule():
    # interval 2: two clean steps double, a skip halves and restarts the count
    s = 2.0**16
    ok = scale_history([s, 2 * s, s, s, 2 * s], [False, False, True, False, False], 2)
    assert ch02_claims.scaler_events(ok) == dict(steps=5, skipped=1, grown=2, broken=[])
    wrong = scale_history([2 * s], [False], 2)  # doubled after one clean step
    assert ch02_claims.scaler_events(wrong)["broken"] == [1]


def test_scaler_claim_needs_both_a_skip_and_a_growth():
    s = 2.0**16
    c = Claims("02", "smoke")
    assert P.scaler_claim(c, [record(0.5, loss_scale=scale_history([2 * s, s], [False, True], 1))])
    assert not P.scaler_claim(c, [record(0.5, loss_scale=scale_history([2 * s, 4 * s], [False, False], 1))])
    assert not P.scaler_claim(c, [record(0.5)])  # no record of the scale: not shown
    assert [x.holds for x in c.items] == [True, False, False]


def test_within_band_judges_each_run_against_the_prediction_interval():
    inside, words = P.within_band([0.40, 0.42, 0.44], [0.45])
    assert inside and "prediction band of 3 runs" in words
    outside, _ = P.within_band([0.40, 0.42, 0.44], [0.80])
    assert outside is False
    assert P.within_band([0.4], [0.4])[0] is None  # no spread to judge against
    # Two runs are judged one by one: one outside the band is enough, however their mean's interval looks.
    assert P.within_band([0.40, 0.42, 0.44], [0.41, 0.43])[0] is True
    assert P.within_band([0.40, 0.42, 0.44], [0.30, 0.52])[0] is False


def test_parity_claim_undecided_until_every_run_learns():
    chance = 0.1
    c = Claims("02", "cpu")
    fp32 = [record(a) for a in (0.40, 0.45, 0.43)]
    assert P.parity_claim(c, {"32-true": fp32, "bf16-mixed": [record(0.44)], "16-mixed": [record(0.41)]}, chance)
    P.parity_claim(c, {"32-true": fp32, "bf16-mixed": [record(0.12)]}, chance)  # one at chance
    P.parity_claim(c, {"32-true": fp32, "bf16-mixed": [record(0.95)]}, chance)  # learned, outside the band
    noisy = [record(a) for a in (0.31, 0.60, 0.90)]  # band wider than the gain over chance
    P.parity_claim(c, {"32-true": noisy, "bf16-mixed": [record(0.5)]}, chance)
    assert [x.holds for x in c.items] == [True, None, False, None]
    assert "not all learned" in c.items[1].measured and "too noisy" in c.items[3].measured


def test_speed_claim_follows_the_hardware():
    c = Claims("02", "smoke")
    assert P.speed_claim(c, False, {"matmul": 0.09, "conv weight gradient": 0.08}, "AMD EPYC")
    assert P.speed_claim(c, True, {"matmul": 4.4, "conv weight gradient": 2.0}, "Intel Xeon")
    assert not P.speed_claim(c, True, {"matmul": 0.5, "conv weight gradient": 2.0}, "Intel Xeon")
    P.speed_claim(c, None, {"matmul": 0.5}, "unknown")
    assert [x.holds for x in c.items] == [True, True, False, None]


def test_flush_and_master_weight_claims_from_their_tables():
    c = Claims("02", "smoke")
    sweep = [dict(scale=1.0, nonzero=100, underflow=0.6, overflow=0.0),
             dict(scale=2.0**16, nonzero=100, underflow=0.001, overflow=0.0)]  # fmt: skip
    assert P.flush_claim(c, sweep, scale=2.0**16)
    assert P.bf16_flush_claim(c, {"weights": 0.0, "activations": 0.0})
    lost = {f: dict(format=f, updates=10, measured=m, rule=m + 0.01) for f, m in
            (("fp32", 0.02), ("bf16", 0.9), ("fp16", 0.85))}  # fmt: skip
    assert P.master_weights_claim(c, lost)
    assert all(x.robust == ("smoke", "cpu", "gpu") for x in c.items)


def test_parity_lines_say_why_a_precision_has_fewer_runs():
    runs = {"32-true": [record(0.4), record(0.42)], "bf16-mixed": [record(0.41, steps=(1, 1, 1, 1))]}
    lines = P.parity_lines(runs, chance=0.1)
    assert "fewer runs than 32-true's 2" in lines[1] and "costs 10.0 of 32-true's" in lines[1]


def test_seeds_per_precision_plan_and_override():
    assert P.seeds_per_precision("smoke", ["32-true", "bf16-mixed"]) == {"32-true": 3, "bf16-mixed": 1}
    assert P.seeds_per_precision("cpu", ["32-true", "16-mixed"], seeds=2) == {"32-true": 2, "16-mixed": 2}
    config = P.parity_config("smoke", max_steps=7, growth_interval=3)
    assert config.max_steps == 7 and config.loss_scale_growth_interval == 3


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_plan_covers_every_profile(profile):
    assert P.parity_config(profile).profile == profile
    assert P.seeds_per_precision(profile, ["32-true", "bf16-mixed", "16-mixed"])["32-true"] >= 3
