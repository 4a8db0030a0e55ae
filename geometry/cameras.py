"""Pinhole cameras, crops and the SPIN-family camera conventions: the suite's one copy of each.

Conventions (shared by the whole suite):
    - Camera frame: OpenCV, x right, y down, z forward, metres. ``K`` is the 3x3 intrinsics
      matrix of the image the points are projected into.
    - Pixels: integer coordinates are pixel centres, so pixel i covers [i - 0.5, i + 0.5] and an
      image of width W spans [-0.5, W - 0.5] in continuous coordinates (OpenCV's convention,
      and the one of the datasets' intrinsics).
    - Boxes: ``(x0, y0, x1, y1)`` in those continuous pixel coordinates (a box covering exactly
      pixels 0..W-1 is (-0.5, -0.5, W - 0.5, H - 0.5)). Readers whose sources count from the
      pixel's top-left corner (COCO's [x, y, w, h]) subtract 0.5 once, when reading.
    - Crops: an axis-aligned box resized to ``out_size = (width, height)`` pixels. The box
      edge x0 maps to -0.5 and x1 to width - 0.5 in the crop:
      ``u_crop = (u - x0) * width / (x1 - x0) - 0.5`` (same for v with y0, y1, height).
      The crop is therefore an affine map; ``crop_affine`` gives it as the 2x3 matrix that
      ``cv2.warpAffine(image, M, (width, height))`` takes directly, and every other crop
      function here is the same map applied to points, boxes or intrinsics. Boxes need not be
      square or inside the image.

All functions take tensors, are batched over leading dimensions (broadcasting between
arguments where shapes allow), create tensors on the inputs' device and dtype and never modify
their inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

SPIN_PIXEL_STD = 200.0  # SPIN's unit for box scales: scale = side in pixels / 200


def project_points(points: Tensor, K: Tensor, eps: float | None = None) -> Tensor:
    """Perspective projection of camera-frame points to pixels.

    Args:
        points: (..., N, 3) points in the camera frame (OpenCV axes), metres.
        K: (..., 3, 3) intrinsics with last row (0, 0, 1), broadcastable against the leading
            dimensions of ``points``.
        eps: if given, the depth z is clamped in absolute value to at least ``eps`` before the
            division, keeping its sign (0 counts as positive).

    Returns:
        (..., N, 2) pixel coordinates (u, v) = K (x / z, y / z, 1), integer values at pixel
        centres.

    Points at or behind the camera (z <= 0) are not treated specially when ``eps`` is None: the
    result is whatever the division gives (mirrored through the principal point for z < 0,
    inf or NaN for z = 0). Callers that care mask on ``points[..., 2] > 0``.
    """
    depth = points[..., 2:]
    if eps is not None:
        sign = torch.where(depth < 0, -1.0, 1.0).to(depth.dtype)
        depth = sign * depth.abs().clamp_min(eps)
    normalised = torch.cat((points[..., :2] / depth, torch.ones_like(depth)), dim=-1)
    return normalised @ K[..., :2, :].transpose(-1, -2)  # (..., N, 2)


def weak_perspective_to_translation(
    cam: Tensor, focal_length: float | Tensor, crop_size: float
) -> Tensor:
    """SPIN's weak-perspective camera (s, tx, ty) to a perspective translation in metres.

    Args:
        cam: (..., 3) = (s, tx, ty) predicted for a square crop of ``crop_size`` pixels; s scales
            metres to the normalised crop coordinate in [-1, 1].
        focal_length: f in pixels (SPIN: 5000), a float or a tensor broadcastable to (...).
        crop_size: S, the crop's side in pixels (SPIN: 224).

    Returns:
        (..., 3) translation t = (tx, ty, 2 f / (S s)) (datasets.md 9.4b). The body plus t
        projects with focal length f and principal point at the crop centre to (nearly) where
        the weak-perspective camera put it. s = 0 gives an infinite depth; no epsilon is added.
    """
    scale, tx, ty = cam.unbind(-1)
    depth = 2.0 * focal_length / (crop_size * scale)
    return torch.stack((tx, ty, depth), dim=-1)


def translation_to_weak_perspective(
    transl: Tensor, focal_length: float | Tensor, crop_size: float
) -> Tensor:
    """Inverse of ``weak_perspective_to_translation``: (..., 3) t -> (..., 3) (s, tx, ty).

    s = 2 f / (S t_z); tx, ty are t's x and y. Arguments as in the forward function.
    """
    tx, ty, depth = transl.unbind(-1)
    scale = 2.0 * focal_length / (crop_size * depth)
    return torch.stack((scale, tx, ty), dim=-1)


def _crop_scale_offset(boxes: Tensor, out_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """(..., 4) boxes -> per-axis scale (..., 2) and offset (..., 2): u_crop = scale u + offset."""
    width, height = out_size
    top_left, bottom_right = boxes[..., :2], boxes[..., 2:]
    out_extent = torch.tensor([width, height], dtype=boxes.dtype, device=boxes.device)
    scale = out_extent / (bottom_right - top_left)
    offset = -top_left * scale - 0.5
    return scale, offset


def _affine_3x3(scale: Tensor, offset: Tensor) -> Tensor:
    """Per-axis scale (..., 2) and offset (..., 2) -> (..., 3, 3) [[sx,0,ox],[0,sy,oy],[0,0,1]]."""
    zeros = torch.zeros_like(scale[..., 0])
    ones = torch.ones_like(scale[..., 0])
    rows = (
        torch.stack((scale[..., 0], zeros, offset[..., 0]), dim=-1),
        torch.stack((zeros, scale[..., 1], offset[..., 1]), dim=-1),
        torch.stack((zeros, zeros, ones), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def crop_affine(boxes: Tensor, out_size: tuple[int, int]) -> Tensor:
    """Affine map from full-image pixels to crop pixels, as cv2.warpAffine expects it.

    Args:
        boxes: (..., 4) crop boxes (x0, y0, x1, y1) in full-image pixels.
        out_size: (width, height) of the crop in pixels.

    Returns:
        (..., 2, 3) matrices M with (u_crop, v_crop) = M @ (u, v, 1). For an image,
        ``cv2.warpAffine(image, M.numpy(), (width, height))`` cuts the crop.
    """
    scale, offset = _crop_scale_offset(boxes, out_size)
    return _affine_3x3(scale, offset)[..., :2, :]


def crop_intrinsics(K_full: Tensor, boxes: Tensor, out_size: tuple[int, int]) -> Tensor:
    """Intrinsics of a crop: (..., 3, 3) full-image K and (..., 4) boxes -> (..., 3, 3) K_crop.

    Projecting with K_crop equals projecting with K_full and then ``points_to_crop``.
    """
    scale, offset = _crop_scale_offset(boxes, out_size)
    return _affine_3x3(scale, offset) @ K_full


def full_intrinsics_from_crop(K_crop: Tensor, boxes: Tensor, out_size: tuple[int, int]) -> Tensor:
    """Inverse of ``crop_intrinsics``: (..., 3, 3) K_crop and (..., 4) boxes -> K_full."""
    scale, offset = _crop_scale_offset(boxes, out_size)
    return _affine_3x3(1.0 / scale, -offset / scale) @ K_crop


def points_to_crop(uv: Tensor, boxes: Tensor, out_size: tuple[int, int]) -> Tensor:
    """Full-image pixels (..., N, 2) to crop pixels (..., N, 2) for crop boxes (..., 4)."""
    scale, offset = _crop_scale_offset(boxes, out_size)
    return uv * scale[..., None, :] + offset[..., None, :]


def points_from_crop(uv_crop: Tensor, boxes: Tensor, out_size: tuple[int, int]) -> Tensor:
    """Crop pixels (..., N, 2) back to full-image pixels (..., N, 2) for crop boxes (..., 4)."""
    scale, offset = _crop_scale_offset(boxes, out_size)
    return (uv_crop - offset[..., None, :]) / scale[..., None, :]


def _boxes_as_corners(boxes: Tensor) -> Tensor:
    return boxes.unflatten(-1, (2, 2))  # (..., M, 4) -> (..., M, 2, 2): two (x, y) corners


def boxes_to_crop(boxes: Tensor, crop_boxes: Tensor, out_size: tuple[int, int]) -> Tensor:
    """Boxes (..., M, 4) in full-image pixels to crop pixels, for crop boxes (..., 4)."""
    corners = _boxes_as_corners(boxes).flatten(-3, -2)  # (..., 2M, 2)
    return points_to_crop(corners, crop_boxes, out_size).unflatten(-2, (-1, 2)).flatten(-2)


def boxes_from_crop(boxes_in_crop: Tensor, crop_boxes: Tensor, out_size: tuple[int, int]) -> Tensor:
    """Boxes (..., M, 4) in crop pixels back to full-image pixels, for crop boxes (..., 4)."""
    corners = _boxes_as_corners(boxes_in_crop).flatten(-3, -2)  # (..., 2M, 2)
    return points_from_crop(corners, crop_boxes, out_size).unflatten(-2, (-1, 2)).flatten(-2)


def box_center_scale_to_xyxy(
    center: Tensor, scale: Tensor, pixel_std: float = SPIN_PIXEL_STD
) -> Tensor:
    """SPIN's (center, scale) box to (x0, y0, x1, y1) (datasets.md 0.1).

    Args:
        center: (..., 2) box centre (cx, cy) in full-image pixels.
        scale: (...) side of the square box divided by ``pixel_std`` (200 in SPIN).

    Returns:
        (..., 4) the square of side ``scale * pixel_std`` centred at ``center``.
    """
    half_side = (scale * pixel_std / 2.0)[..., None]
    return torch.cat((center - half_side, center + half_side), dim=-1)


def xyxy_to_center_scale(
    boxes: Tensor, factor: float = 1.0, pixel_std: float = SPIN_PIXEL_STD
) -> tuple[Tensor, Tensor]:
    """Box (..., 4) to SPIN's (center (..., 2), scale (...)).

    The square box shares the box's centre and has side ``factor * max(width, height)``; scale is
    that side divided by ``pixel_std``. SPIN uses factor 1.2 for keypoint boxes and 0.9 for
    Human3.6M mask boxes. With factor 1 it inverts ``box_center_scale_to_xyxy`` on squares.
    """
    top_left, bottom_right = boxes[..., :2], boxes[..., 2:]
    center = (top_left + bottom_right) / 2.0
    side = (bottom_right - top_left).amax(dim=-1) * factor
    return center, side / pixel_std


def world_to_camera_smpl(
    global_orient: Tensor,
    transl: Tensor,
    root_joint: Tensor,
    rotation: Tensor,
    translation: Tensor,
) -> tuple[Tensor, Tensor]:
    """Move an SMPL body from world to camera coordinates by changing its parameters.

    SMPL poses a body as ``R_global (x - J0) + J0 + transl`` (plus the articulation below the
    root), rotating about the root joint J0. A camera with extrinsics ``x_cam = R x + t`` sees
    the same body posed with global orientation ``R R_global`` and translation
    ``R (J0 + transl) + t - J0`` (datasets.md 9.4b).

    Args:
        global_orient: (..., 3) axis-angle of the root in the world frame.
        transl: (..., 3) SMPL translation in the world frame, metres.
        root_joint: (..., 3) J0, the root (pelvis) joint of the *shaped rest-pose* body, i.e.
            the body model's joint 0 for these betas with zero pose and zero transl. It
            depends on betas; the body model provides it.
        rotation: (..., 3, 3) world-to-camera rotation R.
        translation: (..., 3) world-to-camera translation t, metres.

    Returns:
        (global_orient_cam (..., 3) axis-angle, angle in [0, pi]; transl_cam (..., 3) metres).
    """
    global_rotation_cam = rotation @ axis_angle_to_matrix(global_orient)
    moved_root = (rotation @ (root_joint + transl)[..., None])[..., 0]  # R (J0 + transl)
    transl_cam = moved_root + translation - root_joint
    return matrix_to_axis_angle(global_rotation_cam), transl_cam
