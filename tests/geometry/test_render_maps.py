"""Renders on top of the rasterizer: silhouettes, instances, part labels, shading."""

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

SIZE = (64, 80)
K = torch.tensor([[[70.0, 0.0, 39.5], [0.0, 70.0, 31.5], [0.0, 0.0, 1.0]]])


def sphere(center, radius=0.4, subdivisions=3):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    vertices = torch.tensor(mesh.vertices + center, dtype=torch.float32)
    return vertices, torch.tensor(mesh.faces)


def test_silhouette_and_depth_match_the_fragments():
    vertices, faces = sphere([0.1, 0.0, 3.0])
    fragments = rasterize(vertices[None], faces, K, SIZE)
    assert torch.equal(render_silhouette(vertices[None], faces, K, SIZE), fragments.face_index >= 0)
    depth = render_depth(vertices[None], faces, K, SIZE)
    covered = fragments.face_index >= 0
    torch.testing.assert_close(depth[covered], fragments.depth[covered])
    assert torch.isinf(depth[~covered]).all()
    assert 2.6 - 1e-3 < depth[covered].min() < 2.65  # the sphere's front at z = 3 - 0.4


def test_instances_nearest_wins_and_invalid_people_vanish():
    near_vertices, faces = sphere([-0.2, 0.0, 3.0])
    far_vertices, _ = sphere([0.2, 0.0, 4.0])
    people = torch.stack([near_vertices, far_vertices])[None]  # (1, 2, V, 3)
    instances = render_instances(people, faces, K, SIZE)
    near_alone = render_silhouette(near_vertices[None], faces, K, SIZE)
    far_alone = render_silhouette(far_vertices[None], faces, K, SIZE)
    assert torch.equal(instances == 1, near_alone)  # the near person is never hidden
    assert torch.equal(instances == 2, far_alone & ~near_alone)
    assert (far_alone & near_alone).any()  # they do overlap
    valid = torch.tensor([[False, True]])
    assert torch.equal(render_instances(people, faces, K, SIZE, valid) == 2, far_alone)


def test_part_labels_follow_the_vertices():
    vertices, faces = sphere([0.0, 0.0, 3.0])
    labels = (vertices[:, 0] > 0).long() * 4 + 2  # left half 2, right half 6
    label_map = render_part_labels(vertices[None], faces, K, SIZE, labels)[0]
    silhouette = render_silhouette(vertices[None], faces, K, SIZE)[0]
    assert torch.equal(label_map > 0, silhouette)
    assert set(label_map.unique().tolist()) == {0, 3, 7}
    center_column = 39.5
    columns = torch.arange(SIZE[1]).expand(SIZE)
    assert (label_map[silhouette & (columns < center_column - 2)] == 3).all()
    assert (label_map[silhouette & (columns > center_column + 2)] == 7).all()


def test_shading_is_brightest_facing_the_light():
    vertices, faces = sphere([0.0, 0.0, 3.0])
    colors = torch.ones(len(vertices), 3)
    rgb, mask = render_shaded(vertices[None], faces, K, SIZE, colors, light_direction=(0, 0, 1))
    brightness = rgb[0].mean(-1)
    assert torch.equal(mask, render_silhouette(vertices[None], faces, K, SIZE))
    assert (rgb[~mask] == 0).all()
    center = brightness[31, 39]
    rim = brightness[mask[0]].min()
    assert center > 0.95 and rim < center - 0.2
    from_left, _ = render_shaded(vertices[None], faces, K, SIZE, colors, light_direction=(1, 0, 0))
    left, right = from_left[0, 31, 33].mean(), from_left[0, 31, 46].mean()
    assert left > right + 0.3  # a light travelling along +x lights the -x side


def test_part_colors_are_fixed_and_distinct():
    labels = torch.arange(24)
    colors = part_colors(labels, 24)
    assert colors.shape == (24, 3) and (colors >= 0).all() and (colors <= 1).all()
    assert torch.cdist(colors, colors).add(torch.eye(24)).min() > 0.01
    assert torch.equal(colors, part_colors(labels, 24))
