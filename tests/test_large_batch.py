"""Chapter 03's library: LARS against timm's, the noise-scale maths against McCandlish et al., sweep plans."""

import pytest
import torch
from fasttrain.chapters import ch03_large_batch as lb
from fasttrain.chapters.ch03_sweep import sweep_config
from fasttrain.config import ConfigError
from fasttrain.rank.measure import noise_scale, noise_scale_over
from fasttrain.rank.optim import LARS, param_groups, warmup_factor
from torch import nn


def _tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )


def _train(model, optimizer, steps: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 1, 6, 6, generator=g)
        y = torch.randint(3, (8,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def _timm_groups(model, wd):
    ours = param_groups(model, wd)
    # timm adapts a group when weight_decay != 0 or always_adapt: adapt conv/linear weights only.
    return [
        dict(params=ours[0]["params"], weight_decay=wd, always_adapt=True),
        dict(params=ours[1]["params"], weight_decay=0.0, always_adapt=False),
    ]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("wd,nesterov", [(5e-4, False), (0.05, False), (5e-4, True)])
def test_lars_matches_timm_step_for_step(foreach, wd, nesterov):
    from timm.optim import Lars

    a, b = _tiny_net(), _tiny_net()
    ours = LARS(param_groups(a, wd), lr=0.5, momentum=0.9, eta=0.02, nesterov=nesterov)
    theirs = Lars(_timm_groups(b, wd), lr=0.5, momentum=0.9, trust_coeff=0.02, nesterov=nesterov, foreach=foreach)
    for pa, pb in zip(_train(a, ours), _train(b, theirs)):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    # and the run moved the weights at all (the comparison is not of two untouched models)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), _tiny_net().parameters()))


def test_lars_leaves_batchnorm_and_bias_undecayed_and_unadapted():
    """With zero gradient, a decayed/adapted parameter moves; bias and BN parameters must not."""
    model = _tiny_net()
    opt = LARS(param_groups(model, 0.1), lr=1.0, momentum=0.0, eta=0.02)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in model.named_parameters():
        if p.ndim > 1:
            assert not torch.equal(p, before[name]), name  # weight decay acts (trust ratio 1 at g=0)
        else:
            assert torch.equal(p, before[name]), name  # bias / BN: no decay


def test_noise_scale_recovers_known_values_exactly():
    """E|g_B|^2 = |G|^2 + tr(Sigma)/B; feed exact expectations, get |G|^2, tr(Sigma) and B_simple back."""
    g2, trace = 2.0, 300.0
    bs, bb = 16, 64
    local = [g2 + trace / bs] * 5
    glob = [g2 + trace / bb] * 5
    est = noise_scale(local, glob, bs, bb)
    assert est["true_grad_sq"] == pytest.approx([g2] * 5)
    assert est["trace_sigma"] == pytest.approx([trace] * 5)
    assert noise_scale_over(est) == pytest.approx(trace / g2)


def test_noise_scale_estimator_on_sampled_gradients():
    """Per-example gradients ~ N(G, Sigma): the two-batch estimator, averaged, finds tr(Sigma)/|G|^2."""
    g = torch.Generator().manual_seed(0)
    dim, bs, bb, trials = 50, 8, 32, 4000
    G = torch.full((dim,), 0.5)  # |G|^2 = 12.5
    scales = torch.linspace(0.5, 2.0, dim)  # tr(Sigma) = sum(scales^2)
    truth = float((scales**2).sum() / G.pow(2).sum())
    samples = G + scales * torch.randn(trials, bb, dim, generator=g)
    small = samples[:, :bs].mean(1).pow(2).sum(1)  # one rank's batch
    big = samples.mean(1).pow(2).sum(1)  # the all-reduced batch
    est = noise_scale(small.tolist(), big.tolist(), bs, bb)
    assert noise_scale_over(est) == pytest.approx(truth, rel=0.1)
    # swapping the two batch sizes would be a different (wrong) number
    wrong = noise_scale_over(noise_scale(small.tolist(), big.tolist(), bb, bs))
    assert wrong != pytest.approx(truth, rel=0.1)


def test_noise_scale_curve_windows():
    record = {"gradient_noise": noise_scale([3.0, 3.0, 5.0, 5.0], [1.5, 1.5, 2.0, 2.0], 16, 32)}
    where, values = lb.noise_scale_curve(record, windows=2)
    assert where == [0.25, 0.75]
    est = record["gradient_noise"]
    assert values == [pytest.approx(noise_scale_over(est, 0, 2)), pytest.approx(noise_scale_over(est, 2, 4))]
    assert lb.noise_scale_curve({"gradient_noise": None}) == ([], [])


def test_plan_steps_and_configs():
    plan = lb.plan_for("smoke", batch_sizes=[16, 64, 256], base_batch_size=16, epochs=1, train_samples=1024)
    assert [plan.steps(b) for b in plan.batch_sizes] == [64, 16, 4]
    fixed = sweep_config(plan, "fixed", 256, "smoke", devices=2)
    scaled = sweep_config(plan, "scaled", 256, "smoke", devices=2)
    lars = sweep_config(plan, "lars", 256, "smoke", devices=2)
    base = sweep_config(plan, "scaled", 16, "smoke", devices=2)
    assert fixed.effective_lr == plan.lr and fixed.warmup_steps == 0
    assert scaled.effective_lr == pytest.approx(plan.lr * 256 / 16) and scaled.warmup_steps == 1
    assert lars.optimizer == "lars" and lars.effective_lr == pytest.approx(plan.lars_lr * 16)
    assert base.effective_lr == plan.lr and base.warmup_steps == 0
    # At the base batch the scaled recipe is the fixed one's job (one run folder, trained once).
    assert base == sweep_config(plan, "fixed", 16, "smoke", devices=2) and base.extra["recipe"] == "fixed"
    assert fixed.measure_noise_scale and not sweep_config(plan, "fixed", 16, "smoke", devices=1).measure_noise_scale
    assert fixed.max_steps * fixed.global_batch_size == base.max_steps * base.global_batch_size


def test_plan_accumulates_above_the_per_device_limit():
    plan = lb.plan_for("gpu")
    config = sweep_config(plan, "scaled", 8192, "gpu", devices=1, accelerator="cpu", accept_hours_on_cpu=True)
    assert config.grad_accumulation == 8 and config.per_device_batch_size == 1024


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(batch_sizes=(64, 16)), "smallest first"),
        (dict(batch_sizes=(16,)), "two or more"),
        (dict(base_batch_size=64), "smallest batch"),
        (dict(batch_sizes=(16, 64, 4096)), "larger than"),
        (dict(lars_batch_sizes=(512,)), "must be among"),
        (dict(warmup_fraction=1.0), "warmup_fraction"),
    ],
)
def test_bad_plans_say_what_to_do(changes, match):
    with pytest.raises(ConfigError, match=match):
        lb.plan_for("smoke", **changes).validate(devices=2)


