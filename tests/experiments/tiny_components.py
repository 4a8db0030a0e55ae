"""A test-only LightningModule and DataModule: linear regression on fixed random tensors.

They exist to exercise the runner (tests/experiments/configs/tiny_regression.yaml names them);
the suite ships no demo model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class TinyRegression(pl.LightningModule):
    """Learns y = A x + b with one linear layer; optimizer and scheduler arrive as factories."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(inputs)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        inputs, targets = batch
        loss = F.mse_loss(self(inputs), targets)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class TinyRegressionData(pl.LightningDataModule):
    """`num_samples` pairs (x, A x + b + noise) with x, A, b standard normal, drawn from `seed`."""

    def __init__(
        self,
        num_samples: int,
        in_features: int,
        out_features: int,
        batch_size: int,
        noise: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(out_features, in_features, generator=generator)
        bias = torch.randn(out_features, generator=generator)
        self.inputs = torch.randn(num_samples, in_features, generator=generator)
        noise_sample = noise * torch.randn(num_samples, out_features, generator=generator)
        self.targets = self.inputs @ weight.T + bias + noise_sample
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        dataset = TensorDataset(self.inputs, self.targets)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True)


class SignalAtStep(pl.Callback):
    """Sends `signal` to its own process at the end of optimizer step `step` (after the
    callbacks listed before it, such as the runner's `last` checkpoint, have run): the
    interruption tests' stand-in for a scheduler or the OOM killer."""

    def __init__(self, step: int, signal: str = "SIGKILL") -> None:
        import signal as signals

        self.step, self.signum = step, getattr(signals, signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        import os

        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
