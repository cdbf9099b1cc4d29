"""Optimisers and schedules of the large-batch recipe (Goyal et al. 2017; You et al. 2017; Jia et al. 2018).

- `param_groups`: no weight decay (and, under LARS, no trust-ratio adaptation) on biases and
  batch-norm parameters, as Jia et al. did.
- `LARS`: SGD with momentum whose step for each layer is scaled by eta * ||w|| / (||g|| + wd * ||w||).
  Written to agree step for step with timm.optim.Lars (a test checks it).
- `warmup_schedule`: linear warm-up to the peak rate, then constant, cosine or linear decay.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim import Optimizer

from fasttrain.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weights of convolutions and linear layers decay and adapt; biases and BN parameters do neither."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        dict(params=decay, weight_decay=weight_decay, adapt=True),
        dict(params=no_decay, weight_decay=0.0, adapt=False),
    ]


class LARS(Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al. 2017, arXiv:1708.03888).

    For a parameter group with adapt=True, each tensor's update direction g + wd * w is multiplied by
    trust = eta * ||w|| / (||g|| + wd * ||w|| + eps) (1 where either norm is zero) before momentum.
    Groups with adapt=False get plain SGD with momentum.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
        eps: float = 1e-8,
        nesterov: bool = False,
    ):
        if lr <= 0:
            raise ValueError(f"LARS needs a positive learning rate, got {lr}")
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, eps=eps, nesterov=nesterov, adapt=True
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            wd, momentum = group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["adapt"]:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                    trust = group["eta"] * w_norm / (g_norm + wd * w_norm + group["eps"])
                    trust = torch.where((w_norm > 0) & (g_norm > 0), trust, torch.ones_like(trust))
                    grad = grad.add(p, alpha=wd).mul_(trust)
                elif wd:
                    grad = grad.add(p, alpha=wd)
                if momentum:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = grad.detach().clone()
                    else:
                        buf = state["momentum_buffer"].mul_(momentum).add_(grad)
                    grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(grad, alpha=-group["lr"])
        return loss


def build_optimizer(model: nn.Module, config: TrainConfig) -> Optimizer:
    groups = param_groups(model, config.weight_decay)
    lr = config.effective_lr
    if config.optimizer == "lars":
        return LARS(groups, lr=lr, momentum=config.momentum, eta=config.lars_eta, nesterov=config.nesterov)
    for g in groups:
        g.pop("adapt")
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.nesterov)


def warmup_factor(step: int, warmup_steps: int, max_steps: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ValueError(f"Unknown schedule {schedule!r}")


def build_scheduler(optimizer: Optimizer, config: TrainConfig):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_factor(step, config.warmup_steps, config.max_steps, config.schedule)
    )
