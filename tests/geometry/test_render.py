"""Renders on top of the rasterizer: silhouettes, depth, part labels, instances, shading."""

from __future__ import annotations

import torch
import trimesh

from geometry.rasterizer import rasterize
from geometry.render import (
    part_colors,
    render_depth,
    render_instances,
    render_part_labels,
    render_shaded,
    render_silhouette,
)

IMAGE_SIZE = (48, 64)  # (H, W)


def intrinsics(batch_size: int = 1, focal: float = 60.0) -> torch.Tensor:
    height, width = IMAGE_SIZE
    K = torch.tensor([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0, 0, 1]])
    return K.expand(batch_size, 3, 3).clone()


def sphere(centre: tuple[float, float, float], radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, 3) float32 vertices and (F, 3) faces of an icosphere with outward normals."""
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32) + torch.tensor(centre)
    return vertices, torch.tensor(mesh.faces)


def two_boxes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two boxes side by side at 3 m (left one labelled 0, right one 1): vertices, faces, labels."""
    left = trimesh.creation.box(extents=(0.6, 0.6, 0.6))
    left.apply_translation((-0.4, 0.0, 3.0))
    right = trimesh.creation.box(extents=(0.6, 0.6, 0.6))
    right.apply_translation((0.4, 0.0, 3.0))
    mesh = trimesh.util.concatenate([left, right])
    labels = torch.cat((torch.zeros(len(left.vertices)), torch.ones(len(right.vertices)))).long()
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces), labels


def test_silhouette_is_where_a_face_covers() -> None:
    vertices, faces = sphere((0.1, -0.1, 3.0), 0.8)
    silhouette = render_silhouette(vertices[None], faces, intrinsics(), IMAGE_SIZE)
    fragments = rasterize(vertices[None], faces, intrinsics(), IMAGE_SIZE)
    assert silhouette.dtype == torch.bool
    assert torch.equal(silhouette, fragments.face_index >= 0)
    assert 200 < silhouette.sum() < silhouette.numel()


def test_depth_map_is_the_surface_depth_and_differentiable() -> None:
    vertices, faces = sphere((0.0, 0.0, 3.0), 0.8)
    vertices = vertices[None].requires_grad_()
    depth = render_depth(vertices, faces, intrinsics(), IMAGE_SIZE)
    fragments = rasterize(vertices, faces, intrinsics(), IMAGE_SIZE)
    foreground = fragments.face_index >= 0
    torch.testing.assert_close(depth[foreground], fragments.depth[foreground])
    assert torch.isinf(depth[~foreground]).all()
    # The sphere's nearest point is 0.8 m in front of its centre, at the image centre.
    assert abs(depth[foreground].min().item() - 2.2) < 0.01
    depth[foreground].sum().backward()
    assert vertices.grad is not None and vertices.grad[..., 2].sum() > 0


