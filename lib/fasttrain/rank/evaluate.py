"""Accuracy on the whole held-out split after training: the number a record states, where the
validation that steered the run (and stopped it at a target) saw only a fixed subset."""

from __future__ import annotations

from typing import Any

import torch


def full_test(module, datamodule, trainer) -> dict[str, Any]:
    """Each rank classifies its shard of the full test split; the counts are summed over ranks.

    Plain fp32 inference in eval mode (batch norm's running statistics), whatever precision trained it:
    the weights are the fp32 master copy."""
    from fasttrain.rank.data import ShardSampler

    dataset = datamodule.full_test_set()
    device = trainer.strategy.root_device
    model = module.to(device).eval()
    indices = ShardSampler(len(dataset), trainer.global_rank, trainer.world_size).indices
    counts = torch.zeros(2, dtype=torch.float64, device=device)  # correct, seen
    with torch.no_grad():
        for i in range(0, len(indices), 512):
            x, y = dataset[indices[i : i + 512]]
            logits = model(x.to(device))
            correct = (logits.argmax(1).cpu() == y).sum().item()
            counts += torch.tensor([correct, len(y)], dtype=torch.float64, device=device)
    correct, seen = trainer.strategy.reduce(counts, reduce_op="sum").tolist()
    return dict(accuracy=correct / seen, images=int(seen), step=trainer.global_step)
