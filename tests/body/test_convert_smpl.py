"""convert_smpl on fake official SMPL files pickled the way Python 2 with chumpy wrote them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
import smplx
import torch

from body.convert import SmplModelError, convert_smpl, find_smpl_files
from body.safe_pickle import UnsafePickleError, load_pickle
from tests.body.test_safe_pickle import (
    FakeCh,
    assert_tree_equal,
    fake_chumpy_installed,
    pickle_with_fake_chumpy,
    plain_load,
)

OFFICIAL_NAMES = {
    "neutral": "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
    "male": "basicmodel_m_lbs_10_207_0_v1.0.0.pkl",
    "female": "basicModel_f_lbs_10_207_0_v1.0.0.pkl",
}
SMPL_PARENTS = [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
NUM_VERTICES = 6890  # smplx's SMPL picks landmark vertices up to id 6787
NUM_FACES = 40
CHUMPY_KEYS = ("v_template", "shapedirs", "weights")  # stored as chumpy.ch.Ch in the fakes


def make_model(seed: int, num_vertices: int = NUM_VERTICES) -> dict[str, Any]:
    """A small but valid SMPL-like dict of plain values (the expected conversion result)."""
    rng = np.random.default_rng(seed)
    weights = rng.random((num_vertices, 24))
    regressor = np.zeros((24, num_vertices))
    for joint in range(24):
        regressor[joint, rng.choice(num_vertices, size=8, replace=False)] = 1 / 8
    return {
        "v_template": rng.normal(scale=0.3, size=(num_vertices, 3)),
        "shapedirs": rng.normal(scale=0.01, size=(num_vertices, 3, 10)),
        # float32 halves the file size; real files hold float64 (and convert keeps any dtype)
        "posedirs": rng.normal(scale=0.001, size=(num_vertices, 3, 207)).astype(np.float32),
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "kintree_table": np.array([[4294967295, *SMPL_PARENTS], list(range(24))], dtype=np.int64),
        "f": rng.integers(0, num_vertices, size=(NUM_FACES, 3)).astype(np.uint32),
        "J": rng.normal(size=(24, 3)),
        "vert_sym_idxs": rng.permutation(num_vertices),
        "pose_training_info": {"n_poses": 1786, "sources": ["caesar"]},
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }


def as_official(model: dict[str, Any]) -> dict[str, Any]:
    """Wrap the arrays that the official files keep as chumpy objects."""
    official = dict(model)
    for key in set(CHUMPY_KEYS) & set(model):
        official[key] = FakeCh(x=model[key])
    return official


def write_official(folder: Path, models: dict[str, dict[str, Any]], names: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for gender, model in models.items():
        (folder / names[gender]).write_bytes(pickle_with_fake_chumpy(as_official(model)))


@pytest.fixture(scope="module")
def models() -> dict[str, dict[str, Any]]:
    return {gender: make_model(seed) for seed, gender in enumerate(OFFICIAL_NAMES)}


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Any]) -> Path:
    source = tmp_path_factory.mktemp("official")
    write_official(source, models, OFFICIAL_NAMES)
    return source


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, official_dir: Path) -> Path:
    out_root = tmp_path_factory.mktemp("body_models")
    root = convert_smpl(official_dir, out_root, name="smpl")
    assert root == out_root / "smpl"
    return root


def small_models() -> dict[str, dict[str, Any]]:
    return {gender: make_model(seed, num_vertices=30) for seed, gender in enumerate(OFFICIAL_NAMES)}


# ----------------------------------------------------------------------------------------------
# the converted model


@pytest.mark.parametrize("gender", ["neutral", "male", "female"])
def test_converted_files_are_clean(converted: Path, models: dict[str, Any], gender: str) -> None:
    path = converted / "smpl" / f"SMPL_{gender.upper()}.pkl"
    assert not fake_chumpy_installed()
    assert_tree_equal(plain_load(path), models[gender])
    assert_tree_equal(load_pickle(path, allow_chumpy=False), models[gender])
    assert b"chumpy" not in path.read_bytes()


def test_metadata(converted: Path, official_dir: Path) -> None:
    metadata = json.loads((converted / "extras" / "metadata.json").read_text())
    assert metadata["sources"] == {
        gender: {
            "file": name,
            "sha256": hashlib.sha256((official_dir / name).read_bytes()).hexdigest(),
        }
        for gender, name in OFFICIAL_NAMES.items()
    }
    assert metadata["kind"] == "smpl" and metadata["generated"] is False
    assert (metadata["num_vertices"], metadata["num_faces"], metadata["num_betas"]) == (
        NUM_VERTICES,
        NUM_FACES,
        10,
    )
    for needed in ("J_regressor_h36m.npy", "J_regressor_extra.npy", "smpl_mean_params.npz"):
        assert needed in metadata["note"]
    assert "fetch_data.sh" in metadata["note"]


def test_symmetry_written(converted: Path, models: dict[str, Any]) -> None:
    saved = np.load(converted / "extras" / "vert_sym_idxs.npy")
    assert np.array_equal(saved, models["neutral"]["vert_sym_idxs"])


@pytest.mark.filterwarnings("ignore:Please import `csc_matrix`:DeprecationWarning")
def test_smplx_runs_the_converted_model(converted: Path, models: dict[str, Any]) -> None:
    neutral = models["neutral"]
    body = smplx.SMPL(model_path=str(converted / "smpl" / "SMPL_NEUTRAL.pkl"))
    with torch.no_grad():
        output = body(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69))
    vertices = output.vertices[0].numpy()
    np.testing.assert_allclose(vertices, neutral["v_template"], atol=1e-6)
    joints = neutral["J_regressor"] @ neutral["v_template"]
    np.testing.assert_allclose(output.joints[0, :24].numpy(), joints, atol=1e-6)
    male = smplx.create(str(converted), model_type="smpl", gender="male")
    np.testing.assert_allclose(male.v_template.numpy(), models["male"]["v_template"], atol=1e-6)


# ----------------------------------------------------------------------------------------------
# finding the files


@pytest.mark.parametrize(
    "names",
    [
        OFFICIAL_NAMES,
        {
            g: f"basicmodel_{g[0] if g != 'neutral' else g}_lbs_10_207_0_v1.1.0.pkl"
            for g in OFFICIAL_NAMES
        },
        {g: f"SMPL_{g.upper()}.pkl" for g in OFFICIAL_NAMES},
        {g: f"smpl_{g}.PKL" for g in OFFICIAL_NAMES},
    ],
)
def test_find_smpl_files(tmp_path: Path, names: dict[str, str]) -> None:
    for name in [*names.values(), "README.txt", "basicModel_x_lbs_10_207_0_v1.0.0.pkl"]:
        (tmp_path / name).touch()
    assert find_smpl_files(tmp_path) == {g: tmp_path / name for g, name in names.items()}


def test_missing_gender_names_accepted_files(tmp_path: Path) -> None:
    for gender in ("neutral", "male"):
        (tmp_path / OFFICIAL_NAMES[gender]).touch()
    with pytest.raises(FileNotFoundError) as error:
        convert_smpl(tmp_path, tmp_path / "out")
    message = str(error.value)
    assert "female" in message and OFFICIAL_NAMES["male"] in message
    assert "SMPL_{NEUTRAL,MALE,FEMALE}.pkl" in message and "basicmodel_m_lbs" in message
    assert "gendered" in message
    assert not (tmp_path / "out").exists()


def test_two_files_for_one_gender_refused(tmp_path: Path) -> None:
    for name in [*OFFICIAL_NAMES.values(), "basicmodel_f_lbs_10_207_0_v1.1.0.pkl"]:
        (tmp_path / name).touch()
    with pytest.raises(ValueError, match="several female"):
        find_smpl_files(tmp_path)


# ----------------------------------------------------------------------------------------------
# bad contents


def test_legacy_key_names_renamed(tmp_path: Path) -> None:
    models = small_models()
    legacy = dict(models["male"])
    renames = {"template_v": "v_template", "joint_regressor": "J_regressor"}
    for old, new in {**renames, "blendshapes": "posedirs", "joints": "J"}.items():
        legacy[old] = legacy.pop(new)
    del legacy["bs_style"]  # the official loader defaults it to 'lbs'
    write_official(tmp_path / "src", {**models, "male": legacy}, OFFICIAL_NAMES)
    root = convert_smpl(tmp_path / "src", tmp_path / "out", name="renamed")
    assert_tree_equal(load_pickle(root / "smpl" / "SMPL_MALE.pkl"), models["male"])


def test_unsafe_global_in_source_refused(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    models = small_models()
    write_official(tmp_path / "src", models, OFFICIAL_NAMES)
    infected = as_official({**models["female"], "pose_training_info": [Payload()]})
    (tmp_path / "src" / OFFICIAL_NAMES["female"]).write_bytes(pickle_with_fake_chumpy(infected))
    with pytest.raises(
        UnsafePickleError, match=rf"{OFFICIAL_NAMES['female']}.*'{os.system.__module__}\.system'"
    ):
        convert_smpl(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "pwned").exists()


def test_missing_key_named(tmp_path: Path) -> None:
    models = small_models()
    del models["female"]["weights"]
    write_official(tmp_path / "src", models, OFFICIAL_NAMES)
    with pytest.raises(SmplModelError, match=rf"{OFFICIAL_NAMES['female']}.*'weights'"):
        convert_smpl(tmp_path / "src", tmp_path / "out")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("posedirs", np.zeros((30, 3, 200))),
        ("shapedirs", np.zeros((30, 3, 8))),
        ("J_regressor", scipy.sparse.csc_matrix((24, 31))),
        ("kintree_table", np.zeros((2, 23), dtype=np.int64)),
        ("weights", np.zeros((29, 24))),
        ("f", np.zeros((5, 4), dtype=np.uint32)),
    ],
)
def test_wrong_shape_named(tmp_path: Path, key: str, value: Any) -> None:
    models = small_models()
    models["neutral"][key] = value
    write_official(tmp_path / "src", models, OFFICIAL_NAMES)
    with pytest.raises(SmplModelError, match=rf"{OFFICIAL_NAMES['neutral']}: key '{key}'"):
        convert_smpl(tmp_path / "src", tmp_path / "out")
