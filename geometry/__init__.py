"""Geometry foundation of the suite: rotations, Procrustes, cameras and crops, a batched mesh
rasterizer and renders, voxelization, signed distance grids, mesh utilities and drawing.

Imports nothing of the project's own. Conventions (stated in each module's docstring): OpenCV
camera frame (x right, y down, z forward), metres; integer pixel coordinates are pixel centres;
crop boxes (x0, y0, x1, y1) map their edges to -0.5 and size - 0.5; volumes are (D, H, W) =
(z, y, x) over an axis-aligned box [bounds_min, bounds_max] given as (x, y, z), with values at
the centres of equal cells; 6D rotations default to SPIN's "columns" layout.
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
from geometry.drawing import (
    confidence_volume,
    draw_skeleton,
    heatmap_grid,
    max_projections,
    overlay,
    overlay_mesh,
    save_png,
    scene_views,
)
from geometry.meshes import (
    chamfer_distance,
    concatenate_meshes,
    grid_to_mesh,
    load_mesh,
    nearest_neighbors,
    save_mesh,
)
from geometry.procrustes import apply_similarity, procrustes_align, similarity_procrustes
from geometry.rasterizer import Fragments, interpolate, rasterize
from geometry.render import (
    part_colors,
    render_depth,
    render_instances,
    render_part_labels,
    render_shaded,
    render_silhouette,
)
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
from geometry.sdf import FAST_SDF_ERROR_BOUND, mesh_box, signed_distance_grid
from geometry.volumes import (
    bodynet_grid_vertices,
    bodynet_voxelize,
    grid_centers,
    sample_grid,
    voxelize,
    voxelize_interior,
    voxelize_labels,
)

__all__ = [
    "FAST_SDF_ERROR_BOUND",
    "ROTATION_6D_LAYOUTS",
    "SPIN_PIXEL_STD",
    "Fragments",
    "apply_similarity",
    "axis_angle_to_matrix",
    "axis_angle_to_rotation_6d",
    "bodynet_grid_vertices",
    "bodynet_voxelize",
    "box_center_scale_to_xyxy",
    "boxes_from_crop",
    "boxes_to_crop",
    "chamfer_distance",
    "concatenate_meshes",
    "confidence_volume",
    "crop_affine",
    "crop_intrinsics",
    "draw_skeleton",
    "full_intrinsics_from_crop",
    "geodesic_angle",
    "grid_centers",
    "grid_to_mesh",
    "heatmap_grid",
    "interpolate",
    "load_mesh",
    "matrix_to_axis_angle",
    "matrix_to_rotation_6d",
    "max_projections",
    "mesh_box",
    "nearest_neighbors",
    "overlay",
    "overlay_mesh",
    "part_colors",
    "points_from_crop",
    "points_to_crop",
    "procrustes_align",
    "project_points",
    "rasterize",
    "render_depth",
    "render_instances",
    "render_part_labels",
    "render_shaded",
    "render_silhouette",
    "rotation_6d_to_axis_angle",
    "rotation_6d_to_matrix",
    "sample_grid",
    "save_mesh",
    "save_png",
    "scene_views",
    "signed_distance_grid",
    "similarity_procrustes",
    "translation_to_weak_perspective",
    "voxelize",
    "voxelize_interior",
    "voxelize_labels",
    "weak_perspective_to_translation",
    "world_to_camera_smpl",
    "xyxy_to_center_scale",
]
