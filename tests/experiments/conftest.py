"""Shared fixtures of the runner tests: a clean environment and the test-only experiment."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.run_info import RUN_DIR_ENV

TINY_EXPERIMENT = Path(__file__).resolve().parent / "configs" / "tiny_regression.yaml"
REPO_ROOT = Path(__file__).resolve().parents[2]
PATH_VARIABLES = ("DATA_ROOT", "CACHE_ROOT", "BODY_MODELS", "WANDB_MODE", RUN_DIR_ENV)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the defaults, whatever the shell running pytest exports."""
    for name in PATH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
