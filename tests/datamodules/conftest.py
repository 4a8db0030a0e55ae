"""Datamodule test fixtures: one tiny synthetic world per dataset, built once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from datamodules.base import BodyModels, ReaderOptions


@pytest.fixture(scope="session")
def tiny_world(
    tmp_path_factory: pytest.TempPathFactory, body_models_root: Path
) -> Callable[[str], Path]:
    """`tiny_world("surreal")` -> a data root holding the tiny synthetic world of that dataset."""
    from datamodules.synthetic.world import write_world

    roots: dict[str, Path] = {}

    def build(dataset_id: str) -> Path:
        if dataset_id not in roots:
            root = tmp_path_factory.mktemp(f"tiny_{dataset_id}")
            write_world(
                root, "tiny", [dataset_id], seed=0, body_model_root=body_models_root, progress=False
            )
            roots[dataset_id] = root
        return roots[dataset_id]

    return build


@pytest.fixture(scope="session")
def body_models(body_models_root: Path) -> BodyModels:
    return BodyModels(body_models_root, "mannequin")


@pytest.fixture
def reader_options(body_models: BodyModels, tmp_path: Path) -> ReaderOptions:
    return ReaderOptions(cache_root=tmp_path / "cache", body_models=body_models)
