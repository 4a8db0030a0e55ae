"""Fitting the body model to a voxel isosurface (BodyNet eq. 6): the mannequin voxelized at
128^3 from known parameters is recovered from a perturbed start, and the rigid start aligns
rest joints exactly."""

from __future__ import annotations

import math

import pytest
import torch

from body.fitting import fit_body, rigid_start
from geometry.meshes import grid_to_mesh
from geometry.rotations import axis_angle_to_matrix
from geometry.volumes import bodynet_grid_vertices, voxelize_interior

R, S = 128, 256
K = torch.tensor([[450.0, 0.0, 127.5], [0.0, 450.0, 127.5], [0.0, 0.0, 1.0]])


def _upright(count: int = 1) -> torch.Tensor:
    pose = torch.zeros(count, 72)
    pose[:, 0] = math.pi  # SMPL's y-up body standing in the y-down camera frame
    return pose


@pytest.mark.slow
def test_fitting_recovers_a_voxelized_body(neutral_model) -> None:
    torch.manual_seed(0)
    pose = _upright()
    pose[0, 3:] = 0.25 * torch.randn(69)
    betas = torch.tensor([[2.0, -1.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    transl = torch.tensor([[0.0, 0.1, 4.0]])
    true = neutral_model(pose, betas, transl)
    root = float(true.joints[0, 0, 2])

    def frame(vertices: torch.Tensor) -> torch.Tensor:
        return torch.stack([bodynet_grid_vertices(v, K, root, S, R) for v in vertices])

    # The cells whose centres lie inside the mesh: an unbiased voxelization. (BodyNet's
    # conservative targets, `bodynet_voxelize`, lie about 0.8 voxel outside the surface on
    # average at this size, which bounds any fit to them.)
    grid = voxelize_interior(frame(true.vertices)[0], neutral_model.faces, R, (0.0,) * 3,
                             (float(R),) * 3)  # fmt: skip
    surface, _ = grid_to_mesh(grid.float(), (0.0, 0.0, 0.0), (R, R, R))
    start_pose = pose.clone()
    start_pose[0, 3:] += 0.1 * torch.randn(69)
    start_transl = transl + torch.tensor([[0.03, -0.02, 0.05]])
    truth = frame(true.vertices)
    start = neutral_model(start_pose, None, start_transl).vertices
    initial_error = (frame(start) - truth).norm(dim=-1).mean()
    initial_mm = 1000 * (start - true.vertices).norm(dim=-1).mean()
    assert initial_mm > 30.0

    result = fit_body(neutral_model, surface[None], start_pose, start_transl, frame)
    error = (frame(result.vertices) - truth).norm(dim=-1).mean()
    assert error < 0.6, (float(initial_error), float(error))  # voxels
    assert error <= 0.5 * initial_error
    assert result.energies[-1] < 0.1 * result.energies[0]


def test_the_rigid_start_aligns_the_rest_joints(neutral_model) -> None:
    from geometry.rotations import matrix_to_axis_angle

    rotation = axis_angle_to_matrix(torch.tensor([[math.pi, 0.2, -0.1]]))
    pose = torch.zeros(1, 72)
    pose[:, :3] = matrix_to_axis_angle(rotation)
    transl = torch.tensor([[0.2, -0.1, 3.5]])
    joints = neutral_model(pose, None, transl).keypoints[:, :24]
    start_pose, start_transl = rigid_start(neutral_model, joints, list(range(24)))
    recovered = neutral_model(start_pose, None, start_transl).keypoints[:, :24]
    torch.testing.assert_close(recovered, joints, atol=1e-4, rtol=0)
    assert (start_pose[:, 3:] == 0).all()


def test_fit_inputs_are_checked(neutral_model) -> None:
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        fit_body(neutral_model, torch.zeros(5, 3), _upright(), torch.zeros(1, 3), lambda v: v)
    with pytest.raises(ValueError, match="joint_indices"):
        fit_body(neutral_model, torch.zeros(1, 5, 3), _upright(), torch.zeros(1, 3), lambda v: v,
                 joints=torch.zeros(1, 2, 3), joint_indices=[0])  # fmt: skip
