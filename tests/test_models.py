import pytest
import torch
from fasttrain.rank.models import ResNet50, count_parameters, flops_per_image, resnet50
from torch import nn
from torchvision.models import resnet50 as tv_resnet50


def test_full_size_is_torchvisions_resnet50():
    assert count_parameters(resnet50()) == 25_557_032


def test_our_resnet50_at_width_one_is_torchvisions_topology():
    """Loading torchvision's weights strictly proves the same modules, names and shapes."""
    ours, theirs = ResNet50(width=1.0, small_input=False), tv_resnet50(weights=None)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("in_channels", [1, 3])
def test_small_input_variant_keeps_the_50_layer_topology(in_channels):
    model = resnet50(num_classes=10, in_channels=in_channels, width=0.25, small_input=True)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 53  # stem + 16 blocks x 3 + 4 projection shortcuts
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert convs[0].kernel_size == (3, 3) and isinstance(model.maxpool, nn.Identity)
    assert model(torch.randn(2, in_channels, 28, 28)).shape == (2, 10)
    assert count_parameters(model) < count_parameters(resnet50()) / 10


def test_flops_are_counted_on_the_meta_device():
    full = flops_per_image(resnet50, 224, 3)
    # ~3x the 4.09 G multiply-adds (8.2 GFLOP) of the forward pass
    assert 22e9 < full < 26e9
    assert flops_per_image(resnet50, 224, 3, training=False) == pytest.approx(full / 3, rel=0.01)
