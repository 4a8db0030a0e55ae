"""What every training run logs besides the method's own losses and metrics.

`TrainingMonitor`: the learning rate of each optimizer parameter group (`train/lr`, or
`train/lr_group<i>` with several groups) and the total 2-norm of the gradients before each
optimizer step (`train/grad_norm`, after gradient unscaling under fp16 AMP, before
clipping), through the module's `log`, so they reach every logger of the run (and nothing
fails without one, unlike Lightning's LearningRateMonitor).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


class TrainingMonitor(pl.Callback):
    """Logs `train/lr` and `train/grad_norm` (module docstring)."""

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        norms = [p.grad.detach().norm(2) for p in pl_module.parameters() if p.grad is not None]
        if norms:
            total = torch.linalg.vector_norm(torch.stack(norms).float(), 2)
            pl_module.log("train/grad_norm", total, on_step=True, on_epoch=False, batch_size=1)
        groups = optimizer.param_groups
        for index, group in enumerate(groups):
            name = "train/lr" if len(groups) == 1 else f"train/lr_group{index}"
            pl_module.log(name, float(group["lr"]), on_step=True, on_epoch=False, batch_size=1)
