"""`BodyModel`: a thin, batched wrapper over smplx's SMPL with the suite's named joint sets.

Files live under `<root>/<name>/` (DESIGN.md "Data on disk"): `smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl`
and `extras/` (SPIN's `J_regressor_h36m.npy`, `J_regressor_extra.npy`, `smpl_mean_params.npz`,
and the suite's `landmarks.json`, `vert_sym_idxs.npy`, `smpl_part_segmentation.json`,
`metadata.json`). Model pickles are read with the suite's restricted unpickler and handed to
smplx as a data struct, so smplx never unpickles a user file itself.

The default model, `mannequin`, is generated on first use (`body.mannequin.make_mannequin`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import smplx
import torch
from torch import Tensor, nn

from body import joint_sets
from body.safe_pickle import load_pickle, to_numpy_tree

log = logging.getLogger(__name__)

GENDERS = ("neutral", "male", "female")
GENDER_CODES = {0: "neutral", 1: "male", 2: "female"}  # DESIGN.md; -1 (unknown) -> neutral
MANNEQUIN = "mannequin"


class BodyModelFilesError(FileNotFoundError):
    """A body-model file is missing; the message says where we looked and what to do."""


def missing_files_message(model_dir: Path, missing: list[str]) -> str:
    name = model_dir.name
    return (
        f"body model {name!r}: missing {', '.join(missing)} under {model_dir}.\n"
        f"  - the generated mannequin: python -m experiments make-mannequin --out {model_dir}\n"
        "  - real SMPL (licensed, from smpl.is.tue.mpg.de): python -m experiments convert-smpl "
        f"SRC_DIR --name {name}  (writes {model_dir}/smpl/ and the extras it can derive; copy "
        "SPIN's J_regressor_h36m.npy, J_regressor_extra.npy and smpl_mean_params.npz into "
        f"{model_dir}/extras/)\n"
        "  - or point body_model.root / the BODY_MODELS variable at the folder holding it."
    )


def ensure_body_model(root: str | Path, name: str = MANNEQUIN) -> Path:
    """The folder of body model `name` under `root`, generating the mannequin if needed."""
    model_dir = Path(root) / name
    pickles = [f"smpl/SMPL_{g.upper()}.pkl" for g in GENDERS]
    missing = [p for p in pickles if not (model_dir / p).is_file()]
    if missing and name == MANNEQUIN:
        from body.mannequin import make_mannequin

        make_mannequin(model_dir)
        missing = [p for p in pickles if not (model_dir / p).is_file()]
    if missing:
        raise BodyModelFilesError(missing_files_message(model_dir, missing))
    return model_dir


class _Struct:
    """What smplx's SMPL reads its arrays from (its own `Struct` takes keyword arguments)."""

    def __init__(self, arrays: dict) -> None:
        self.__dict__.update(arrays)


@dataclass
class BodyOutput:
    """Posed body. vertices (B,V,3) and joints (B,24,3) in metres, transl applied;
    keypoints (B,J,3) in the requested joint set (the canonical superset if none was named)."""

    vertices: Tensor
    joints: Tensor
    keypoints: Tensor


