"""ResNet-50: torchvision's at full size, and the same 50-layer topology narrowed for CPU-scale runs.

`resnet50(width=1.0, small_input=False, in_channels=3, num_classes=1000)` has exactly the modules,
names and shapes of `torchvision.models.resnet50()` (a test loads one's weights into the other), so
everything the chapters measure on the small model carries over to the real one: 16 bottleneck
blocks in stages of 3, 4, 6 and 3, 53 convolutions, batch norm after each, one linear layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, conv1x1

STAGES = (3, 4, 6, 3)


class ResNet50(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width: float = 1.0,
        small_input: bool = False,
        zero_init_residual: bool = True,
    ):
        super().__init__()
        base = max(8, int(round(64 * width)))
        self.inplanes = base
        if small_input:
            # 28-64 pixel images: a 7x7/2 stem and max-pool would leave almost nothing to convolve.
            self.conv1 = nn.Conv2d(in_channels, base, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, base, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_stage(base, STAGES[0], stride=1)
        self.layer2 = self._make_stage(base * 2, STAGES[1], stride=2)
        self.layer3 = self._make_stage(base * 4, STAGES[2], stride=2)
        self.layer4 = self._make_stage(base * 8, STAGES[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base * 8 * Bottleneck.expansion, num_classes)

        for m in self.modules():  # torchvision's initialisation, so the two models train alike
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            # Goyal et al. 2017: each block starts as the identity, which large-batch training needs.
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)

    def _make_stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet50(num_classes: int = 1000, in_channels: int = 3, width: float = 1.0, small_input: bool = False) -> nn.Module:
    """torchvision's ResNet-50 at full size; our narrowed/small-input variant otherwise."""
    if width == 1.0 and not small_input and in_channels == 3:
        from torchvision.models import resnet50 as tv_resnet50

        return tv_resnet50(weights=None, num_classes=num_classes, zero_init_residual=True)
    return ResNet50(num_classes, in_channels, width, small_input)


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """Batch norm whose statistics cover the global batch on any backend (torch's SyncBatchNorm is GPU-only).

    Each rank all-reduces its per-channel sum, sum of squares and count through the differentiable
    `torch.distributed.nn.functional.all_reduce`, so the backward pass also sums across ranks. With it,
    N ranks of batch B/N compute exactly what one process of batch B computes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        channels = x.shape[1]
        local = torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), x.new_tensor([x.numel() / channels])])
        total = all_reduce(local)
        count = total[-1]
        mean = total[:channels] / count
        var = total[channels : 2 * channels] / count - mean * mean  # biased, as batch norm normalises
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * count / (count - 1), self.momentum)
        shape = (1, channels, 1, 1)
        scale = self.weight.view(shape) * torch.rsqrt(var.view(shape) + self.eps)
        return (x - mean.view(shape)) * scale + self.bias.view(shape)


def convert_to_gloo_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by GlooSyncBatchNorm, keeping parameters and running statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GlooSyncBatchNorm):
            sync = GlooSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            sync.load_state_dict(child.state_dict())
            setattr(module, name, sync)
        else:
            convert_to_gloo_sync_batchnorm(child)
    return module


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_image(model_fn, image_size: int, in_channels: int, training: bool = True) -> int:
    """FLOPs for one image, counted by Lightning's `measure_flops` on the meta device (no compute).

    Training counts forward plus backward (about 3x forward), which is what MFU compares to peak.
    """
    from lightning.fabric.utilities.throughput import measure_flops

    # Two images, halved: batch norm in training mode refuses one value per channel, which is what one
    # image leaves at the last stage of an 8-pixel input.
    with torch.device("meta"):
        model = model_fn()
        x = torch.randn(2, in_channels, image_size, image_size)
    if training:
        return int(measure_flops(model, lambda: model(x), lambda y: y.sum())) // 2
    return int(measure_flops(model, lambda: model(x))) // 2
