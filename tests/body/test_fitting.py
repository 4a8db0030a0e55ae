"""Fitting the body model to a voxel isosurface (BodyNet eq. 6): the mannequin voxelized at
128^3 from known parameters is recovered from a perturbed start, and the rigid start aligns
rest joints exactly. The alternatives of BodyNet section 4.2: SMPLify++ (`fit_inputs`) on a
true silhouette and joints recovers shape that the joints alone cannot, its silhouette terms
equal hand-computed values, and `fit_joints` keeps the given betas."""

from __future__ import annotations

import math

import pytest
import torch

from body.fitting import (
    fit_body,
    fit_inputs,
    fit_joints,
    rigid_start,
    silhouette_energy,
    silhouette_targets,
)
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


def test_the_silhouette_terms_equal_hand_computed_values() -> None:
    mask = torch.zeros(1, 4, 5, dtype=torch.bool)
    mask[0, 1:3, 1:4] = True  # rows 1-2, columns 1-3
    outside, contour, valid = silhouette_targets(mask)
    assert outside[0, 0, 0] == pytest.approx(math.sqrt(2.0))  # pixel (0, 0) to (1, 1)
    assert outside[0, 1, 0] == 1.0 and outside[0, 3, 4] == pytest.approx(math.sqrt(2.0))
    assert (outside[0][mask[0]] == 0).all()
    points = {tuple(p) for p in contour[0][valid[0]].tolist()}
    assert points == {(c + 0.5, r + 0.5) for r in (1, 2) for c in (1, 2, 3)}  # 2 rows: no interior
    # One vertex at the centre of pixel (1, 2), one at the centre of pixel (0, 0), one beyond
    # the image's left edge by 1 pixel at row 1 (its distance: 1 to the image, then that of
    # the border pixel (1, 0), 1).
    projected = torch.tensor([[[2.5, 1.5], [0.5, 0.5], [-1.0, 1.5]]])
    to_silhouette = 0.0 + 2.0 + (1.0 + 1.0) ** 2
    cover = sum(min((cx - vx) ** 2 + (cy - vy) ** 2 for vx, vy in projected[0].tolist())
                for cx, cy in points)  # fmt: skip
    energy = silhouette_energy(projected, outside, contour, valid)
    assert float(energy[0]) == pytest.approx(to_silhouette + cover, rel=1e-5)
    empty_outside, _, empty_valid = silhouette_targets(torch.zeros(1, 3, 3, dtype=torch.bool))
    assert not empty_valid.any() and (empty_outside == 0).all()


@pytest.mark.slow
def test_smplifypp_recovers_shape_the_joints_alone_cannot(neutral_model) -> None:
    torch.manual_seed(0)
    size, side = 256, 64
    pose = _upright()
    pose[0, 3:] = 0.25 * torch.randn(69)
    betas = torch.tensor([[2.0, -1.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    true = neutral_model(pose, betas, torch.tensor([[0.0, 0.1, 4.0]]))
    root = float(true.joints[0, 0, 2])

    def frame(vertices: torch.Tensor) -> torch.Tensor:
        return bodynet_grid_vertices(vertices, K, root, size, side)

    grid = voxelize_interior(frame(true.vertices[0]), neutral_model.faces, side, (0.0,) * 3,
                             (float(side),) * 3)  # fmt: skip
    silhouette = grid.amax(dim=0)[None].bool()  # the body's projection at 64 x 64
    joints = true.keypoints[:, :24]
    keypoints2d = (frame(joints[0])[:, :2] * size / side - 0.5)[None]  # crop pixels
    fitted = fit_inputs(neutral_model, silhouette, joints, keypoints2d, list(range(24)), K[None],
                        torch.tensor([root]), size)  # fmt: skip
    mean_shape = fit_joints(neutral_model, joints, list(range(24)), torch.zeros(1, 10))
    error_mm = 1000 * (fitted.vertices - true.vertices).norm(dim=-1).mean()
    mean_shape_mm = 1000 * (mean_shape.vertices - true.vertices).norm(dim=-1).mean()
    # Measured: 42 mm against 55 mm; the shape moves towards the truth (beta_0 0 -> 1.4 of 2).
    assert error_mm < 0.85 * mean_shape_mm, (float(error_mm), float(mean_shape_mm))
    assert float(fitted.betas[0, 0]) > 1.0
    assert fitted.energies[-1] < 0.1 * fitted.energies[0]
    with pytest.raises(ValueError, match="square"):
        fit_inputs(neutral_model, silhouette[:, :32], joints, keypoints2d, list(range(24)),
                   K[None], torch.tensor([root]), size)  # fmt: skip
    with pytest.raises(ValueError, match="keypoints2d"):
        fit_inputs(neutral_model, silhouette, joints, keypoints2d[:, :3], list(range(24)),
                   K[None], torch.tensor([root]), size)  # fmt: skip


def test_fit_joints_keeps_the_given_shape(neutral_model) -> None:
    torch.manual_seed(1)
    pose = _upright()
    pose[0, 3:] = 0.2 * torch.randn(69)
    betas = torch.tensor([[1.0, 0.5, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    joints = neutral_model(pose, betas, torch.tensor([[0.1, 0.0, 3.0]])).keypoints[:, :24]
    fitted = fit_joints(neutral_model, joints, list(range(24)), betas, steps=200)
    assert torch.equal(fitted.betas, betas)
    recovered = neutral_model(fitted.pose, fitted.betas, fitted.transl).keypoints[:, :24]
    start_pose, start_transl = rigid_start(neutral_model, joints, list(range(24)))
    start = neutral_model(start_pose, betas, start_transl).keypoints[:, :24]
    assert (recovered - joints).norm(dim=-1).mean() < 0.2 * (start - joints).norm(dim=-1).mean()