class BodyModel(nn.Module):
    """SMPL-format body model: pose, betas, transl -> vertices and named keypoints.

    Args:
        root: folder holding `<name>/smpl/` and `<name>/extras/`.
        name: body model name (`mannequin` or e.g. `smpl` after convert-smpl).
        gender: `neutral`, `male` or `female`.
        num_betas: shape coefficients used (10 for SMPL's released files).
    """

    vertex_regressor: Tensor  # (R,V) h36m, extra and landmark rows (zeros where absent)
    mixture: Tensor  # (K,B) base entries -> canonical superset
    canonical_available: Tensor  # (K,) bool, False where a needed extras file is absent

    def __init__(
        self, root: str | Path, name: str = MANNEQUIN, gender: str = "neutral", num_betas: int = 10
    ) -> None:
        super().__init__()
        if gender not in GENDERS:
            raise ValueError(f"gender {gender!r} is not one of {GENDERS}")
        self.model_dir = ensure_body_model(root, name)
        self.name, self.gender = name, gender
        pkl = self.model_dir / "smpl" / f"SMPL_{gender.upper()}.pkl"
        arrays = to_numpy_tree(load_pickle(pkl))
        # smplx prints a warning about 10 shape coefficients to stdout, which would corrupt
        # machine-readable output (`inspect-data --json`); it is expected here.
        with contextlib.redirect_stdout(io.StringIO()):
            self.smpl = smplx.SMPL(
                model_path=str(pkl),
                data_struct=_Struct(arrays),
                num_betas=num_betas,
                create_global_orient=False,
                create_body_pose=False,
                create_betas=False,
                create_transl=False,
            )
        self.metadata = self._read_metadata()
        self._register_keypoint_buffers()
        log.info("body model %r (%s, %s) from %s", name, self.kind, gender, self.model_dir)

    @property
    def kind(self) -> str:
        return "generated mannequin, not SMPL" if self.metadata.get("generated") else "SMPL"

    @property
    def faces(self) -> Tensor:
        """(F,3) int64 triangle indices."""
        return self.smpl.faces_tensor

    @property
    def num_vertices(self) -> int:
        return int(self.smpl.v_template.shape[0])

    def _read_metadata(self) -> dict:
        path = self.model_dir / "extras" / "metadata.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _register_keypoint_buffers(self) -> None:
        """Regressors for the h36m, extra and landmark entries; zeros (flagged) where absent."""
        rows, available = [], []
        for kind, names, reader in (
            ("h36m", joint_sets.H36M_REGRESSOR_ROWS, self._read_npy("J_regressor_h36m.npy")),
            ("extra", joint_sets.EXTRA_REGRESSOR_ROWS, self._read_npy("J_regressor_extra.npy")),
            ("landmark", joint_sets.LANDMARK_ROWS, self._read_landmarks()),
        ):
            block = reader if reader is not None else np.zeros((len(names), self.num_vertices))
            if block.shape != (len(names), self.num_vertices):
                raise ValueError(
                    f"{self.model_dir}/extras: {kind} regressor has shape "
                    f"{block.shape}, expected {(len(names), self.num_vertices)}"
                )
            rows.append(block)
            available += [reader is not None] * len(names)
        dtype = self.smpl.v_template.dtype
        self.register_buffer("vertex_regressor", torch.as_tensor(np.concatenate(rows), dtype=dtype))
        mixture = torch.as_tensor(joint_sets.mixture_matrix(), dtype=dtype)
        self.register_buffer("mixture", mixture)
        n_direct = len(joint_sets.SMPL_JOINTS) + len(joint_sets.SMPLX_LANDMARKS)
        base_missing = torch.tensor([False] * n_direct + [not a for a in available], dtype=dtype)
        self.register_buffer("canonical_available", mixture.abs() @ base_missing == 0)

    def _read_npy(self, filename: str) -> np.ndarray | None:
        path = self.model_dir / "extras" / filename
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def _read_landmarks(self) -> np.ndarray | None:
        path = self.model_dir / "extras" / "landmarks.json"
        if not path.is_file():
            return None
        landmarks = json.loads(path.read_text())
        block = np.zeros((len(joint_sets.LANDMARK_ROWS), self.num_vertices))
        for row, name in enumerate(joint_sets.LANDMARK_ROWS):
            if name not in landmarks:
                raise KeyError(f"{path}: no landmark {name!r} (has {sorted(landmarks)})")
            block[row, landmarks[name]["vertices"]] = landmarks[name]["weights"]
        return block

    def forward(
        self,
        pose: Tensor,
        betas: Tensor | None = None,
        transl: Tensor | None = None,
        joint_set: str | None = None,
    ) -> BodyOutput:
        """Pose the body.

        Args:
            pose: (B,72) axis-angle (global orientation first) or (B,24,3,3) rotation matrices.
            betas: (B,num_betas) shape coefficients; zeros if None.
            transl: (B,3) translation in metres added to vertices and joints; zeros if None.
            joint_set: name of the joint set for `keypoints` (None: the canonical superset).
        """
        self._follow(pose)
        pose, is_matrix = self._check_pose(pose)
        batch = pose.shape[0]
        if betas is None:
            betas = pose.new_zeros(batch, self.smpl.num_betas)
        if transl is None:
            transl = pose.new_zeros(batch, 3)
        root, body = (pose[:, :1], pose[:, 1:]) if is_matrix else (pose[:, :3], pose[:, 3:])
        out = self.smpl(
            betas=betas, global_orient=root, body_pose=body, transl=transl, pose2rot=not is_matrix
        )
        base = torch.cat([out.joints, self._regress(out.vertices)], dim=1)  # (B, base, 3)
        keypoints = torch.einsum("kb,nbc->nkc", self.mixture, base)
        if joint_set is not None:
            self._check_available(joint_set)
            keypoints = joint_sets.from_canonical(keypoints, joint_set)
        return BodyOutput(vertices=out.vertices, joints=out.joints[:, :24], keypoints=keypoints)

    def _regress(self, vertices: Tensor) -> Tensor:
        return torch.einsum("kv,nvc->nkc", self.vertex_regressor, vertices)

    def _check_pose(self, pose: Tensor) -> tuple[Tensor, bool]:
        """(pose, is_matrix): axis-angle goes to smplx as is (its own Rodrigues), so results
        equal smplx's bit for bit; rotation matrices go with pose2rot=False."""
        if pose.shape[-2:] == (3, 3):
            return pose.reshape(-1, 24, 3, 3), True
        if pose.shape[-1] != 72:
            raise ValueError(
                f"pose must be (B,72) axis-angle or (B,24,3,3); got {tuple(pose.shape)}"
            )
        return pose.reshape(-1, 72), False

    def _follow(self, tensor: Tensor) -> None:
        """Move the constants to the input's device and dtype (a no-op when they match)."""
        reference = self.smpl.v_template
        if tensor.device != reference.device or tensor.dtype != reference.dtype:
            self.to(device=tensor.device, dtype=tensor.dtype)

    def _check_available(self, joint_set: str) -> None:
        missing = [
            name
            for name, index in zip(
                joint_sets.joint_names(joint_set),
                joint_sets.canonical_indices(joint_set),
                strict=True,
            )
            if not self.canonical_available[index]
        ]
        if missing:
            raise BodyModelFilesError(
                f"joint set {joint_set!r} needs {missing}, which come from files missing in "
                f"{self.model_dir / 'extras'} (J_regressor_h36m.npy, J_regressor_extra.npy, "
                "landmarks.json); see the README's 'Using real SMPL files'."
            )

    def rest_root_joint(self, betas: Tensor) -> Tensor:
        """(B,3) the rest-pose root joint of the shaped body (for world-to-camera moves)."""
        self._follow(betas)
        v_shaped = self.smpl.v_template + torch.einsum("bl,vcl->bvc", betas, self.smpl.shapedirs)
        return torch.einsum("v,bvc->bc", self.smpl.J_regressor[0], v_shaped)
