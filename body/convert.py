"""Convert the official SMPL model files into the suite's body-model folder.

The official release stores some arrays as chumpy objects, which only the unmaintained chumpy
package can unpickle (smplx's ``tools/clean_ch.py`` needs Python 2 and chumpy to strip them).
:func:`convert_smpl` reads them with the suite's restricted unpickler (chumpy objects become
plain arrays, nothing else is imported), applies the renames of the official loader, checks keys
and shapes, and writes ``<out_root>/<name>/smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl``: plain dicts of
numpy arrays with a scipy csc ``J_regressor``, which ``smplx.create(<out_root>/<name>,
model_type='smpl', gender=...)`` loads unchanged, plus ``extras/metadata.json`` and, when the
source has it, ``extras/vert_sym_idxs.npy``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from body.safe_pickle import dump_legacy_pickle, load_pickle, to_numpy_tree

__all__ = [
    "ACCEPTED_FILE_NAMES",
    "GENDERS",
    "SmplModelError",
    "check_smpl_model",
    "convert_smpl",
    "find_smpl_files",
    "read_smpl_model",
]

GENDERS = ("neutral", "male", "female")

ACCEPTED_FILE_NAMES = (
    "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl (SMPLify's neutral model)",
    "basicmodel_m_lbs_10_207_0_v1.0.0.pkl",
    "basicModel_f_lbs_10_207_0_v1.0.0.pkl",
    "basicmodel_{neutral,m,f}_lbs_10_207_0_v1.1.0.pkl",
    "SMPL_{NEUTRAL,MALE,FEMALE}.pkl",
)

_FILE_NAME_PATTERNS = (
    re.compile(r"basicmodel_(neutral|m|f)_lbs_10_207_0_v1\.[01]\.0\.pkl", re.IGNORECASE),
    re.compile(r"smpl_(neutral|male|female)\.pkl", re.IGNORECASE),
)
_GENDER_TOKENS = {
    "neutral": "neutral",
    "m": "male",
    "male": "male",
    "f": "female",
    "female": "female",
}

# The official loader's renames (smpl_webuser/serialization.py), old name -> current name.
LEGACY_KEY_RENAMES = {
    "default_v": "v_template",
    "template_v": "v_template",
    "joint_regressor": "J_regressor",
    "blendshapes": "posedirs",
    "joints": "J",
}

NUM_JOINTS = 24
NUM_POSE_FEATURES = 207  # 23 non-root joints x 9 entries of (R - I), bs_type 'lrotmin'
MIN_BETAS = 10

# Expected shapes: "V" vertices, "F" faces, "K" shape components (>= 10); ints are exact.
REQUIRED_SHAPES: dict[str, tuple[int | str, ...]] = {
    "v_template": ("V", 3),
    "shapedirs": ("V", 3, "K"),
    "posedirs": ("V", 3, NUM_POSE_FEATURES),
    "J_regressor": (NUM_JOINTS, "V"),
    "weights": ("V", NUM_JOINTS),
    "kintree_table": (2, NUM_JOINTS),
    "f": ("F", 3),
}

SPIN_EXTRAS_NOTE = (
    "SPIN's J_regressor_h36m.npy (17x6890), J_regressor_extra.npy (9x6890) and "
    "smpl_mean_params.npz are not derived from the SMPL files: they come with SPIN's data folder "
    "(nkolot/SPIN, fetch_data.sh). Copy them into this extras/ folder unchanged."
)


class SmplModelError(ValueError):
    """An SMPL model file lacks a key or has a value of the wrong shape (file and key named)."""


def find_smpl_files(src_dir: Path) -> dict[str, Path]:
    """Map each gender to its official SMPL file in ``src_dir`` (top level, names of any case).

    Raises:
        FileNotFoundError: a gender has no file; the message lists what was found and the
            accepted names.
        ValueError: a gender has more than one file (e.g. v1.0.0 and v1.1.0 side by side).
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"SMPL source folder {src_dir} does not exist")
    found: dict[str, list[Path]] = {gender: [] for gender in GENDERS}
    for path in sorted(src_dir.iterdir()):
        gender = _gender_of(path.name)
        if gender is not None:
            found[gender].append(path)
    _check_one_file_per_gender(src_dir, found)
    return {gender: paths[0] for gender, paths in found.items()}


def _gender_of(file_name: str) -> str | None:
    for pattern in _FILE_NAME_PATTERNS:
        match = pattern.fullmatch(file_name)
        if match:
            return _GENDER_TOKENS[match.group(1).lower()]
    return None


def _check_one_file_per_gender(src_dir: Path, found: dict[str, list[Path]]) -> None:
    missing = [gender for gender, paths in found.items() if not paths]
    if missing:
        present = {gender: paths[0].name for gender, paths in found.items() if paths}
        raise FileNotFoundError(
            f"{src_dir}: no SMPL model file for {', '.join(missing)} (found: {present or 'none'}). "
            "All three genders are required: the suite evaluates against gendered ground truth. "
            f"Accepted names (any case): {'; '.join(ACCEPTED_FILE_NAMES)}"
        )
    for gender, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(path.name for path in paths)
            raise ValueError(f"{src_dir}: several {gender} SMPL files ({names}); keep one")


