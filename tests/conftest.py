"""Session fixtures shared by the test tiers: the mannequin is generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = REPO_ROOT.parent / "shared" / "samples"


@pytest.fixture(scope="session")
def body_models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A body-model root holding a freshly generated `mannequin/`."""
    from body.mannequin import make_mannequin

    root = tmp_path_factory.mktemp("body_models")
    make_mannequin(root / "mannequin")
    return root


@pytest.fixture(scope="session")
def neutral_model(body_models_root: Path):
    from body import BodyModel

    return BodyModel(body_models_root, "mannequin", "neutral")


CI_WORLD_DATASETS = ("surreal", "pw3d", "h36m")


@pytest.fixture(scope="session")
def ci_world(tmp_path_factory: pytest.TempPathFactory, body_models_root: Path) -> Path:
    """The `ci` synthetic world of the single-person datasets, built once per test session and
    shared by every learning test (about 3,000 training crops plus held-out splits)."""
    from datamodules.synthetic.world import write_world

    root = tmp_path_factory.mktemp("ci_world")
    write_world(
        root, "ci", CI_WORLD_DATASETS, seed=0, body_model_root=body_models_root, progress=False
    )
    return root


TINY_WORLD_DATASETS = ("coco", "h36m", "pw3d", "surreal", "up3d")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory, body_models_root: Path) -> Path:
    """The `tiny` synthetic world of the crop datasets PARE reads (a few crops per split),
    for one-step, runner and multi-process tests."""
    from datamodules.synthetic.world import write_world

    root = tmp_path_factory.mktemp("tiny_world")
    write_world(root, "tiny", TINY_WORLD_DATASETS, body_model_root=body_models_root, progress=False)
    return root
