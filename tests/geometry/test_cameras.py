"""Projection against OpenCV, crop geometry, SPIN cameras and the world-to-camera SMPL move."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from geometry import (
    axis_angle_to_matrix,
    box_center_scale_to_xyxy,
    boxes_from_crop,
    boxes_to_crop,
    crop_affine,
    crop_intrinsics,
    full_intrinsics_from_crop,
    points_from_crop,
    points_to_crop,
    project_points,
    translation_to_weak_perspective,
    weak_perspective_to_translation,
    world_to_camera_smpl,
    xyxy_to_center_scale,
)

OUT_SIZE = (64, 48)  # (width, height): deliberately not square


def make_intrinsics(batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Random float64 pinhole intrinsics (B, 3, 3), different fx and fy, no skew."""
    focal = 500.0 + 1000.0 * torch.rand(batch_size, 2, generator=generator, dtype=torch.float64)
    principal = 300.0 + 100.0 * torch.rand(batch_size, 2, generator=generator, dtype=torch.float64)
    K = torch.zeros(batch_size, 3, 3, dtype=torch.float64)
    K[:, 0, 0], K[:, 1, 1] = focal[:, 0], focal[:, 1]
    K[:, :2, 2] = principal
    K[:, 2, 2] = 1.0
    return K


def make_points(batch_size: int, num_points: int, generator: torch.Generator) -> torch.Tensor:
    """Camera-frame points (B, N, 3) in front of the camera, z in [2, 10] metres."""
    points = torch.randn(batch_size, num_points, 3, generator=generator, dtype=torch.float64)
    points[..., 2] = 2.0 + 8.0 * torch.rand(batch_size, num_points, generator=generator).double()
    return points


