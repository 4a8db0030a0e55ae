"""Train one experiment: build every object its config names and call `Trainer.fit`.

Deliberately thin (after lightning-hydra-template's train.py): no method appears here. The config
comes from `experiments.config.load_experiment`; components receive plain keyword arguments
through `hydra.utils.instantiate` and never see the config.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.config import resolve
from experiments.run_info import (
    RunInfoCallback,
    claim_run_dir,
    git_state,
    shared_run_dir,
    write_run_info,
)


def train(cfg: DictConfig) -> Path:
    """Fit the experiment `cfg` in a new run folder `<output_root>/<exp>/<run>/` and return it."""
    run_dir, made_here = claim_run_dir(Path(resolve(cfg).run_dir))
    cfg = cfg.copy()
    cfg.run_dir, cfg.run_name = str(run_dir), run_dir.name
    cfg = resolve(cfg)
    git = git_state()
    if made_here:
        write_run_info(run_dir, cfg, git)

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all")
    named_callbacks = (cfg.callbacks or {}).values()
    callbacks = [instantiate(c, _convert_="all") for c in named_callbacks if c is not None]
    callbacks.append(RunInfoCallback(_plain(cfg), git))
    logger = False if cfg.logger is None else instantiate(cfg.logger, _convert_="all")
    trainer = instantiate(cfg.trainer, _convert_="all", logger=logger, callbacks=callbacks)
    with shared_run_dir(run_dir):
        trainer.fit(model, datamodule=datamodule)
    return run_dir


def _plain(cfg: DictConfig) -> dict:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return container
