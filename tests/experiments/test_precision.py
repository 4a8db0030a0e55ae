"""The precision presets train the tiny PARE one step on CPU through the runner."""

from __future__ import annotations

import math

import pytest
import torch

from experiments.config import load_experiment
from experiments.train import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])  # preset name = Lightning's
def test_precision_presets_train_one_step(precision, tiny_world, body_models_root, tmp_path):
    cfg = load_experiment("pare_tiny", [
        f"precision={precision}", f"body_model.root={body_models_root}", f"output_root={tmp_path}",
        f"cache_root={tmp_path / 'cache'}", "data.crop_size=32", "data.batch_size=2",
        "data.num_workers=0", "trainer.max_steps=1", "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0", "trainer.log_every_n_steps=1", "callbacks.best=null",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    ], data_root=tiny_world)  # fmt: skip
    assert cfg.trainer.precision == precision
    run_dir = train(cfg)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 1
    assert checkpoint["run_info"]["config"]["trainer"]["precision"] == precision
    assert all(v.dtype != torch.bfloat16 for v in checkpoint["state_dict"].values())  # fp32 master
    losses = (run_dir / "logs" / "metrics.csv").read_text().splitlines()
    header = losses[0].split(",")
    loss = float(losses[1].split(",")[header.index("train/loss")])
    assert math.isfinite(loss) and loss > 0