def test_part_labels_of_a_two_part_mesh() -> None:
    vertices, faces, labels = two_boxes()
    K = intrinsics()
    part_map = render_part_labels(vertices[None], faces, K, IMAGE_SIZE, labels)[0]
    left_faces, right_faces = faces[: faces.shape[0] // 2], faces[faces.shape[0] // 2 :]
    left = render_silhouette(vertices[None], left_faces, K, IMAGE_SIZE)[0]
    right = render_silhouette(vertices[None], right_faces, K, IMAGE_SIZE)[0]
    assert left.sum() > 50 and right.sum() > 50 and not (left & right).any()
    assert (part_map[left] == 1).all() and (part_map[right] == 2).all()
    assert (part_map[~(left | right)] == 0).all()


def test_part_label_of_a_face_is_its_first_vertex_label() -> None:
    vertices = torch.tensor([[[-1.0, -1.0, 2.0], [-1.0, 1.0, 2.0], [1.0, 0.0, 2.0]]])
    labels = torch.tensor([4, 7, 9])
    faces = torch.tensor([[1, 2, 0]])
    part_map = render_part_labels(vertices, faces, intrinsics(), IMAGE_SIZE, labels)
    assert set(part_map.unique().tolist()) == {0, 8}


def test_instances_nearest_wins_and_invalid_people_are_skipped() -> None:
    far, faces = sphere((-0.3, 0.0, 4.0), 0.7)
    near, _ = sphere((0.3, 0.0, 3.0), 0.5)
    people = torch.stack((far, near))[None]  # (1, 2, V, 3)
    K = intrinsics()
    instances = render_instances(people, faces, K, IMAGE_SIZE)[0]
    far_mask = render_silhouette(far[None], faces, K, IMAGE_SIZE)[0]
    near_mask = render_silhouette(near[None], faces, K, IMAGE_SIZE)[0]
    overlap = far_mask & near_mask
    assert overlap.sum() > 50 and (far_mask & ~near_mask).sum() > 50
    assert (instances[near_mask] == 2).all()  # the nearer person wins the overlap
    assert (instances[far_mask & ~near_mask] == 1).all()
    assert (instances[~(far_mask | near_mask)] == 0).all()

    only_far = render_instances(people, faces, K, IMAGE_SIZE, torch.tensor([[True, False]]))[0]
    assert torch.equal(only_far, far_mask.long())
    # A batch of two scenes where the order of the people differs.
    swapped = torch.cat((people, people.flip(1)))
    batch = render_instances(swapped, faces, intrinsics(2), IMAGE_SIZE)
    assert torch.equal(batch[0], instances)
    assert torch.equal(batch[1], torch.where(instances > 0, 3 - instances, 0))


def test_shading_is_brighter_where_faces_face_the_light() -> None:
    vertices, faces = sphere((0.0, 0.0, 3.0), 0.9)
    colors = torch.full((vertices.shape[0], 3), 0.8)
    K = intrinsics()
    # Light travelling towards +x: it comes from the left, so the left half is lit.
    rgb, mask = render_shaded(vertices[None], faces, K, IMAGE_SIZE, colors, (1.0, 0.0, 0.0))
    rgb, mask = rgb[0], mask[0]
    assert torch.equal(mask, render_silhouette(vertices[None], faces, K, IMAGE_SIZE)[0])
    assert rgb.min() >= 0 and rgb.max() <= 1 and (rgb[~mask] == 0).all()
    brightness = rgb.mean(dim=-1)
    columns = torch.arange(IMAGE_SIZE[1])
    left, right = mask & (columns < 28), mask & (columns > 35)
    assert brightness[left].mean() > brightness[right].mean() + 0.2
    torch.testing.assert_close(brightness[right].min(), torch.tensor(0.3 * 0.8))  # ambient only
    # A light at the camera: the centre (facing it) is brighter than the rim.
    rgb, mask = render_shaded(vertices[None], faces, K, IMAGE_SIZE, colors)
    centre = rgb[0, 23, 31].mean()
    assert centre > 0.75 and centre > rgb[0][mask[0]].mean(dim=-1).min() + 0.3


def test_part_colours_follow_the_labels() -> None:
    vertices, faces, labels = two_boxes()
    colors = part_colors(labels, num_parts=2)
    assert colors.shape == (vertices.shape[0], 3)
    assert torch.equal(part_colors(labels, 2), colors)  # a fixed palette
    palette = part_colors(torch.arange(24), 24)
    assert torch.cdist(palette, palette).add(torch.eye(24)).min() > 0.05  # distinct colours
    rgb = render_shaded(vertices[None], faces, intrinsics(), IMAGE_SIZE, colors)[0]
    lit_left = rgb[0, 24, 20] / rgb[0, 24, 20].max()
    lit_right = rgb[0, 24, 44] / rgb[0, 24, 44].max()
    torch.testing.assert_close(lit_left, palette[0] / palette[0].max())
    torch.testing.assert_close(lit_right, palette[1] / palette[1].max())
