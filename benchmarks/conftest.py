from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def body_models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from body.mannequin import make_mannequin

    root = tmp_path_factory.mktemp("body_models")
    make_mannequin(root / "mannequin")
    return root