def make_boxes(batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Random non-square boxes (B, 4), partly outside a 640x480 image."""
    top_left = -50.0 + 600.0 * torch.rand(batch_size, 2, generator=generator, dtype=torch.float64)
    size = 20.0 + 300.0 * torch.rand(batch_size, 2, generator=generator, dtype=torch.float64)
    return torch.cat((top_left, top_left + size), dim=-1)


def test_project_points_matches_opencv() -> None:
    generator = torch.Generator().manual_seed(0)
    K = make_intrinsics(3, generator)
    points = make_points(3, 20, generator)
    projected = project_points(points, K)
    assert projected.shape == (3, 20, 2)
    for index in range(3):
        expected, _ = cv2.projectPoints(
            points[index].numpy(), np.zeros(3), np.zeros(3), K[index].numpy(), np.zeros(5)
        )
        np.testing.assert_allclose(projected[index].numpy(), expected[:, 0], atol=1e-9)


def test_project_points_broadcasts_one_camera_and_keeps_dtype() -> None:
    generator = torch.Generator().manual_seed(1)
    K = make_intrinsics(1, generator)[0]
    points = make_points(2, 5, generator).reshape(2, 1, 5, 3).float()
    projected = project_points(points, K.float())
    assert projected.shape == (2, 1, 5, 2) and projected.dtype == torch.float32
    torch.testing.assert_close(projected[1, 0], project_points(points[1, 0], K.float()))


def test_project_points_behind_and_at_the_camera() -> None:
    K = torch.tensor([[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])
    points = torch.tensor([[0.5, 0.2, -2.0], [0.5, 0.2, 0.0], [0.5, 0.2, 1e-6]])
    plain = project_points(points, K)
    # Behind the camera: plain division, mirrored through the principal point.
    torch.testing.assert_close(plain[0], torch.tensor([50.0 - 25.0, 40.0 - 10.0]))
    assert not torch.isfinite(plain[1]).all()
    clamped = project_points(points, K, eps=0.1)
    torch.testing.assert_close(clamped[0], plain[0])  # |z| = 2 is above eps: unchanged
    torch.testing.assert_close(clamped[1], torch.tensor([50.0 + 500.0, 40.0 + 200.0]))
    torch.testing.assert_close(clamped[2], clamped[1])
    negative = project_points(torch.tensor([[0.5, 0.2, -1e-6]]), K, eps=0.1)
    torch.testing.assert_close(negative[0], torch.tensor([50.0 - 500.0, 40.0 - 200.0]))


def test_crop_box_edges_map_to_crop_edges() -> None:
    boxes = make_boxes(4, torch.Generator().manual_seed(2))
    width, height = OUT_SIZE
    corners = boxes.reshape(4, 2, 2)  # (x0, y0), (x1, y1)
    in_crop = points_to_crop(corners, boxes, OUT_SIZE)
    expected = torch.tensor([[-0.5, -0.5], [width - 0.5, height - 0.5]], dtype=torch.float64)
    torch.testing.assert_close(in_crop, expected.expand(4, 2, 2))
    torch.testing.assert_close(
        boxes_to_crop(boxes[:, None], boxes, OUT_SIZE)[:, 0],
        torch.tensor([-0.5, -0.5, width - 0.5, height - 0.5], dtype=torch.float64).expand(4, 4),
    )
    # The centre of the box is the centre of the crop.
    centre = points_to_crop(((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None], boxes, OUT_SIZE)
    torch.testing.assert_close(
        centre[:, 0], torch.tensor([(width - 1) / 2, (height - 1) / 2]).double().expand(4, 2)
    )


def test_crop_point_and_box_round_trips() -> None:
    generator = torch.Generator().manual_seed(3)
    boxes = make_boxes(3, generator)
    uv = 640.0 * torch.rand(3, 10, 2, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(
        points_from_crop(points_to_crop(uv, boxes, OUT_SIZE), boxes, OUT_SIZE), uv
    )
    inner = make_boxes(3 * 5, generator).reshape(3, 5, 4)
    in_crop = boxes_to_crop(inner, boxes, OUT_SIZE)
    assert in_crop.shape == (3, 5, 4)
    torch.testing.assert_close(boxes_from_crop(in_crop, boxes, OUT_SIZE), inner)


def test_crop_affine_is_the_point_map() -> None:
    generator = torch.Generator().manual_seed(4)
    boxes = make_boxes(3, generator)
    uv = 640.0 * torch.rand(3, 10, 2, generator=generator, dtype=torch.float64)
    affine = crop_affine(boxes, OUT_SIZE)
    assert affine.shape == (3, 2, 3)
    mapped = uv @ affine[..., :2].transpose(-1, -2) + affine[:, None, :, 2]
    torch.testing.assert_close(mapped, points_to_crop(uv, boxes, OUT_SIZE))


def test_crop_intrinsics_agree_with_cropping_projected_points() -> None:
    generator = torch.Generator().manual_seed(5)
    K_full = make_intrinsics(3, generator)
    boxes = make_boxes(3, generator)
    points = make_points(3, 12, generator)
    K_crop = crop_intrinsics(K_full, boxes, OUT_SIZE)
    torch.testing.assert_close(
        project_points(points, K_crop),
        points_to_crop(project_points(points, K_full), boxes, OUT_SIZE),
    )
    torch.testing.assert_close(full_intrinsics_from_crop(K_crop, boxes, OUT_SIZE), K_full)
    # K is only scaled and shifted: the last row stays (0, 0, 1).
    torch.testing.assert_close(
        K_crop[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(3, 3)
    )


@pytest.mark.parametrize("crop_scale", [(1.0, 1.0), (2.0, 2.0), (2.0, 1.0), (0.5, 0.5)])
def test_warp_affine_moves_a_bright_pixel_where_predicted(crop_scale: tuple[float, float]) -> None:
    image = np.zeros((50, 60), dtype=np.float32)  # H x W
    bright = np.array([23.0, 31.0])  # (u, v)
    image[int(bright[1]), int(bright[0])] = 1.0
    width, height = 40, 30
    wanted = np.array([17.0, 12.0])  # where the pixel should land in the crop
    top_left = bright - (wanted + 0.5) / np.array(crop_scale)
    box = torch.tensor([*top_left, *(top_left + np.array([width, height]) / np.array(crop_scale))])
    predicted = points_to_crop(torch.from_numpy(bright)[None], box.double(), (width, height))[0]
    np.testing.assert_allclose(predicted.numpy(), wanted, atol=1e-9)

    matrix = crop_affine(box.double(), (width, height)).numpy()
    crop = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR)
    rows, columns = np.nonzero(crop)
    weights = crop[rows, columns]
    centroid = np.array([columns @ weights, rows @ weights]) / weights.sum()
    np.testing.assert_allclose(centroid, predicted.numpy(), atol=1e-3)
    assert np.unravel_index(crop.argmax(), crop.shape) == (int(wanted[1]), int(wanted[0]))


def test_weak_perspective_spin_value_and_round_trip() -> None:
    cam = torch.tensor([[0.9, 0.1, -0.2], [1.3, -0.05, 0.3]], dtype=torch.float64)
    transl = weak_perspective_to_translation(cam, focal_length=5000.0, crop_size=224.0)
    expected_depth = torch.tensor([2 * 5000 / (224 * 0.9), 2 * 5000 / (224 * 1.3)])
    torch.testing.assert_close(transl[:, 2], expected_depth.double())
    torch.testing.assert_close(transl[:, :2], cam[:, 1:])
    torch.testing.assert_close(translation_to_weak_perspective(transl, 5000.0, 224.0), cam)
    # The body origin lands where the weak-perspective camera puts it: S/2 (s t + 1).
    K = torch.tensor([[5000.0, 0.0, 112.0], [0.0, 5000.0, 112.0], [0.0, 0.0, 1.0]]).double()
    origin = project_points(transl[:, None], K)[:, 0]
    torch.testing.assert_close(origin, 112.0 * (cam[:, :1] * cam[:, 1:] + 1.0))


def test_weak_perspective_accepts_tensor_focal_length() -> None:
    cam = torch.tensor([[0.9, 0.1, -0.2], [1.3, -0.05, 0.3]])
    focal = torch.tensor([5000.0, 1000.0])
    transl = weak_perspective_to_translation(cam, focal, 224.0)
    torch.testing.assert_close(transl[1], weak_perspective_to_translation(cam[1], 1000.0, 224.0))
    torch.testing.assert_close(translation_to_weak_perspective(transl, focal, 224.0), cam)


def test_spin_center_scale_boxes() -> None:
    center = torch.tensor([[100.0, 50.0], [10.0, 20.0]])
    scale = torch.tensor([1.2, 0.5])
    boxes = box_center_scale_to_xyxy(center, scale)
    torch.testing.assert_close(
        boxes, torch.tensor([[-20.0, -70.0, 220.0, 170.0], [-40.0, -30.0, 60.0, 70.0]])
    )
    back_center, back_scale = xyxy_to_center_scale(boxes)
    torch.testing.assert_close(back_center, center)
    torch.testing.assert_close(back_scale, scale)
    # A tight non-square box: side = factor * max(w, h), centred on the box.
    tight = torch.tensor([10.0, 20.0, 110.0, 70.0])
    tight_center, tight_scale = xyxy_to_center_scale(tight, factor=1.2)
    torch.testing.assert_close(tight_center, torch.tensor([60.0, 45.0]))
    torch.testing.assert_close(tight_scale, torch.tensor(0.6))


def test_world_to_camera_smpl_moves_a_rigid_toy_body() -> None:
    generator = torch.Generator().manual_seed(6)
    batch_size = 5
    rest_points = torch.randn(batch_size, 30, 3, generator=generator, dtype=torch.float64)
    root_joint = 0.3 * torch.randn(batch_size, 3, generator=generator, dtype=torch.float64)
    global_orient = 2.0 * torch.randn(batch_size, 3, generator=generator, dtype=torch.float64)
    transl = torch.randn(batch_size, 3, generator=generator, dtype=torch.float64)
    rotation = torch.from_numpy(Rotation.random(batch_size, random_state=7).as_matrix())
    translation = 3.0 * torch.randn(batch_size, 3, generator=generator, dtype=torch.float64)

    def pose(orient: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """SMPL's root transform: R_global (x - J0) + J0 + transl."""
        centred = rest_points - root_joint[:, None]
        rotated = centred @ axis_angle_to_matrix(orient).transpose(-1, -2)
        return rotated + root_joint[:, None] + offset[:, None]

    world = pose(global_orient, transl)
    in_camera = world @ rotation.transpose(-1, -2) + translation[:, None]
    orient_cam, transl_cam = world_to_camera_smpl(
        global_orient, transl, root_joint, rotation, translation
    )
    assert orient_cam.shape == (batch_size, 3) and transl_cam.shape == (batch_size, 3)
    assert (orient_cam.norm(dim=-1) <= torch.pi + 1e-9).all()
    torch.testing.assert_close(pose(orient_cam, transl_cam), in_camera)
    # Forgetting the root joint (the common bug) would give a different answer.
    naive = (rotation @ transl[..., None])[..., 0] + translation
    assert not torch.allclose(naive, transl_cam, atol=1e-3)


def test_inputs_are_not_modified() -> None:
    generator = torch.Generator().manual_seed(8)
    K = make_intrinsics(2, generator)
    boxes = make_boxes(2, generator)
    points = make_points(2, 4, generator)
    copies = [tensor.clone() for tensor in (K, boxes, points)]
    project_points(points, K, eps=1e-3)
    crop_intrinsics(K, boxes, OUT_SIZE)
    full_intrinsics_from_crop(K, boxes, OUT_SIZE)
    boxes_to_crop(boxes[:, None], boxes, OUT_SIZE)
    for tensor, copy in zip((K, boxes, points), copies, strict=True):
        torch.testing.assert_close(tensor, copy, atol=0, rtol=0)