def test_bad_parameters_are_named():
    with pytest.raises(ConfigError, match="Unknown sweep parameter"):
        lb.plan_for("smoke", batchsizes=(1, 2))
    with pytest.raises(ConfigError, match="does not split over 2 ranks"):
        lb.plan_for("smoke", batch_sizes=(16, 63)).validate(devices=2)
    with pytest.raises(ConfigError, match="Unknown recipe"):
        sweep_config(lb.plan_for("smoke"), "adam", 16, "smoke")


def _record(recipe="scaled", batch=64, accs=(0.3, 0.6, 0.7), times=(1.0, 2.0, 3.0), median=0.1, steps=16):
    return dict(
        config=dict(
            extra=dict(recipe=recipe, epochs=1),
            global_batch_size=batch,
            max_steps=steps,
            train_samples=1024,
            lr=0.05,
            base_batch_size=16 if recipe != "fixed" else None,
            warmup_steps=4,
            optimizer="sgd",
        ),
        steps=steps,
        timing=dict(step_time_s=dict(median=median), train_time_s=times[-1]),
        final_val_accuracy=accs[-1],
        gradient_noise=None,
        validation=[dict(step=i, accuracy=a, train_time_s=t) for i, (a, t) in enumerate(zip(accs, times))],
    )


def test_summary_and_time_to_accuracy():
    row = lb.summary(_record())
    assert row["lr"] == pytest.approx(0.05 * 64 / 16)
    assert row["time_per_epoch_s"] == pytest.approx(0.1 * 16)
    assert row["accuracy"] == 0.7 and row["b_simple"] is None
    assert lb.time_to_accuracy(_record(), 0.6) == 2.0
    assert lb.time_to_accuracy(_record(), 0.65) == 3.0
    assert lb.time_to_accuracy(_record(), 0.9) is None


def test_useful_batch_limit():
    assert lb.useful_batch_limit({16: 0.80, 64: 0.79, 256: 0.70}, 0.02) == 256
    assert lb.useful_batch_limit({16: 0.80, 64: 0.75, 256: 0.70}, 0.02) == 64
    assert lb.useful_batch_limit({16: 0.80, 64: 0.79}, 0.02) is None
    assert lb.useful_batch_limit({16: 0.70, 64: 0.80, 256: 0.79}, 0.02) == 16


def test_warmup_with_linear_scaling_reaches_the_scaled_peak():
    plan = lb.plan_for("smoke", train_samples=4096)  # 16 steps at batch 256, so the warm-up has several
    config = sweep_config(plan, "scaled", 256, "smoke", devices=2)
    assert config.warmup_steps == 4
    lrs = [
        config.effective_lr * warmup_factor(s, config.warmup_steps, config.max_steps, "constant")
        for s in range(config.max_steps)
    ]
    peak = plan.lr * 256 / 16
    warm = lrs[: config.warmup_steps]
    assert warm == pytest.approx([peak * (s + 1) / config.warmup_steps for s in range(config.warmup_steps)])
    assert lrs[config.warmup_steps :] == pytest.approx([peak] * (config.max_steps - config.warmup_steps))


def test_sweep_table_rows():
    rows = [lb.summary(_record()), dict(lb.summary(_record(recipe="fixed", batch=16)), time_to_target_s=None)]
    lines = lb.sweep_table(rows, target=0.6).splitlines()
    assert lines[0].endswith("| s to 60% |") and len(lines) == 4
    assert lines[2].startswith("| linear scaling + warm-up | 64 | 16 | 0.2 |") and lines[3].endswith("| not reached |")


def test_run_recipe_asks_for_the_base_batch_under_the_fixed_recipes_name(monkeypatch, capsys):
    from fasttrain import launch

    names = []
    monkeypatch.setattr(launch, "run", lambda config, name, **kw: names.append(name) or _record(batch=16))
    records = lb.run_recipe(lb.plan_for("smoke"), "scaled", "smoke", devices=2)
    assert names == ["03-fixed-b16", "03-scaled-b256"] and list(records) == [16, 256]
    assert "fixed lr" in capsys.readouterr().out
