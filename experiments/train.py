"""Train one experiment: build every object its config names and call `Trainer.fit`.

Deliberately thin (after lightning-hydra-template's train.py): no method appears here. The config
comes from `experiments.config.load_experiment`; components receive plain keyword arguments
through `hydra.utils.instantiate` and never see the config.

Resuming (`resume`: `last`, `auto` or a checkpoint path; `experiments.checkpointing`) continues
the checkpoint's run in its own folder: Lightning restores step, optimizer, schedulers,
callbacks and the training DataLoader's position; the folder's `config.yaml` and `git.json`
are rewritten for the new invocation (overrides such as a larger `trainer.max_steps` are
allowed). A finished run writes `<run>/metrics.json`, the last value of every logged metric.
Checkpoints are always written atomically (`AtomicCheckpointIO`). A run stopped by
SIGTERM or SIGUSR1 saves `last.ckpt` and exits with status 128 + the signal number, so a job
script can tell it apart from a finished run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from lightning_fabric.plugins.io.checkpoint_io import CheckpointIO
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from experiments.checkpointing import (
    RESUME_CHOICES,
    AtomicCheckpointIO,
    LastCheckpoint,
    resume_checkpoint,
    run_checkpoint,
    run_dir_of,
)
from experiments.config import resolve
from experiments.run_info import (
    RUN_DIR_ENV,
    RunInfoCallback,
    claim_run_dir,
    git_state,
    launch_rank,
    shared_run_dir,
    write_run_info,
)

log = logging.getLogger(__name__)


class Interrupted(SystemExit):
    """Training stopped on a signal after saving `last.ckpt`; the exit status is 128 + signal."""


def run_folder(requested: Path, resume: str | None) -> tuple[Path, bool, Path | None]:
    """(run folder, whether this process writes its records, checkpoint to resume or None).

    Processes that Lightning starts for ranks > 0 join rank 0's folder and find the same
    checkpoint in it (rank 0 resolved `last` / `auto` before they started).
    """
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        run_dir = Path(inherited)
        if resume is None:
            return run_dir, False, None
        return run_dir, False, run_checkpoint(run_dir) if resume in RESUME_CHOICES else Path(resume)
    if resume is None:
        return (*claim_run_dir(requested), None)
    checkpoint = resume_checkpoint(resume, requested.parent, requested)
    if checkpoint is not None:
        return run_dir_of(checkpoint), True, checkpoint
    requested.mkdir(parents=True, exist_ok=True)  # `auto` without a checkpoint: start it here
    return requested, True, None


def train(cfg: DictConfig, resume: str | None = None) -> Path:
    """Fit the experiment `cfg` in a new run folder `<output_root>/<exp>/<run>/`, or continue
    the run that `resume` names (module docstring), and return the folder."""
    run_dir, made_here, checkpoint = run_folder(Path(resolve(cfg).run_dir), resume)
    cfg = cfg.copy()
    cfg.run_dir, cfg.run_name = str(run_dir), run_dir.name
    cfg = resolve(cfg)
    git = git_state()
    if made_here and launch_rank() == 0:  # srun starts every rank with the same command
        write_run_info(run_dir, cfg, git)

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all")
    named_callbacks = (cfg.callbacks or {}).values()
    callbacks = [instantiate(c, _convert_="all") for c in named_callbacks if c is not None]
    callbacks.append(RunInfoCallback(_plain(cfg), git))
    named_loggers = (cfg.logger or {}).values()
    loggers = [instantiate(node, _convert_="all") for node in named_loggers if node is not None]
    for run_logger in loggers:
        run_logger.log_hyperparams(_plain(cfg))  # the resolved config (hparams.yaml, wandb)
    plugins = [instantiate(p, _convert_="all") for p in cfg.trainer.get("plugins") or []]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    # Without a ModelCheckpoint of ours Lightning would add its default one beside `last`.
    checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    trainer = instantiate(
        cfg.trainer, _convert_="all", logger=loggers or False, callbacks=callbacks,
        plugins=plugins, enable_checkpointing=checkpointing,
    )  # fmt: skip
    if checkpoint is not None:
        log.info("resuming %s from %s", run_dir, checkpoint)
    with shared_run_dir(run_dir):
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=checkpoint)
        except SIGTERMException:
            raise Interrupted(128 + signal.SIGTERM) from None
    if any(isinstance(c, LastCheckpoint) and c.interrupted_by for c in callbacks):
        raise Interrupted(128 + signal.SIGUSR1)
    if trainer.is_global_zero:
        write_final_metrics(run_dir, trainer)
    return run_dir


def write_final_metrics(run_dir: Path, trainer: pl.Trainer) -> None:
    """`<run>/metrics.json`: the last value of every metric the run logged (sweeps read it)."""
    values = {name: float(value) for name, value in trainer.callback_metrics.items()}
    (run_dir / "metrics.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


def _plain(cfg: DictConfig) -> dict:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return container
