"""Composition of experiment configs: groups, overrides, paths and the checks on keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from experiments.config import (
    BASE_DIR,
    ConfigError,
    find_experiment,
    load_base,
    load_experiment,
    resolve,
    to_yaml,
)
from tests.experiments.conftest import TINY_EXPERIMENT


def test_experiment_composes_from_base_groups() -> None:
    cfg = load_experiment(TINY_EXPERIMENT)
    assert OmegaConf.is_struct(cfg)
    assert cfg.exp_name == "tiny_regression"
    assert cfg.model._target_ == "tests.experiments.tiny_components.TinyRegression"
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    assert cfg.trainer.accelerator == "cpu"  # `- override trainer: cpu` in the experiment
    assert cfg.trainer.max_steps == 40  # the experiment's own value beats the base's -1
    assert cfg.trainer.log_every_n_steps == 1
    assert cfg.logger.csv._target_ == "experiments.loggers.CSVLogger"
    assert cfg.seed == 0


def test_overrides_change_values() -> None:
    cfg = load_experiment(TINY_EXPERIMENT, ["trainer.max_steps=7", "data.batch_size=8", "seed=3"])
    assert (cfg.trainer.max_steps, cfg.data.batch_size, cfg.seed) == (7, 8, 3)


def test_plus_sets_an_argument_the_config_does_not_list() -> None:
    cfg = load_experiment(TINY_EXPERIMENT, ["+trainer.gradient_clip_algorithm=value"])
    assert cfg.trainer.gradient_clip_algorithm == "value"


@pytest.mark.parametrize(
    ("choice", "key", "expected"),
    [
        ("trainer=default", "trainer.accelerator", "auto"),
        ("trainer=cpu", "trainer.devices", 1),
        ("trainer=gpu", "trainer.precision", "bf16-mixed"),
        ("logger=none", "logger", None),
        ("logger=wandb", "logger.wandb._target_", "pytorch_lightning.loggers.WandbLogger"),
        ("logger=wandb", "logger.csv._target_", "experiments.loggers.CSVLogger"),
        ("trainer=ddp_cpu", "trainer.devices", 2),
        ("precision=16-mixed", "trainer.precision", "16-mixed"),
    ],
)
def test_group_selection(choice: str, key: str, expected: object) -> None:
    cfg = load_experiment(TINY_EXPERIMENT, [choice])
    assert OmegaConf.select(cfg, key) == expected


def test_wandb_runs_offline_grouped_by_method_and_named_after_the_run() -> None:
    cfg = resolve(load_experiment(TINY_EXPERIMENT, ["logger=wandb", "run_name=r1"]))
    assert cfg.logger.wandb.mode == "offline"
    assert cfg.logger.wandb.group == "tiny_regression"
    assert cfg.logger.wandb.name == "tiny_regression-r1"
    assert cfg.logger.wandb.save_dir == cfg.run_dir


def test_misspelled_override_names_the_valid_keys() -> None:
    with pytest.raises(ConfigError) as error:
        load_experiment(TINY_EXPERIMENT, ["trainer.max_stepz=3"])
    message = str(error.value)
    assert "'max_stepz'" in message
    assert "Did you mean 'max_steps'?" in message
    assert "accelerator" in message and "log_every_n_steps" in message


@pytest.mark.parametrize(
    ("override", "suggestion", "valid_keys"),
    [
        ("sed=1", "seed", ["data_root", "body_model", "callbacks"]),
        ("body_model.nmae=smpl", "name", ["name", "root"]),
        ("model.optimizer.lrr=0.5", "lr", ["momentum", "weight_decay"]),
    ],
)
def test_misspelled_override_anywhere(override: str, suggestion: str, valid_keys: list) -> None:
    with pytest.raises(ConfigError) as error:
        load_experiment(TINY_EXPERIMENT, [override])
    message = str(error.value)
    assert f"Did you mean '{suggestion}'?" in message
    assert all(key in message for key in valid_keys)


def test_override_of_an_unlisted_argument_explains_the_plus() -> None:
    with pytest.raises(ConfigError, match=r"\+trainer\.gradient_clip_algorithm=value"):
        load_experiment(TINY_EXPERIMENT, ["trainer.gradient_clip_algorithm=value"])


def test_unknown_group_option_lists_the_options() -> None:
    with pytest.raises(ConfigError, match="Available options in 'trainer'") as error:
        load_experiment(TINY_EXPERIMENT, ["trainer=cpuu"])
    assert "gpu" in str(error.value)


def _bad_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = TINY_EXPERIMENT.read_text()
    assert old in text
    path = tmp_path / "tiny_bad.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "suggestion", "valid_keys"),
    [
        # top level: checked against the keys base/suite.yaml declares
        ("method: tiny_regression", "method: tiny_regression\nsed: 1", "seed", ["output_root"]),
        # a _target_ node: checked against the constructor of its target
        ("num_samples: 256", "num_sampels: 256", "num_samples", ["batch_size", "noise"]),
        # a _target_ node nested in another (an optimizer partial)
        ("lr: 0.1", "lrr: 0.1", "lr", ["momentum"]),
        # a plain node declared by the base
        ("method: tiny_regression", "method: x\nbody_model:\n  nmae: smpl", "name", ["root"]),
    ],
)
def test_misspelled_key_in_a_yaml_file(
    tmp_path: Path, old: str, new: str, suggestion: str, valid_keys: list
) -> None:
    with pytest.raises(ConfigError) as error:
        load_experiment(_bad_copy(tmp_path, old, new))
    message = str(error.value)
    assert f"Did you mean '{suggestion}'?" in message
    assert all(key in message for key in valid_keys)


def test_new_callbacks_may_be_added_by_name(tmp_path: Path) -> None:
    callback = (
        "callbacks:\n  lr_monitor:\n"
        "    _target_: pytorch_lightning.callbacks.LearningRateMonitor\n"
        "    logging_interval: step\n"
    )
    cfg = load_experiment(_bad_copy(tmp_path, "model:\n", callback + "model:\n"))
    assert set(cfg.callbacks) == {"monitor", "last", "lr_monitor"}
    with pytest.raises(ConfigError, match="Did you mean 'logging_interval'"):
        load_experiment(_bad_copy(tmp_path, "model:\n", callback.replace("ging", "") + "model:\n"))


def test_unimportable_target_is_refused_at_load_time(tmp_path: Path) -> None:
    path = _bad_copy(tmp_path, "torch.optim.SGD", "torch.optim.SGDD")
    with pytest.raises(ConfigError, match=r"Cannot import _target_ 'torch.optim.SGDD'"):
        load_experiment(path)


def test_experiment_must_build_on_the_suite(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="first entry of its defaults list must be 'suite'"):
        load_experiment(_bad_copy(tmp_path, "  - suite\n  - override trainer: cpu\n", ""))


def test_unknown_experiment_name() -> None:
    with pytest.raises(ConfigError, match="Unknown experiment 'no_such_experiment'"):
        find_experiment("no_such_experiment")
    with pytest.raises(ConfigError, match="not found"):
        find_experiment("no/such/file.yaml")


def test_unset_mandatory_value_is_an_error_when_resolving(tmp_path: Path) -> None:
    cfg = load_experiment(_bad_copy(tmp_path, "method: tiny_regression\n", ""))
    assert "method: ???" in to_yaml(cfg)  # printable ...
    with pytest.raises(ConfigError, match="method"):
        resolve(cfg)  # ... but not trainable


def test_to_yaml_is_resolved_plain_yaml() -> None:
    text = to_yaml(load_experiment(TINY_EXPERIMENT, ["run_name=r1"]))
    assert "${" not in text
    plain = yaml.safe_load(text)
    assert plain["data"]["in_features"] == 4  # was ${model.in_features}
    assert plain["run_dir"] == "checkpoints/tiny_regression/r1"
    assert plain["callbacks"]["last"]["dirpath"] == "checkpoints/tiny_regression/r1/checkpoints"


def test_default_paths_are_relative() -> None:
    cfg = resolve(load_experiment(TINY_EXPERIMENT, ["run_name=r1"]))
    assert cfg.data_root == "data/synthetic"
    assert cfg.cache_root == "data/synthetic/.cache"
    assert cfg.body_model.root == "body_models"
    assert cfg.body_model.name == "mannequin"
    assert cfg.output_root == "checkpoints"
    assert cfg.run_dir == "checkpoints/tiny_regression/r1"


def test_environment_variables_set_the_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_ROOT", "datasets")
    monkeypatch.setenv("BODY_MODELS", "models/body")
    cfg = resolve(load_experiment(TINY_EXPERIMENT))
    assert (cfg.data_root, cfg.cache_root, cfg.body_model.root) == (
        "datasets",
        "datasets/.cache",
        "models/body",
    )
    monkeypatch.setenv("CACHE_ROOT", "scratch/cache")
    assert resolve(load_experiment(TINY_EXPERIMENT)).cache_root == "scratch/cache"


def test_data_root_argument_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_ROOT", "datasets")
    cfg = resolve(load_experiment(TINY_EXPERIMENT, data_root="my data/it's here"))
    assert cfg.data_root == "my data/it's here"
    assert cfg.cache_root == "my data/it's here/.cache"


def test_base_config_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BODY_MODELS", "elsewhere")
    assert load_base().body_model.root == "elsewhere"
    assert load_base(["body_model.root=there"]).body_model.root == "there"
    with pytest.raises(ConfigError, match="Did you mean 'root'"):
        load_base(["body_model.rot=there"])


def test_no_absolute_path_in_the_base_configs() -> None:
    files = sorted(BASE_DIR.rglob("*.yaml"))
    assert len(files) >= 6

    def strings(node: object) -> list[str]:
        if isinstance(node, dict):
            return [s for key, value in node.items() for s in [str(key), *strings(value)]]
        if isinstance(node, list):
            return [s for item in node for s in strings(item)]
        return [node] if isinstance(node, str) else []

    for path in files:
        for text in strings(yaml.safe_load(path.read_text())):
            assert not os.path.isabs(text) and not text.startswith("~"), (path, text)
    resolved = OmegaConf.to_container(resolve(load_experiment(TINY_EXPERIMENT)))
    for text in strings(resolved):
        assert not os.path.isabs(text), text
