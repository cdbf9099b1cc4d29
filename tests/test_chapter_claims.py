"""Chapters 00 and 01 decide their claims from the numbers: a run that shows the effect holds, one
that shows the opposite does not, and one inside the spread is left undecided."""

from fasttrain.chapters import ch00_baseline, ch01_claims
from fasttrain.report.claims import Claims


def baseline_record(accuracies=(0.2, 0.4, 0.6), losses=None, first_step=1.0, mfu=0.2):
    losses = losses or [2.3 - 0.02 * i for i in range(60)]
    return dict(
        config=dict(num_classes=10, global_batch_size=64, val_every_steps=20),
        steps=60,
        final_val_accuracy=accuracies[-1],
        validation=[dict(step=20 * (i + 1), train_time_s=5.0 * (i + 1), accuracy=a) for i, a in enumerate(accuracies)],
        loss=dict(values=losses),
        timing=dict(step_times_s=[first_step] + [0.2] * 59, step_time_s=dict(median=0.2), timing_warmup_steps=3),
        flops=dict(mfu=mfu, peak_source="measured"),
    )


def verdicts(claims: Claims) -> list:
    return [c.holds for c in claims.items]


def test_chapter_00_claims_follow_the_record():
    assert verdicts(ch00_baseline.check_claims(baseline_record(), 0.35, "smoke")) == [True] * 5
    flat = baseline_record(accuracies=(0.1, 0.12, 0.11), losses=[2.3] * 60, first_step=0.1, mfu=0.9)
    assert verdicts(ch00_baseline.check_claims(flat, 0.35, "smoke")) == [False] * 5
    assert ch00_baseline.job_config("smoke").max_steps == ch00_baseline.STEPS["smoke"]


def ddp_record(world, per_rank, step_s, jitter=0.002, name=None, bytes_=1.5e6, config_extra=None):
    steps = [1.0, 1.0] + [step_s + (jitter if i % 2 else -jitter) for i in range(10)]
    return dict(
        name=name or f"{world}x{per_rank}",
        config=dict(global_batch_size=world * per_rank, **(config_extra or {})),
        environment=dict(world_size=world),
        timing=dict(step_times_s=steps, timing_warmup_steps=2, step_time_s=dict(median=step_s)),
        throughput=dict(images_per_s=world * per_rank / step_s),
        communication=dict(
            comm_time_s=dict(n=10, median=0.004),
            exposed_time_s=dict(median=0.005),
            hidden_time_s=dict(median=0.0),
            bytes_per_step=bytes_,
            buckets_per_step=1,
        ),
    )


def test_chapter_01_scaling_claims_weigh_the_spread():
    weak = [ddp_record(1, 32, 0.18), ddp_record(2, 32, 0.26)]
    strong = [weak[0], ddp_record(2, 16, 0.16)]
    claims = Claims("01", "smoke")
    ch01_claims.scaling_claims(claims, weak, strong)
    assert verdicts(claims) == [True, True, True]  # faster than 1, short of 2x, strong below weak
    noisy = [weak[0], ddp_record(2, 32, 0.26, jitter=0.2)]
    claims = Claims("01", "smoke")
    ch01_claims.scaling_claims(claims, noisy, [weak[0], ddp_record(2, 16, 0.13, jitter=0.1)])
    assert verdicts(claims)[2] is None  # inside the spread: not decided
    # With the noop-hook jobs beside it, the shortfall is split into sharing the machine and communicating.
    claims = Claims("01", "cpu")
    ch01_claims.scaling_claims(claims, weak, strong, colocated=[ddp_record(2, 32, 0.24), ddp_record(2, 32, 0.24)])
    measured = claims.items[1].measured
    assert "sharing the machine cost 25%" in measured and "the all-reduce 8%" in measured


def test_chapter_01_lever_claims_count_bytes():
    default = ddp_record(2, 32, 0.26)
    claims = Claims("01", "smoke")
    ch01_claims.lever_claims(claims, default, ddp_record(2, 32, 0.27, bytes_=0.75e6), ddp_record(2, 64, 0.5), 2)
    assert verdicts(claims) == [True, True]
    claims = Claims("01", "smoke")
    ch01_claims.lever_claims(claims, default, ddp_record(2, 32, 0.27), ddp_record(2, 32, 0.5), 2)
    assert verdicts(claims) == [False, False]
