"""The LightningModule: ResNet-50, cross-entropy, accuracy, optimizer and schedule from the config."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule

from fasttrain.config import TrainConfig
from fasttrain.rank.models import convert_to_gloo_sync_batchnorm, resnet50
from fasttrain.rank.optim import build_optimizer, build_scheduler


class ResNetClassifier(LightningModule):
    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config = config
        self.model = resnet50(config.num_classes, config.in_channels, config.width, config.small_input)
        if config.sync_batchnorm and config.world_size > 1 and not config.on_gpu:
            # Lightning's sync_batchnorm uses torch.nn.SyncBatchNorm, which refuses CPU tensors.
            self.model = convert_to_gloo_sync_batchnorm(self.model)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._val_sums = torch.zeros(3)  # loss sum, correct, count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y, label_smoothing=self.config.label_smoothing)

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(3, device=self.device, dtype=torch.float64)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        correct = (logits.argmax(1) == y).sum()
        self._val_sums += torch.stack(
            [loss.double(), correct.double(), torch.tensor(len(y), device=self.device, dtype=torch.float64)]
        )

    def on_validation_epoch_end(self) -> None:
        # Exact over the whole validation set: sums from every rank's shard, then one division.
        loss_sum, correct, count = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum").tolist()
        self.log("val_acc", correct / max(count, 1))
        self.log("val_loss", loss_sum / max(count, 1))

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model, self.config)
        scheduler = build_scheduler(optimizer, self.config)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
