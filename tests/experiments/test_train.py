"""The runner end to end on the test-only experiment, and the records a run leaves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from hydra.utils import instantiate
from torch.nn import functional as F

from experiments.cli import main
from experiments.config import load_experiment
from experiments.run_info import RUN_DIR_ENV, claim_run_dir, git_state
from tests.experiments.conftest import TINY_EXPERIMENT

STEPS = 20


def test_train_learns_and_records_the_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    overrides = [f"output_root={tmp_path}", f"trainer.max_steps={STEPS}"]
    assert main(["train", str(TINY_EXPERIMENT), *overrides]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "tiny_regression"
    assert re.fullmatch(r"\d{8}-\d{6}", run_dir.name)

    config_text = (run_dir / "config.yaml").read_text()
    assert "${" not in config_text
    config = yaml.safe_load(config_text)
    assert config["run_dir"] == str(run_dir)
    assert config["trainer"]["max_steps"] == STEPS
    assert config["callbacks"]["last"]["dirpath"] == f"{run_dir}/checkpoints"
    git = json.loads((run_dir / "git.json").read_text())
    assert set(git) == {"revision", "dirty", "changes_sha256"}
    assert (run_dir / "logs" / "metrics.csv").is_file()

    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == STEPS
    assert checkpoint["run_info"] == {"config": config, "git": git}

    # The baseline is the same model untrained, on the same data.
    cfg = load_experiment(TINY_EXPERIMENT)
    data = instantiate(cfg.data)
    pl.seed_everything(cfg.seed)
    untrained = instantiate(cfg.model)
    trained = instantiate(cfg.model)
    trained.load_state_dict(checkpoint["state_dict"])
    with torch.no_grad():
        untrained_loss = F.mse_loss(untrained(data.inputs), data.targets).item()
        trained_loss = F.mse_loss(trained(data.inputs), data.targets).item()
    assert trained_loss < 0.1 * untrained_loss, (trained_loss, untrained_loss)


def test_run_folders_never_collide(tmp_path: Path) -> None:
    requested = tmp_path / "exp" / "20250101-000000"
    first, made_first = claim_run_dir(requested)
    second, made_second = claim_run_dir(requested)
    assert (first, second) == (requested, requested.with_name("20250101-000000-1"))
    assert made_first and made_second and second.is_dir()


def test_processes_of_other_ranks_join_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path / "rank0_run"))
    assert claim_run_dir(tmp_path / "elsewhere") == (tmp_path / "rank0_run", False)
    assert not (tmp_path / "elsewhere").exists()


def test_git_state_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_state(tmp_path) == {"revision": None, "dirty": None, "changes_sha256": None}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")
def test_git_state_of_a_checkout(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
        subprocess.run(["git", *identity, *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "file.txt").write_text("one\n")
    git("add", "file.txt")
    git("commit", "-q", "-m", "first")
    state = git_state(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", state["revision"])
    assert (state["dirty"], state["changes_sha256"]) == (False, None)
    (tmp_path / "file.txt").write_text("two\n")
    edited = git_state(tmp_path)
    assert (edited["revision"], edited["dirty"]) == (state["revision"], True)
    assert re.fullmatch(r"[0-9a-f]{64}", edited["changes_sha256"])
    assert git_state(tmp_path) == edited  # the same changes, the same hash
    (tmp_path / "new.txt").write_text("untracked\n")
    with_new = git_state(tmp_path)["changes_sha256"]
    (tmp_path / "new.txt").write_text("untracked, edited\n")
    assert len({edited["changes_sha256"], with_new, git_state(tmp_path)["changes_sha256"]}) == 3


def test_wandb_offline_run_holds_the_metrics_beside_the_csv_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = [f"output_root={tmp_path}", f"trainer.max_steps={STEPS}", "logger=wandb"]
    try:
        assert main(["train", str(TINY_EXPERIMENT), *overrides]) == 0
    finally:
        wandb.finish()
        wandb.teardown()  # the service has written every record before we read them
    (run_dir,) = (tmp_path / "tiny_regression").iterdir()
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (records,) = offline.glob("run-*.wandb")
    content = records.read_bytes()
    for key in (b"train/loss", b"train/lr", b"train/grad_norm", b"tiny_regression"):
        assert key in content, key  # metrics, the monitor's values and the config
    header = (run_dir / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "train/lr", "train/grad_norm"} <= set(header)
