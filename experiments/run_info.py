"""What a run leaves behind: its folder, its resolved config and the revision of the code.

A run folder `<output_root>/<exp>/<run>/` holds `config.yaml` (the resolved config as plain
YAML), `git.json` (`{"revision": ..., "dirty": ..., "changes_sha256": ...}`), the logger's
files and `checkpoints/`;
every checkpoint carries the same config and git state under the key `run_info`, so evaluating a
checkpoint needs nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
# Lightning's DDP launcher starts ranks > 0 by re-running the same command line; the runner
# hands them the folder that rank 0 made through this variable (see `shared_run_dir`).
RUN_DIR_ENV = "EXPERIMENTS_RUN_DIR"
CHECKPOINT_KEY = "run_info"


def claim_run_dir(requested: Path) -> tuple[Path, bool]:
    """The run folder to use, and whether this process made it (and so writes its records).

    Inside a process started by Lightning for another rank, the folder of rank 0; otherwise
    `requested`, or `<requested>-1`, `-2`, ... when that name is taken.
    """
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        return Path(inherited), False
    requested.parent.mkdir(parents=True, exist_ok=True)
    candidate, suffix = requested, 0
    while True:
        try:
            candidate.mkdir()
            return candidate, True
        except FileExistsError:
            suffix += 1
            candidate = requested.with_name(f"{requested.name}-{suffix}")


@contextmanager
def shared_run_dir(run_dir: Path) -> Iterator[None]:
    """Within the block, processes started for other ranks join `run_dir` instead of making one."""
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous


def launch_rank() -> int:
    """This process's global rank as its launcher says (torchrun's RANK, SLURM's SLURM_PROCID
    for `srun` tasks), before any process group exists; 0 for a single process."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def git_state(directory: Path = PACKAGE_DIR) -> dict[str, Any]:
    """`{"revision": commit hash, "dirty": bool, "changes_sha256": hash or None}` of the git
    checkout holding `directory`.

    `changes_sha256` identifies the uncommitted changes (None on a clean checkout): the
    sha256 of `git diff HEAD --binary` followed by the path and bytes of every untracked file
    git does not ignore. Two runs with the same revision and the same changes hash ran the
    same code, which is what `python -m experiments tables` keys reused results by. Each value
    is None when it cannot be known (not a checkout, no commit yet, no git).
    """
    revision = _git(["rev-parse", "HEAD"], directory)
    status = _git(["status", "--porcelain"], directory)
    dirty = None if status is None else bool(status)
    changes = _changes_sha256(directory) if dirty and revision is not None else None
    return {"revision": revision, "dirty": dirty, "changes_sha256": changes}


def _changes_sha256(directory: Path) -> str | None:
    """The sha256 of the checkout's uncommitted changes (`git_state`), None if git fails."""
    diff = _git_bytes(["diff", "HEAD", "--binary"], directory)
    untracked = _git_bytes(["ls-files", "--others", "--exclude-standard", "-z"], directory)
    top = _git(["rev-parse", "--show-toplevel"], directory)
    if diff is None or untracked is None or top is None:
        return None
    digest = hashlib.sha256(diff)
    for name in sorted(n for n in untracked.split(b"\0") if n):
        path = Path(top) / name.decode()
        digest.update(b"\0" + name + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def write_run_info(run_dir: Path, cfg: DictConfig, git: dict[str, Any]) -> None:
    """Write `config.yaml` (`cfg`, already resolved) and `git.json` into `run_dir`."""
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (run_dir / "git.json").write_text(json.dumps(git, indent=2) + "\n")


class RunInfoCallback(pl.Callback):
    """Stores the resolved config and the git state in every checkpoint, under `run_info`."""

    def __init__(self, config: dict[str, Any], git: dict[str, Any]) -> None:
        self.config = config
        self.git = git

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CHECKPOINT_KEY] = {"config": self.config, "git": self.git}


def _git(args: list[str], cwd: Path) -> str | None:
    output = _git_bytes(args, cwd)
    return None if output is None else output.decode().strip()


def _git_bytes(args: list[str], cwd: Path) -> bytes | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, check=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout
