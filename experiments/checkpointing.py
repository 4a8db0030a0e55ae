"""Checkpoints that survive interruption, and finding the one to resume from.

- `atomic_write`: a file is written to a temporary name in its own folder, flushed to disk and
  renamed over the target, so a kill mid-write leaves the previous file intact. Lightning's
  own save goes through fsspec, whose local transaction writes the temporary file into the
  system temp folder and moves it: on a cluster, where that folder and the checkpoint folder
  are different file systems, the move is a copy and not atomic, hence our own CheckpointIO.
- `AtomicCheckpointIO`: Lightning's torch checkpoint IO with that write; the runner always
  installs it.
- `LastCheckpoint`: `<run>/checkpoints/last.ckpt` every `every_n_steps` optimizer steps, at the
  end of every training epoch and of training, and before the process exits on SIGTERM
  (Lightning turns it into `SIGTERMException` after the current step) or SIGUSR1 (handled here
  unless a SLURM environment with auto-requeue already owns it: then Lightning writes its
  `hpc_ckpt_<n>.ckpt` and requeues). It also keeps the global random states (torch, NumPy,
  Python; CUDA when present) and restores them before the first resumed step, which Lightning
  does not; with the sampler of `datamodules.sampling` a resumed run repeats an uninterrupted
  one. In DDP the signal flag is reduced over ranks each step so all ranks save together.
- `resume_checkpoint`: `--resume last` (the newest run of the experiment that has a
  checkpoint), `--resume auto` (this run folder's checkpoint if it has one, else a fresh
  start: what a requeued SLURM job runs), or a path. The newer of `last.ckpt` and
  `hpc_ckpt_*.ckpt` counts. The file is checked with `weights_only=True` first, so a truncated
  or foreign file is refused with its name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

LAST = "last.ckpt"
HPC_GLOB = "hpc_ckpt_*.ckpt"
RESUME_CHOICES = ("last", "auto")


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync it, rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from the group
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself reaches the disk
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose saves are atomic on local file systems (module docstring)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options: {storage_options}")
        atomic_write(Path(path), lambda file: torch.save(checkpoint, file))


# --------------------------------------------------------------------------- random states


def rng_states() -> dict[str, Any]:
    """The global random states, as tensors and ints (loadable with weights_only=True)."""
    # the legacy global NumPy state is what third-party code draws from
    kind, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)  # noqa: NPY002
    assert isinstance(keys, np.ndarray)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states` returned."""
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))  # noqa: NPY002
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# --------------------------------------------------------------------------- the callback


class LastCheckpoint(pl.Callback):
    """Keeps `<dirpath>/last.ckpt` current (module docstring).

    Args:
        dirpath: the run's checkpoint folder.
        every_n_steps: save every this many optimizer steps (0: only at epoch and run ends).
    """

    def __init__(self, dirpath: str, every_n_steps: int = 500) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got {every_n_steps}")
        self.path = Path(dirpath) / LAST
        self.every_n_steps = every_n_steps
        self._saved_at: int | None = None
        self._signalled: int | None = None
        self._previous_handler: Any = None
        self._pending_rng: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"

    def state_dict(self) -> dict[str, Any]:
        return {"rng_states": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_rng = state_dict.get("rng_states")

    def save(self, trainer: pl.Trainer, why: str) -> None:
        """Flush the loggers and write last.ckpt (every rank must call this: the strategy
        synchronises), so the logs on disk reach at least the checkpoint's step."""
        for logger in trainer.loggers:
            logger.save()
        trainer.save_checkpoint(self.path)
        self._saved_at = trainer.global_step
        if trainer.is_global_zero:
            log.info("saved %s at step %d (%s)", self.path, trainer.global_step, why)

    # hooks ---------------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning's own handlers (a SLURM environment with auto-requeue owns SIGUSR1)
        current = signal.getsignal(signal.SIGUSR1)
        if current in (signal.SIG_DFL, None) and _in_main_thread():
            self._previous_handler = current
            signal.signal(signal.SIGUSR1, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signalled = signum

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending_rng is not None:
            set_rng_states(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        signalled = self._signalled is not None
        if trainer.world_size > 1:
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        if signalled:
            self.save(trainer, "SIGUSR1")
            trainer.should_stop = True
            return
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and step != self._saved_at:
            self.save(trainer, f"every {self.every_n_steps} steps")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._saved_at:
            self.save(trainer, "end of epoch")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._saved_at:
            self.save(trainer, "end of training")

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, SIGTERMException):
            self.save(trainer, "SIGTERM")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous_handler is not None and _in_main_thread():
            signal.signal(signal.SIGUSR1, self._previous_handler)
            self._previous_handler = None

    @property
    def interrupted_by(self) -> str | None:
        """'SIGUSR1' when the last fit stopped on that signal, else None."""
        return "SIGUSR1" if self._signalled is not None else None


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# --------------------------------------------------------------------------- resuming


def run_checkpoint(run_dir: Path) -> Path | None:
    """The newest of `<run>/checkpoints/last.ckpt` and `<run>/hpc_ckpt_*.ckpt`, or None."""
    candidates = [run_dir / "checkpoints" / LAST, *run_dir.glob(HPC_GLOB)]
    existing = [path for path in candidates if path.is_file()]
    return max(existing, key=lambda path: path.stat().st_mtime_ns) if existing else None


def resume_checkpoint(resume: str, experiment_dir: Path, run_dir: Path) -> Path | None:
    """The checkpoint `--resume` names (module docstring); None: start `run_dir` fresh.

    `experiment_dir` is `<output_root>/<exp>`; `run_dir` the folder this invocation would use.
    FileNotFoundError when `last` finds no run or a path does not exist; ValueError when the
    file does not load.
    """
    if resume == "auto":
        found = run_checkpoint(run_dir) if run_dir.is_dir() else None
    elif resume == "last":
        runs = [path for path in experiment_dir.glob("*") if path.is_dir()]
        found_all = [c for c in (run_checkpoint(run) for run in runs) if c is not None]
        if not found_all:
            raise FileNotFoundError(
                f"--resume last: no run of {experiment_dir.name} under {experiment_dir} has a "
                f"checkpoint ({LAST} or {HPC_GLOB})"
            )
        found = max(found_all, key=lambda path: path.stat().st_mtime_ns)
    else:
        found = Path(resume)
        if not found.is_file():
            raise FileNotFoundError(f"--resume: checkpoint not found: {found}")
    if found is not None:
        check_loadable(found)
    return found


def check_loadable(path: Path, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint at `path`, read with `weights_only=True`; ValueError naming the file.
    `mmap` maps the tensors instead of reading them (for callers that only need metadata)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises many kinds for a truncated or foreign file
        raise ValueError(
            f"cannot load checkpoint {path}: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def run_dir_of(checkpoint: Path) -> Path:
    """The run folder a checkpoint belongs to (`<run>/checkpoints/x.ckpt` or `<run>/hpc_*`)."""
    folder = checkpoint.parent
    return folder.parent if folder.name == "checkpoints" else folder
