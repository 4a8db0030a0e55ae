"""Renders built on ``geometry.rasterizer``: silhouettes, depth, part labels, instances, shading.

Conventions are the rasterizer's (OpenCV camera frame in metres, pixel centres at integer
coordinates, ``K`` the intrinsics of the rendered image, faces with a vertex at z <= ``near``
dropped). Every function takes ``vertices (B, V, 3)``, ``faces (F, 3)`` int64 shared by the
batch, ``K (B, 3, 3)`` and ``image_size = (H, W)``, and returns tensors on the vertices'
device. Only ``render_depth`` is meant for gradients (through ``interpolate``); the label maps
are discrete.
"""

from __future__ import annotations

import colorsys

import torch
from torch import Tensor

from geometry.rasterizer import interpolate, rasterize

_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def render_silhouette(
    vertices: Tensor, faces: Tensor, K: Tensor, image_size: tuple[int, int], near: float = 0.01
) -> Tensor:
    """(B, H, W) bool: True where a face covers the pixel centre."""
    return rasterize(vertices.detach(), faces, K, image_size, near).face_index >= 0


def render_depth(
    vertices: Tensor, faces: Tensor, K: Tensor, image_size: tuple[int, int], near: float = 0.01
) -> Tensor:
    """(B, H, W) camera z of the nearest surface, metres; +inf in the background.

    Differentiable with respect to ``vertices`` (the three vertices of each covering face), as
    ``interpolate`` of the vertices' z. Losses should mask the background (isfinite) first.
    """
    fragments = rasterize(vertices, faces, K, image_size, near)
    depth = interpolate(fragments, faces, vertices[..., 2:])[..., 0]  # (B, H, W)
    return torch.where(fragments.face_index >= 0, depth, torch.inf)


def render_part_labels(
    vertices: Tensor,
    faces: Tensor,
    K: Tensor,
    image_size: tuple[int, int],
    vertex_labels: Tensor,
    near: float = 0.01,
) -> Tensor:
    """Part-label map: (B, H, W) int64, 0 for background, else 1 + the covering face's label.

    Args:
        vertex_labels: (V,) int64 label per vertex (for SMPL parts, the argmax of the skinning
            weights, 0..23). A face takes the label of its first vertex (``faces[:, 0]``), so
            part borders follow mesh edges.
    """
    face_labels = vertex_labels.to(faces.device)[faces[:, 0]]  # (F,)
    face_index = rasterize(vertices.detach(), faces, K, image_size, near).face_index
    return torch.where(face_index >= 0, face_labels[face_index.clamp(min=0)] + 1, 0)


def render_instances(
    vertices: Tensor,
    faces: Tensor,
    K: Tensor,
    image_size: tuple[int, int],
    person_valid: Tensor | None = None,
    near: float = 0.01,
) -> Tensor:
    """Instance map of several people: (B, H, W) int64, 0 for background, k + 1 for person k.

    All people of a batch element are rasterized as one mesh, so the nearest surface wins where
    they overlap.

    Args:
        vertices: (B, P, V, 3) vertices of P people per image, camera frame, metres.
        faces: (F, 3) faces of one person.
        person_valid: (B, P) bool, or None for all valid; invalid people (padding) are skipped.
    """
    num_people, num_vertices = vertices.shape[1:3]
    vertices = vertices.detach()
    if person_valid is not None:
        # An invalid person is moved behind the camera, where all its faces are dropped.
        behind = vertices.new_tensor([0.0, 0.0, -1.0])
        vertices = torch.where(person_valid[:, :, None, None], vertices, behind)
    offsets = num_vertices * torch.arange(num_people, device=faces.device)
    scene_faces = (faces[None] + offsets[:, None, None]).flatten(0, 1)  # (P * F, 3)
    scene = vertices.flatten(1, 2)  # (B, P * V, 3)
    face_index = rasterize(scene, scene_faces, K, image_size, near).face_index
    return torch.where(face_index >= 0, face_index // faces.shape[0] + 1, 0)


def _face_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """(B, F, 3) unit normals (v1 - v0) x (v2 - v0) of each face; outward for the mannequin."""
    corners = vertices[:, faces]  # (B, F, 3, 3)
    normals = torch.linalg.cross(
        corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]
    )
    return torch.nn.functional.normalize(normals, dim=-1)


def render_shaded(
    vertices: Tensor,
    faces: Tensor,
    K: Tensor,
    image_size: tuple[int, int],
    colors: Tensor,
    light_direction: tuple[float, float, float] = (0.0, 0.0, 1.0),
    ambient: float = 0.3,
    near: float = 0.01,
) -> tuple[Tensor, Tensor]:
    """A Lambertian render with flat shading and per-vertex colours.

    Each face is lit with its own flat normal n = normalize((v1 - v0) x (v2 - v0)) (the
    outward normal of a mesh wound like the mannequin) by a directional light:
    shade = ambient + (1 - ambient) * max(0, -n . light), where ``light_direction`` points
    from the light into the scene in the camera frame (the default, +z, is a light at the
    camera). Faces seen from behind get ambient light only. The pixel's colour is the
    perspective-correct interpolation of the vertex colours times the shade.

    Args:
        colors: (B, V, 3) or (V, 3) RGB in [0, 1] per vertex (``part_colors`` gives one per
            part label).
        ambient: fraction of the colour that needs no light, in [0, 1].

    Returns:
        rgb (B, H, W, 3) float in [0, 1], black background; mask (B, H, W) bool, the silhouette.
    """
    vertices = vertices.detach()
    fragments = rasterize(vertices, faces, K, image_size, near)
    mask = fragments.face_index >= 0
    batch_size = vertices.shape[0]
    colors = colors.to(vertices).expand(batch_size, -1, -1)
    albedo = interpolate(fragments, faces, colors)  # (B, H, W, 3)
    light = vertices.new_tensor(light_direction)
    lambert = (-_face_normals(vertices, faces) @ (light / light.norm())).clamp(min=0.0)  # (B, F)
    shade_per_face = ambient + (1.0 - ambient) * lambert
    shade = torch.gather(shade_per_face, 1, fragments.face_index.clamp(min=0).flatten(1))
    shade = shade.view_as(fragments.face_index) * mask  # (B, H, W)
    return (albedo * shade[..., None]).clamp(0.0, 1.0), mask


def part_colors(vertex_labels: Tensor, num_parts: int) -> Tensor:
    """(V, 3) float RGB in [0, 1] per vertex from a fixed palette of ``num_parts`` colours.

    Part p gets hue frac(p * 0.618...) (golden-ratio steps, so neighbouring labels differ),
    saturation 0.6 and value 0.95: fixed, and the same for a part whatever ``num_parts``.
    """
    palette = torch.tensor(
        [
            colorsys.hsv_to_rgb((p * _GOLDEN_RATIO_CONJUGATE) % 1.0, 0.6, 0.95)
            for p in range(num_parts)
        ],
        dtype=torch.float32,
        device=vertex_labels.device,
    )  # (num_parts, 3)
    return palette[vertex_labels]
