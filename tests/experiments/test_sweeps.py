"""Sweep files: every swept key exists in its experiment; offline proposals; two trials run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from experiments import sweeps
from experiments.config import ConfigError

SWEEP_FILES = sorted(sweeps.SWEEP_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEP_FILES, ids=[p.stem for p in SWEEP_FILES])
def test_every_swept_key_exists_in_the_composed_config(path):
    sweep = sweeps.load_sweep(path)
    sweeps.check_keys(sweep, path)
    assert "${args_no_hyphens}" in sweep["command"]  # wandb passes the trial as overrides


def test_a_misspelled_key_is_named_before_anything_trains(tmp_path):
    sweep = yaml.safe_load(sweeps.sweep_path("pare_tiny_loss_weights").read_text())
    sweep["parameters"]["model.loss_weights.keypoint3d"] = {"values": [1.0]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(sweep))
    with pytest.raises(ConfigError, match="keypoint3d"):
        sweeps.check_keys(sweeps.load_sweep(path), path)
    with pytest.raises(ConfigError, match="unknown sweep 'nope'"):
        sweeps.sweep_path("nope")


def test_grid_and_random_proposals(tmp_path):
    path = Path("x.yaml")
    grid = {"method": "grid", "parameters": {"a": {"values": [1, 2]}, "b": {"values": ["x", "y"]}}}
    assert sweeps.propose(grid, 10, 0, path) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}
    ]  # fmt: skip
    assert sweeps.propose(grid, 3, 0, path) == sweeps.propose(grid, 4, 0, path)[:3]
    parameters = {"w": {"distribution": "log_uniform_values", "min": 0.1, "max": 10.0},
                  "n": {"distribution": "int_uniform", "min": 1, "max": 3},
                  "c": {"value": 7}}  # fmt: skip
    random = {"method": "random", "parameters": parameters}
    trials = sweeps.propose(random, 200, 0, path)
    assert trials == sweeps.propose(random, 200, 0, path) != sweeps.propose(random, 200, 1, path)
    assert all(0.1 <= t["w"] <= 10.0 and t["n"] in (1, 2, 3) and t["c"] == 7 for t in trials)
    assert sum(t["w"] < 1.0 for t in trials) == pytest.approx(100, abs=25)  # log-uniform
    with pytest.raises(ConfigError, match="bayes"):
        sweeps.propose({"method": "bayes", "parameters": parameters}, 2, 0, path)
    assert sweeps.trial_overrides({"a.b": 2.5, "c": "x"}) == ["a.b=2.5", 'c="x"']


@pytest.mark.slow
def test_the_offline_runner_runs_two_trials_and_ranks_them(
    tiny_world, body_models_root, tmp_path, monkeypatch, capsys
):
    from experiments.cli import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    status = main([
        "sweep", "pare_tiny_loss_weights", "--count", "2", "--data-root", str(tiny_world),
        f"body_model.root={body_models_root}", f"output_root={tmp_path}",
        f"cache_root={tmp_path / 'cache'}", "data.crop_size=32", "data.batch_size=2",
        "data.num_workers=0", "trainer.max_steps=2", "trainer.val_check_interval=2",
        "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    ])  # fmt: skip
    assert status == 0
    table = capsys.readouterr().out
    assert "| trial | model.loss_weights.keypoints3d" in table
    (record,) = (tmp_path / "sweeps").glob("pare_tiny_loss_weights-*.json")
    trials = json.loads(record.read_text())
    assert sorted(t["values"]["model.loss_weights.keypoints3d"] for t in trials) == [2.0, 5.0]
    scores = [t["val/pw3d_test/pa_mpjpe_mm"] for t in trials]
    assert scores == sorted(scores)  # best first
    for trial in trials:
        config = yaml.safe_load((Path(trial["run_dir"]) / "config.yaml").read_text())
        weight = config["model"]["loss_weights"]["keypoints3d"]
        assert weight == trial["values"]["model.loss_weights.keypoints3d"]
