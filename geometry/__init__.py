"""Geometry foundation of the suite: rotations, Procrustes, cameras and crops.

Imports nothing of the project's own. Conventions (OpenCV camera frame, pixel centres at integer
coordinates, crop boxes, 6D rotation layouts) are stated in each module's docstring.
"""

from geometry.cameras import (
    SPIN_PIXEL_STD,
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
from geometry.procrustes import apply_similarity, procrustes_align, similarity_procrustes
from geometry.rotations import (
    ROTATION_6D_LAYOUTS,
    axis_angle_to_matrix,
    axis_angle_to_rotation_6d,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_axis_angle,
    rotation_6d_to_matrix,
)

__all__ = [
    "ROTATION_6D_LAYOUTS",
    "SPIN_PIXEL_STD",
    "apply_similarity",
    "axis_angle_to_matrix",
    "axis_angle_to_rotation_6d",
    "box_center_scale_to_xyxy",
    "boxes_from_crop",
    "boxes_to_crop",
    "crop_affine",
    "crop_intrinsics",
    "full_intrinsics_from_crop",
    "geodesic_angle",
    "matrix_to_axis_angle",
    "matrix_to_rotation_6d",
    "points_from_crop",
    "points_to_crop",
    "procrustes_align",
    "project_points",
    "rotation_6d_to_axis_angle",
    "rotation_6d_to_matrix",
    "similarity_procrustes",
    "translation_to_weak_perspective",
    "weak_perspective_to_translation",
    "world_to_camera_smpl",
    "xyxy_to_center_scale",
]
