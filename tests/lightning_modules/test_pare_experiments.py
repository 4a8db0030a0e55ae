"""Every PARE experiment YAML instantiates and trains one step on the tiny synthetic world at a
reduced input size (shapes, finite loss, gradients reaching the backbone)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from experiments.config import available_experiments, load_experiment, resolve

PARE_EXPERIMENTS = [name for name in available_experiments() if name.startswith("pare")]


@pytest.fixture(scope="module")
def world(tmp_path_factory, body_models_root) -> Path:
    from datamodules.synthetic.world import write_world

    root = tmp_path_factory.mktemp("pare_world")
    datasets = ["coco", "h36m", "pw3d", "surreal"]
    write_world(root, "tiny", datasets, body_model_root=body_models_root, progress=False)
    return root


class _Probe(pl.Callback):
    """Records the loss and the backbone's gradient norm of each step."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.backbone_grad: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_after_backward(self, trainer, pl_module) -> None:
        grads = [
            p.grad.norm() for p in pl_module.network.backbone.parameters() if p.grad is not None
        ]
        self.backbone_grad.append(float(torch.stack(grads).norm()) if grads else 0.0)


@pytest.mark.parametrize("experiment", PARE_EXPERIMENTS)
def test_one_training_step(experiment, world, body_models_root, tmp_path):
    cfg = resolve(load_experiment(experiment, [
        f"body_model.root={body_models_root}", "data.crop_size=64", "data.batch_size=2",
        "data.num_workers=0", f"cache_root={tmp_path / 'cache'}",
    ], data_root=world))  # fmt: skip
    model = instantiate(cfg.model, _convert_="all")
    datamodule = instantiate(cfg.data, _convert_="all")
    probe = _Probe()
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[probe], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    assert len(probe.losses) == 1 and math.isfinite(probe.losses[0]) and probe.losses[0] > 0
    assert probe.backbone_grad[0] > 0
    batch = next(iter(datamodule.train_dataloader()))
    with torch.no_grad():
        prediction = model.eval().predict_step(batch, 0, with_attention=True)
    assert prediction.vertices.shape == (2, 1, 6890, 3)
    assert prediction.keypoints3d.shape[:2] == (2, 1) and prediction.pose.shape == (2, 1, 72)
    assert torch.isfinite(prediction.transl).all() and (prediction.transl[..., 2] > 0).all()
