"""What torch.autocast does to each op: cast down, kept in float32, or following its input."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _probes(device: torch.device) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    g = torch.Generator(device="cpu").manual_seed(0)

    def param(*shape):
        return torch.randn(*shape, generator=g).to(device)  # fp32, as a model's parameters are

    w_conv, w_lin, bn_w, bn_b = param(8, 8, 3, 3), param(10, 8 * 4 * 4), param(8), param(8)
    mean, var = torch.zeros(8, device=device), torch.ones(8, device=device)
    target = torch.zeros(4, dtype=torch.long, device=device)
    return {
        "conv2d": lambda x: F.conv2d(x, w_conv, padding=1),
        "linear": lambda x: F.linear(x.flatten(1), w_lin),
        "matmul": lambda x: x.flatten(1) @ x.flatten(1).T,
        "batch_norm": lambda x: F.batch_norm(x, mean, var, bn_w, bn_b, training=True),
        "relu": F.relu,
        "add (residual)": lambda x: x + x,
        "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, 1),
        "sum": lambda x: x.sum(),
        "exp": torch.exp,
        "softmax": lambda x: F.softmax(x.flatten(1), dim=1),
        "log_softmax": lambda x: F.log_softmax(x.flatten(1), dim=1),
        "cross_entropy": lambda x: F.cross_entropy(x.flatten(1)[:, :10], target),
        "layer_norm": lambda x: F.layer_norm(x, x.shape[1:]),
        "mse_loss": lambda x: F.mse_loss(x, torch.zeros_like(x)),
    }


def autocast_table(device_type: str, dtype: torch.dtype) -> list[dict[str, str]]:
    """What each op returns under torch.autocast(device_type, dtype): fed fp32 (as after the input) and fed
    the low-precision dtype (as after a convolution). `kind` is read from those two results."""
    device = torch.device(device_type)
    low = str(dtype).replace("torch.", "")
    x32 = torch.randn(4, 8, 4, 4, device=device)
    rows = []
    for name, op in _probes(device).items():
        out = {}
        for label, x in (("from_fp32", x32), ("from_low", x32.to(dtype))):
            try:
                with torch.autocast(device_type, dtype=dtype):
                    out[label] = str(op(x).dtype).replace("torch.", "")
            except Exception as exc:  # an op this device's kernels lack in that dtype
                out[label] = f"error ({type(exc).__name__})"
        if out["from_fp32"] == low:
            kind = f"cast down: runs in {low}"
        elif out["from_low"] == "float32":
            kind = "kept in float32"
        elif out["from_low"] == low and out["from_fp32"] == "float32":
            kind = "follows its input"
        else:
            kind = "other"
        rows.append(dict(op=name, **out, kind=kind))
    return rows