def read_smpl_model(path: Path) -> dict[str, Any]:
    """Load one official SMPL file as a dict of numpy arrays (J_regressor a scipy csc matrix)."""
    raw = load_pickle(path, allow_chumpy=True)
    if not isinstance(raw, dict):
        raise SmplModelError(f"{path}: expected a pickled dict, found {type(raw).__name__}")
    model = _apply_legacy_renames(to_numpy_tree(raw))
    model.setdefault("bs_style", "lbs")  # the official loader's default
    _check_blend_shape_type(path, model)
    check_smpl_model(path, model)
    if scipy.sparse.issparse(model["J_regressor"]):
        model["J_regressor"] = scipy.sparse.csc_matrix(model["J_regressor"])
    return model


def _apply_legacy_renames(model: dict[str, Any]) -> dict[str, Any]:
    renamed = dict(model)
    for old, new in LEGACY_KEY_RENAMES.items():
        if old in renamed and new not in renamed:
            renamed[new] = renamed.pop(old)
    return renamed


def _check_blend_shape_type(path: Path, model: dict[str, Any]) -> None:
    bs_type = model.get("bs_type", "lrotmin")
    if bs_type != "lrotmin":
        raise SmplModelError(
            f"{path}: key 'bs_type' is {bs_type!r}; smplx supports only 'lrotmin' pose blend shapes"
        )


def check_smpl_model(path: Path, model: dict[str, Any]) -> None:
    """Check required keys and shapes; :class:`SmplModelError` names the file and the key."""
    missing = [key for key in REQUIRED_SHAPES if key not in model]
    if missing:
        raise SmplModelError(
            f"{path}: missing required key(s) {missing} (keys present: {sorted(model)})"
        )
    sizes: dict[str, int] = {}
    for key, expected in REQUIRED_SHAPES.items():
        _check_shape(path, key, np.shape(model[key]), expected, sizes)
    if sizes["K"] < MIN_BETAS:
        raise SmplModelError(
            f"{path}: key 'shapedirs' has {sizes['K']} shape components, "
            f"at least {MIN_BETAS} are needed"
        )


def _check_shape(
    path: Path,
    key: str,
    shape: tuple[int, ...],
    expected: tuple[int | str, ...],
    sizes: dict[str, int],
) -> None:
    """Compare ``shape`` with ``expected``, binding the named sizes (V, F, K) on first sight."""
    matches = len(shape) == len(expected)
    for size, want in zip(shape, expected, strict=False):
        bound = sizes.setdefault(want, size) if isinstance(want, str) else want
        matches = matches and size == bound
    if not matches:
        wanted = tuple(
            sizes.get(want, want) if isinstance(want, str) else want for want in expected
        )
        raise SmplModelError(f"{path}: key {key!r} has shape {shape}, expected {wanted}")


def convert_smpl(src_dir: Path, out_root: Path, name: str = "smpl") -> Path:
    """Convert the three official SMPL files in ``src_dir`` into ``<out_root>/<name>/``.

    Returns:
        ``<out_root>/<name>``, the folder to pass to ``smplx.create(..., model_type='smpl')``.
    """
    sources = find_smpl_files(src_dir)
    models = {gender: read_smpl_model(path) for gender, path in sources.items()}
    _check_same_topology(sources, models)
    model_root = Path(out_root) / name
    (model_root / "smpl").mkdir(parents=True, exist_ok=True)
    (model_root / "extras").mkdir(parents=True, exist_ok=True)
    for gender, model in models.items():
        dump_legacy_pickle(model, model_root / "smpl" / f"SMPL_{gender.upper()}.pkl")
    _write_symmetry(model_root / "extras", models)
    metadata = smpl_metadata(sources, models["neutral"])
    (model_root / "extras" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return model_root


def _check_same_topology(sources: dict[str, Path], models: dict[str, dict[str, Any]]) -> None:
    reference = models["neutral"]
    for gender, model in models.items():
        for key in ("v_template", "f"):
            if np.shape(model[key]) != np.shape(reference[key]):
                raise SmplModelError(
                    f"{sources[gender]}: key {key!r} has shape {np.shape(model[key])}, but the "
                    f"neutral model's is {np.shape(reference[key])}; the genders must share a mesh"
                )


def _write_symmetry(extras_dir: Path, models: dict[str, dict[str, Any]]) -> None:
    """Save ``vert_sym_idxs`` from the first gender that has it (it depends on the mesh only)."""
    for gender in GENDERS:
        if "vert_sym_idxs" in models[gender]:
            np.save(extras_dir / "vert_sym_idxs.npy", np.asarray(models[gender]["vert_sym_idxs"]))
            return


def smpl_metadata(sources: dict[str, Path], neutral: dict[str, Any]) -> dict[str, Any]:
    """The ``extras/metadata.json`` record of a converted SMPL model."""
    return {
        "kind": "smpl",
        "generated": False,
        "sources": {
            gender: {"file": path.name, "sha256": _sha256(path)} for gender, path in sources.items()
        },
        "num_vertices": int(np.shape(neutral["v_template"])[0]),
        "num_faces": int(np.shape(neutral["f"])[0]),
        "num_betas": int(np.shape(neutral["shapedirs"])[2]),
        "note": SPIN_EXTRAS_NOTE,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
