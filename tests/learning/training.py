"""What the learning tests share: training an experiment as shipped, quietly, on a world."""

from __future__ import annotations

from pathlib import Path


def train_as_shipped(experiment: str, seed: int, data_root: Path, body_models_root: Path,
                     out: Path) -> Path:  # fmt: skip
    """Train `experiment` through the runner with its own settings (no validation, no logger,
    no progress bar); the run folder."""
    from experiments.config import load_experiment
    from experiments.train import train

    cfg = load_experiment(experiment, [
        f"body_model.root={body_models_root}", f"output_root={out}", f"seed={seed}",
        "logger=none", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    ], data_root=data_root)  # fmt: skip
    return train(cfg)
