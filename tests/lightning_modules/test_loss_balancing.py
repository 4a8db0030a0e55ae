"""BodyNet's gradient-magnitude rule for loss weights (GradientLossBalancing)."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_modules.common.loss_balancing import GradientLossBalancing, balanced_weights


class TwoLosses(pl.LightningModule):
    """A shared linear layer and two terms whose gradients differ by a known factor: `big` is
    100 x `small` on the same error, so its gradient is 100 x larger everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(3, 1)
        self.loss_weights = {"big": 0.3, "small": 0.7}
        self.seen_weights: list[dict[str, float]] = []

    def loss_terms(self, batch) -> dict[str, torch.Tensor]:
        inputs, targets = batch
        error = (self.shared(inputs) - targets).square().mean()
        return {"big": 100.0 * error, "small": error}

    def training_step(self, batch, batch_idx):
        self.seen_weights.append(dict(self.loss_weights))
        terms = self.loss_terms(batch)
        return sum(self.loss_weights[name] * value for name, value in terms.items())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def _fit(module, callback, tmp_path, steps: int, ckpt_path=None) -> pl.Trainer:
    data = TensorDataset(torch.randn(64, 3), torch.randn(64, 1))
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, DataLoader(data, batch_size=8), ckpt_path=ckpt_path)
    return trainer


def test_weights_bring_the_gradients_to_one_scale(tmp_path):
    module, callback = TwoLosses(), GradientLossBalancing(steps=3)
    trainer = _fit(module, callback, tmp_path, steps=5)
    assert module.seen_weights[0] == {"big": 0.5, "small": 0.5}  # equal while measuring
    assert callback.weights == pytest.approx({"big": 1 / 101, "small": 100 / 101}, rel=1e-4)
    assert module.seen_weights[-1] == pytest.approx(callback.weights)
    record = json.loads((tmp_path / "loss_weights.json").read_text())
    ratio = record["gradient_magnitudes"]["big"] / record["gradient_magnitudes"]["small"]
    assert ratio == pytest.approx(100.0, rel=1e-4) and record["steps"] == 3
    snippet = yaml.safe_load((tmp_path / "loss_weights.yaml").read_text())
    assert snippet["model"]["loss_weights"] == pytest.approx(callback.weights, rel=1e-5)
    # A resumed run keeps the weights found instead of measuring again.
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    again, resumed = TwoLosses(), GradientLossBalancing(steps=3)
    _fit(again, resumed, tmp_path / "resumed", steps=7, ckpt_path=tmp_path / "last.ckpt")
    assert again.seen_weights[0] == pytest.approx(callback.weights)


def test_the_weights_normalise_to_one_and_a_silent_loss_is_named():
    assert balanced_weights({"a": 2.0, "b": 1.0, "c": 4.0}) == pytest.approx(
        {"a": 2 / 7, "b": 4 / 7, "c": 1 / 7}
    )
    with pytest.raises(ValueError, match=r"\['b'\] produced no gradient"):
        balanced_weights({"a": 1.0, "b": 0.0})
    with pytest.raises(ValueError, match="not in the module's loss_weights"):
        GradientLossBalancing(losses=["nope"]).names(TwoLosses())
    with pytest.raises(ValueError, match="no trainable parameter"):
        GradientLossBalancing(parameters="backbone").shared_parameters(TwoLosses())


@pytest.mark.slow
def test_pare_runs_with_the_balancing_callback_from_the_command_line(
    tiny_world, body_models_root, tmp_path
):
    from experiments.config import load_experiment
    from experiments.train import train

    target = "lightning_modules.common.loss_balancing.GradientLossBalancing"
    cfg = load_experiment("pare_tiny", [
        f"+callbacks.balance._target_={target}", "+callbacks.balance.steps=2",
        "+callbacks.balance.parameters=network.backbone", f"body_model.root={body_models_root}",
        f"output_root={tmp_path}", f"cache_root={tmp_path / 'cache'}", "data.crop_size=32",
        "data.batch_size=2", "data.num_workers=0", "trainer.max_steps=3",
        "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "callbacks.best=null",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    ], data_root=tiny_world)  # fmt: skip
    run_dir = train(cfg)
    record = json.loads((run_dir / "loss_weights.json").read_text())
    weights = record["loss_weights"]
    assert set(weights) == {"keypoints3d", "keypoints2d", "pose", "betas", "parts"}
    assert sum(weights.values()) == pytest.approx(1.0) and min(weights.values()) > 0
