"""One real training step's tensors (weights, weight and activation gradients), for the format analysis."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fasttrain.config import ConfigError, TrainConfig
from fasttrain.devices import cuda_available


@dataclass
class Captured:
    """One training step's tensors, flattened: what the format analysis looks at."""

    weights: torch.Tensor  # every parameter before the step
    weight_grads: torch.Tensor  # their gradients
    activation_grads: torch.Tensor  # gradients flowing out of every convolution (what fp16 backward carries)
    loss: float
    lr: float
    step: int  # training steps taken before this one


def real_batches(config: TrainConfig, batch_size: int, count: int, device: torch.device):
    """`count` batches of Fashion-MNIST training images, preprocessed exactly as training does."""
    from fasttrain.rank.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, InMemoryImages, load_fashion_mnist

    images, labels = load_fashion_mnist("train", config.data_dir, config.download)
    data = InMemoryImages(images, labels, config.image_size, config.in_channels, FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.seed))
    for i in range(count):
        x, y = data[order[i * batch_size : (i + 1) * batch_size].tolist()]
        yield x.to(device), y.to(device)


def capture_step(
    config: TrainConfig, batch_size: int = 64, warm_steps: int = 2, device: torch.device | None = None
) -> Captured:
    """Train ResNet-50 in fp32 for `warm_steps` SGD steps on real data, then capture the next step's tensors.

    A few steps first because at initialisation the last batch norm of every block has weight zero
    (zero-init residual), so whole layers have exactly zero gradient; training moves them off zero.
    """
    from fasttrain.rank.models import resnet50

    if warm_steps < 0 or batch_size < 1:
        raise ConfigError(f"capture_step needs warm_steps >= 0 and batch_size >= 1 (got {warm_steps}, {batch_size}).")
    device = device or torch.device("cuda" if cuda_available() else "cpu")
    torch.manual_seed(config.seed)
    model = resnet50(config.num_classes, config.in_channels, config.width, config.small_input).to(device)
    lr = config.effective_lr
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum)
    batches = list(real_batches(config, batch_size, warm_steps + 1, device))
    for x, y in batches[:warm_steps]:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    activation_grads: list[torch.Tensor] = []

    def keep_grad(module, inputs, output):
        output.register_hook(lambda g: activation_grads.append(g.detach().flatten()))

    hooks = [m.register_forward_hook(keep_grad) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        x, y = batches[warm_steps]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    params = [p for p in model.parameters() if p.grad is not None]
    return Captured(
        weights=torch.cat([p.detach().flatten() for p in params]),
        weight_grads=torch.cat([p.grad.flatten() for p in params]),
        activation_grads=torch.cat(activation_grads),
        loss=float(loss.detach()),
        lr=lr,
        step=warm_steps,
    )
