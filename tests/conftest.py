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
