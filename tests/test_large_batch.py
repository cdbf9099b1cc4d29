"""Chapter 03's library: LARS against timm's, the noise-scale maths against McCandlish et al., warm-up."""

import pytest
import torch
from fasttrain.chapters.ch03_target import target_config, target_plan
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


def test_warmup_with_linear_scaling_reaches_the_scaled_peak():
    plan = target_plan("smoke")
    config = target_config(plan, "scaled", 128, "smoke", devices=2)
    assert config.warmup_steps == plan.warmup_images // 128 >= 2
    lrs = [
        config.effective_lr * warmup_factor(s, config.warmup_steps, config.max_steps, "constant")
        for s in range(config.max_steps)
    ]
    peak = plan.lr * 128 / plan.base_batch_size
    warm = lrs[: config.warmup_steps]
    assert warm == pytest.approx([peak * (s + 1) / config.warmup_steps for s in range(config.warmup_steps)])
    assert lrs[config.warmup_steps :] == pytest.approx([peak] * (config.max_steps - config.warmup_steps))
