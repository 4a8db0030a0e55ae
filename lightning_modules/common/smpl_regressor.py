"""SMPL parameter regression shared by the methods: mean parameters and HMR's iterative error
feedback (IEF) regressor (PARE's HMR-EFT baseline; CRMH's SMPL branch).

Mean parameters are SPIN's `smpl_mean_params.npz` (datasets.md 9.4b): `pose` (144,) = 24
rotations in SPIN's 6D layout (the first two *columns* of each rotation matrix, row-major:
geometry.rotations' "columns" layout), `shape` (10,), `cam` (3,) weak-perspective (s, tx, ty).
The mannequin ships its own in `extras/` (body.mannequin.build.mean_params); a user's SPIN file
is read the same way.

`IterativeRegressor` is HMR's regressor as SPIN implements it: the image feature concatenated
with the current estimate (pose 6D, shape, camera) goes through two fully connected layers of
1024 units with dropout 0.5, and three linear decoders add a correction; the estimate starts
at the mean parameters and is refined `iterations` times (3). The decoders start with small
weights (Xavier, gain 0.01), so the first prediction is close to the mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from geometry.rotations import matrix_to_rotation_6d

NUM_JOINTS, ROT6D = 24, 6
POSE_6D = NUM_JOINTS * ROT6D
MEAN_FIELDS = {"pose": (POSE_6D,), "shape": (10,), "cam": (3,)}


def load_mean_params(path: str | Path) -> dict[str, Tensor]:
    """{pose (144,), shape (10,), cam (3,)} float32 from a SPIN-style mean-params npz; errors
    name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SMPL mean parameters not found (smpl_mean_params.npz)")
    with np.load(path, allow_pickle=False) as data:
        result = {}
        for key, shape in MEAN_FIELDS.items():
            if key not in data.files:
                raise ValueError(f"{path}: field {key!r} missing (has {sorted(data.files)})")
            value = np.asarray(data[key], dtype=np.float32)
            if value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"{path}: field {key!r} must be {shape} finite, is {value.shape}")
            result[key] = torch.from_numpy(value.copy())
    return result


MeanParams = dict[str, Tensor] | str | Path


def mean_params_tensors(mean_params: MeanParams) -> dict[str, Tensor]:
    """Mean parameters given as tensors, or as the path of an npz (`load_mean_params`)."""
    return mean_params if isinstance(mean_params, dict) else load_mean_params(mean_params)


def _small_linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight, gain=0.01)
    return layer


class IterativeRegressor(nn.Module):
    """HMR's IEF regressor (module docstring): (B, F) features -> pose 6D (B, 24, 6), betas
    (B, 10), weak-perspective camera (B, 3)."""

    init_pose: Tensor
    init_shape: Tensor
    init_cam: Tensor

    def __init__(
        self,
        in_features: int,
        mean_params: MeanParams,
        iterations: int = 3,
        hidden: int = 1024,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        self.iterations = iterations
        mean_params = mean_params_tensors(mean_params)
        state = POSE_6D + 10 + 3
        self.body = nn.Sequential(
            nn.Linear(in_features + state, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        )  # fmt: skip
        self.pose_decoder = _small_linear(hidden, POSE_6D)
        self.shape_decoder = _small_linear(hidden, 10)
        self.cam_decoder = _small_linear(hidden, 3)
        self.register_buffer("init_pose", mean_params["pose"].float().clone().reshape(POSE_6D))
        self.register_buffer("init_shape", mean_params["shape"].float().clone().reshape(10))
        self.register_buffer("init_cam", mean_params["cam"].float().clone().reshape(3))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch = features.shape[0]
        pose = self.init_pose.expand(batch, -1)
        shape = self.init_shape.expand(batch, -1)
        cam = self.init_cam.expand(batch, -1)
        for _ in range(self.iterations):
            hidden = self.body(torch.cat([features, pose, shape, cam], dim=1))
            pose = pose + self.pose_decoder(hidden)
            shape = shape + self.shape_decoder(hidden)
            cam = cam + self.cam_decoder(hidden)
        return pose.reshape(batch, NUM_JOINTS, ROT6D), shape, cam


def set_initial_body(module: nn.Module, rotmats: Tensor, betas: Tensor) -> int:
    """Replace the initial pose and shape of every regressor in `module` (the modules holding
    `init_pose` and `init_shape` buffers: `IterativeRegressor`, PARE's head) by the body of
    `rotmats` (24, 3, 3) and `betas` (10,): the mean parameters measured on the training data,
    as SPIN's file was. Returns how many regressors were set."""
    pose6d = matrix_to_rotation_6d(rotmats.double(), layout="columns").reshape(-1)
    count = 0
    for child in module.modules():
        init_pose = getattr(child, "init_pose", None)
        init_shape = getattr(child, "init_shape", None)
        if isinstance(init_pose, Tensor) and isinstance(init_shape, Tensor):
            init_pose.copy_(pose6d.reshape(init_pose.shape).to(init_pose))
            init_shape.copy_(betas.reshape(init_shape.shape).to(init_shape))
            count += 1
    return count
