"""`python -m experiments`: argument handling, exit codes, and the body-model commands' wiring."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from experiments.cli import main
from tests.experiments.conftest import REPO_ROOT, TINY_EXPERIMENT


def _run_module(*args: str) -> subprocess.CompletedProcess:
    """`python -m experiments ARGS` as a user runs it: from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "experiments", *args],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_config_command_prints_resolved_yaml() -> None:
    result = _run_module("config", str(TINY_EXPERIMENT), "trainer.max_steps=5", "run_name=r1")
    assert result.returncode == 0, result.stderr
    assert "${" not in result.stdout
    printed = yaml.safe_load(result.stdout)
    assert printed["exp_name"] == "tiny_regression"
    assert printed["trainer"]["max_steps"] == 5
    assert printed["logger"]["csv"]["save_dir"] == "checkpoints/tiny_regression/r1"


def test_bad_key_exits_with_status_2_and_a_message() -> None:
    result = _run_module("config", str(TINY_EXPERIMENT), "trainer.max_stepz=5")
    assert result.returncode == 2
    assert "Did you mean 'max_steps'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_options_and_overrides_mix_in_any_order(capsys: pytest.CaptureFixture) -> None:
    argv = ["config", str(TINY_EXPERIMENT), "seed=3", "--data-root", "elsewhere", "trainer=gpu"]
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == 3
    assert printed["data_root"] == "elsewhere"
    assert printed["cache_root"] == "elsewhere/.cache"
    assert printed["trainer"]["accelerator"] == "gpu"


def test_unknown_experiment_exits_with_status_2(capsys: pytest.CaptureFixture) -> None:
    assert main(["config", "no_such_experiment"]) == 2
    assert "Unknown experiment 'no_such_experiment'" in capsys.readouterr().err


def test_unknown_option_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["config", str(TINY_EXPERIMENT), "--no-such-option"])
    assert exit_info.value.code == 2


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple, dict]]:
    """Replace body.mannequin.make_mannequin and body.convert.convert_smpl by recorders."""
    recorded: list[tuple[str, tuple, dict]] = []
    for module_name, function_name in [
        ("body.mannequin", "make_mannequin"),
        ("body.convert", "convert_smpl"),
    ]:
        try:
            module = __import__(module_name, fromlist=[function_name])
        except ImportError:  # not written yet: a stand-in module is enough for the wiring
            module = types.ModuleType(module_name)
            monkeypatch.setitem(sys.modules, module_name, module)

        def record(*args: Any, _name: str = function_name, **kwargs: Any) -> Path:
            recorded.append((_name, args, kwargs))
            return Path("written")

        monkeypatch.setattr(module, function_name, record, raising=False)
    return recorded


def test_make_mannequin_defaults_to_the_body_model_root(calls: list) -> None:
    assert main(["make-mannequin"]) == 0
    assert calls == [("make_mannequin", (Path("body_models/mannequin"),), {"overwrite": False})]


def test_make_mannequin_follows_environment_and_overrides(
    calls: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BODY_MODELS", "shared/models")
    assert main(["make-mannequin"]) == 0
    assert main(["make-mannequin", "body_model.root=mine"]) == 0
    assert main(["make-mannequin", "--out", "somewhere", "--overwrite"]) == 0
    assert [call[1][0] for call in calls] == [
        Path("shared/models/mannequin"),
        Path("mine/mannequin"),
        Path("somewhere"),
    ]
    assert calls[-1][2] == {"overwrite": True}


def test_convert_smpl_writes_under_the_body_model_root(
    calls: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["convert-smpl", "downloads/smpl"]) == 0
    monkeypatch.setenv("BODY_MODELS", "shared/models")
    assert main(["convert-smpl", "downloads/smpl", "--name", "smpl_v1"]) == 0
    assert calls == [
        ("convert_smpl", (Path("downloads/smpl"), Path("body_models")), {"name": "smpl"}),
        ("convert_smpl", (Path("downloads/smpl"), Path("shared/models")), {"name": "smpl_v1"}),
    ]


def test_body_model_commands_refuse_bad_keys(calls: list, capsys: pytest.CaptureFixture) -> None:
    assert main(["make-mannequin", "body_model.rot=x"]) == 2
    assert "Did you mean 'root'?" in capsys.readouterr().err
    assert calls == []
