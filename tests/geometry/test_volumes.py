"""Voxelization against trimesh's containment and exact surface distances, grid axis order,
sample_grid gradients, part labels, and BodyNet's image-aligned grid against the renderer."""

from __future__ import annotations

import math

import igl
import numpy as np
import pytest
import torch
import trimesh
from scipy import ndimage

from geometry.volumes import (
    bodynet_grid_to_camera,
    bodynet_grid_vertices,
    bodynet_voxelize,
    grid_centers,
    sample_grid,
    voxelize,
    voxelize_interior,
    voxelize_labels,
)


def cell_centers(resolution_xyz, bounds_min, bounds_max) -> np.ndarray:
    """(Z, Y, X, 3) cell centres written out from the convention, independently of the code."""
    size = np.array(resolution_xyz)
    cell = (np.asarray(bounds_max) - np.asarray(bounds_min)) / size
    k, j, i = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    return np.asarray(bounds_min) + (np.stack((i, j, k), axis=-1) + 0.5) * cell


def padded_box(vertices: np.ndarray, padding: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    return low - padding * (high - low), high + padding * (high - low)


@pytest.fixture(scope="module")
def mannequin(body_models_root) -> trimesh.Trimesh:
    """The mannequin in its rest pose (SMPL frame, metres): closed and watertight."""
    from body import BodyModel

    model = BodyModel(body_models_root)
    with torch.no_grad():
        out = model(torch.zeros(1, 72), torch.zeros(1, 10), torch.zeros(1, 3))
    mesh = trimesh.Trimesh(out.vertices[0].double().numpy(), model.faces.numpy(), process=False)
    assert mesh.is_watertight
    return mesh


def sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    mesh.apply_translation([0.013, -0.021, 0.034])  # off the cell lattice
    return mesh


def rotated_box() -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=(0.5, 0.3, 0.2))
    mesh.apply_transform(trimesh.transformations.rotation_matrix(0.7, [1.0, 2.0, 3.0]))
    return mesh


def check_against_containment(mesh: trimesh.Trimesh, resolution_xyz, bounds) -> np.ndarray:
    """Assert voxelize's three properties on a closed mesh; return the occupancy (Z, Y, X)."""
    occupied = voxelize(mesh.vertices, mesh.faces, resolution_xyz, *bounds).numpy()
    assert occupied.shape == tuple(resolution_xyz[::-1]) and occupied.dtype == bool
    centers = cell_centers(resolution_xyz, *bounds)
    inside = mesh.contains(centers.reshape(-1, 3)).reshape(occupied.shape)
    # 1. Every cell whose centre is inside is occupied.
    assert not np.any(inside & ~occupied)
    # 2. Every other occupied cell touches the surface: its centre lies within half a cell
    # diagonal of it (exact point-to-mesh distance).
    shell = occupied & ~inside
    half_diagonal = 0.5 * np.linalg.norm((bounds[1] - bounds[0]) / np.array(resolution_xyz))
    squared, _, _ = igl.point_mesh_squared_distance(centers[shell], mesh.vertices, mesh.faces)
    assert np.sqrt(squared).max() <= half_diagonal * (1 + 1e-9)
    # 3. Every cell the surface passes through is occupied: dense surface samples (about 30 per
    # cell face area) all fall in occupied cells.
    cell = (bounds[1] - bounds[0]) / np.array(resolution_xyz)
    count = int(30 * mesh.area / np.prod(np.sort(cell)[:2]))
    samples, _ = trimesh.sample.sample_surface(mesh, count, seed=0)
    index = np.floor((samples - bounds[0]) / cell).astype(int)  # (N, 3) = (i, j, k)
    assert np.all(occupied[index[:, 2], index[:, 1], index[:, 0]])
    return occupied


def test_mannequin_against_containment_and_surface_distance(mannequin) -> None:
    bounds = padded_box(mannequin.vertices)
    check_against_containment(mannequin, (64, 64, 64), bounds)


@pytest.mark.parametrize(
    ("make_mesh", "resolution_xyz"), [(sphere, (20, 24, 28)), (rotated_box, (32, 27, 19))]
)
def test_analytic_meshes_against_containment(make_mesh, resolution_xyz) -> None:
    mesh = make_mesh()
    bounds = padded_box(mesh.vertices, 0.15)
    occupied = check_against_containment(mesh, resolution_xyz, bounds)
    assert occupied.sum() > 0.5 * np.prod(resolution_xyz) * mesh.volume / np.prod(
        bounds[1] - bounds[0]
    )


def test_faces_in_cell_boundary_planes_are_caught() -> None:
    """An axis-aligned box whose faces lie exactly on cell boundaries (exact touching, which
    rounding must not lose): the surface stays closed and the interior is filled."""
    mesh = trimesh.creation.box(extents=(0.5, 0.4, 0.3))
    mesh.apply_translation([0.0, 0.0, 3.0])
    bounds = (np.array([-0.3, -0.3, 2.7]), np.array([0.3, 0.3, 3.3]))  # z faces at cells 16, 48
    occupied = check_against_containment(mesh, (64, 64, 64), bounds)
    cell_volume = np.prod((bounds[1] - bounds[0]) / 64)
    assert occupied.sum() * cell_volume > mesh.volume
    interior = voxelize_interior(mesh.vertices, mesh.faces, 64, *bounds).numpy()
    assert interior.sum() * cell_volume == pytest.approx(mesh.volume, rel=0.01)


def test_mannequin_volume_within_surface_layer(mannequin) -> None:
    """The occupied cells cover the solid and lie within one cell diagonal of it, so the excess
    volume is between 0 and about area x diagonal."""
    bounds = padded_box(mannequin.vertices)
    occupied = voxelize(mannequin.vertices, mannequin.faces, 64, *bounds).numpy()
    cell = (bounds[1] - bounds[0]) / 64
    excess = occupied.sum() * np.prod(cell) - mannequin.volume
    assert 0 < excess <= mannequin.area * np.linalg.norm(cell)


@pytest.mark.parametrize(
    ("make_mesh", "resolution_xyz"), [(sphere, (20, 24, 28)), (rotated_box, (32, 27, 19))]
)
def test_voxelize_interior_is_containment_of_cell_centres(make_mesh, resolution_xyz) -> None:
    mesh = make_mesh()
    bounds = padded_box(mesh.vertices, 0.15)
    occupied = voxelize_interior(mesh.vertices, mesh.faces, resolution_xyz, *bounds).numpy()
    centers = cell_centers(resolution_xyz, *bounds)
    inside = mesh.contains(centers.reshape(-1, 3)).reshape(occupied.shape)
    assert occupied.shape == tuple(resolution_xyz[::-1]) and occupied.dtype == bool
    np.testing.assert_array_equal(occupied, inside)


def test_voxelize_interior_measures_the_mannequin_volume(mannequin) -> None:
    """Unlike the conservative voxelize, cell count x cell volume converges to the volume."""
    bounds = padded_box(mannequin.vertices)
    cell_volume = np.prod((bounds[1] - bounds[0]) / 64)
    occupied = voxelize_interior(mannequin.vertices, mannequin.faces, 64, *bounds).numpy()
    conservative = voxelize(mannequin.vertices, mannequin.faces, 64, *bounds).numpy()
    assert not np.any(occupied & ~conservative)
    assert occupied.sum() * cell_volume == pytest.approx(mannequin.volume, rel=0.01)
    assert conservative.sum() * cell_volume > 1.2 * mannequin.volume


def test_triangle_clipping_only_a_cell_corner_is_caught() -> None:
    """A thin triangle whose edge grazes the corner (2, 2, 2) of cell (1, 1, 1): the cell's
    centre, the triangle's vertices and centroid are all far from the cell, the overlap is a
    sliver of about 0.03 cells, which surface point sampling misses. Plus a tiny triangle
    inside a single cell."""
    point_near_corner = np.array([1.97, 1.97, 1.97])
    direction = np.array([1.0, -1.0, 0.0])
    vertices = np.stack(
        (
            point_near_corner - 3 * direction,
            point_near_corner + 3 * direction,
            np.array([2.5, 2.5, 4.0]),
        )
    )
    tiny = np.array([[3.2, 0.3, 0.4], [3.3, 0.3, 0.4], [3.2, 0.4, 0.5]])  # in cell (3, 0, 0)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    occupied = voxelize(np.concatenate((vertices, tiny)), faces, 4, (0.0,) * 3, (4.0,) * 3)
    occupied = occupied.numpy()
    assert occupied[1, 1, 1]
    assert occupied[0, 0, 3] and occupied[0].sum() == 1  # (k, j, i); the thin one has z > 1.9
    assert not occupied[1, 1, 0] and not occupied[0, 0, 0]  # (k, j, i): genuinely untouched
    assert not np.all((vertices.mean(axis=0) >= 1) & (vertices.mean(axis=0) <= 2))
    # Vertex-free check that the overlap is tiny: dense samples of the triangle barely hit it.
    weights = np.random.default_rng(0).dirichlet(np.ones(3), size=20000)
    samples = weights @ vertices
    in_cell = np.all((samples >= 1) & (samples <= 2), axis=1)
    assert in_cell.mean() < 1e-3


def test_open_mesh_cut_by_the_box_fills_only_inside() -> None:
    """Half of a sphere inside the box: the cut-off interior touches the box's border and must
    still be filled (a flood fill from the border would leave it empty)."""
    mesh = sphere()
    bounds = (np.array([-0.4, -0.4, 0.034]), np.array([0.4, 0.4, 0.4]))
    occupied = voxelize(mesh.vertices, mesh.faces, (16, 16, 8), *bounds).numpy()
    inside = mesh.contains(cell_centers((16, 16, 8), *bounds).reshape(-1, 3))
    inside = inside.reshape(occupied.shape)
    assert inside.sum() > 100 and not np.any(inside & ~occupied)
    assert occupied[0].sum() > 0.6 * math.pi * 0.3**2 / 0.05**2  # the cut face is full


def test_torch_input_keeps_device_and_gives_bool() -> None:
    mesh = sphere()
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32, requires_grad=True)
    occupied = voxelize(vertices, torch.tensor(mesh.faces), 8, (-0.4,) * 3, (0.4,) * 3)
    assert occupied.dtype == torch.bool and occupied.device == vertices.device
    assert occupied.shape == (8, 8, 8)


def test_grid_centers_follow_the_convention() -> None:
    low, high = np.array([-1.0, 0.5, 2.0]), np.array([1.0, 2.0, 2.4])
    centers = grid_centers((8, 12, 16), torch.tensor(low), torch.tensor(high))
    assert centers.shape == (16, 12, 8, 3) and centers.dtype == torch.float64
    np.testing.assert_allclose(centers.numpy(), cell_centers((8, 12, 16), low, high), atol=1e-12)


def linear_field(points: np.ndarray | torch.Tensor):
    return points[..., 0] + 10 * points[..., 1] + 100 * points[..., 2]


def test_sample_grid_axis_order_with_a_linear_field() -> None:
    """f = x + 10 y + 100 z on a non-cubic (X, Y, Z) = (8, 12, 16) grid over a non-cubic box
    reads back exactly (trilinear is exact on linear fields) between the outer cell centres;
    swapped axes or a half-cell shift would be off by whole units."""
    low, high = torch.tensor([-1.0, 0.5, 2.0]), torch.tensor([1.0, 2.0, 2.4])
    resolution = (8, 12, 16)
    grid = linear_field(grid_centers(resolution, low, high))  # (16, 12, 8)
    cell = (high - low) / torch.tensor(resolution)
    generator = torch.Generator().manual_seed(0)
    points = low + cell / 2 + torch.rand(500, 3, generator=generator) * (high - low - cell)
    torch.testing.assert_close(sample_grid(grid, low, high, points), linear_field(points))
    # Two channels at once: (C, D, H, W) -> (N, C).
    stacked = torch.stack((grid, -2 * grid))
    values = sample_grid(stacked, low.numpy(), high.numpy(), points)
    assert values.shape == (500, 2)
    torch.testing.assert_close(values[:, 1], -2 * linear_field(points))


def test_sample_grid_clamps_to_the_border_outside() -> None:
    low, high = torch.zeros(3), torch.ones(3)
    grid = linear_field(grid_centers(4, low, high))
    outside = torch.tensor([[-3.0, 0.5, 0.5], [0.5, 0.5, 7.0], [0.1, 0.5, 0.5]])
    expected = linear_field(torch.tensor([[0.125, 0.5, 0.5], [0.5, 0.5, 0.875], [0.125, 0.5, 0.5]]))
    torch.testing.assert_close(sample_grid(grid, low, high, outside), expected)


def test_sample_grid_gradcheck() -> None:
    generator = torch.Generator().manual_seed(1)
    grid = torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    low = torch.tensor([-0.5, 0.0, 1.0], dtype=torch.float64)
    high = torch.tensor([0.5, 0.6, 1.9], dtype=torch.float64)
    points = low + torch.rand(6, 3, generator=generator, dtype=torch.float64) * (high - low)
    points.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, g: sample_grid(g, low, high, p), (points, grid))
    assert torch.autograd.gradcheck(lambda p: sample_grid(grid[0], low, high, p), (points,))


def test_voxelize_labels_two_parts() -> None:
    """A sphere whose x < 0 half is part 3 and x >= 0 half part 7; a face takes its first
    vertex's label, so only cells near the x = 0 seam may go either way."""
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    vertex_labels = np.where(mesh.vertices[:, 0] < 0, 3, 7)
    bounds = (np.full(3, -0.35), np.full(3, 0.35))
    labels = voxelize_labels(mesh.vertices, mesh.faces, 28, *bounds, torch.tensor(vertex_labels))
    assert labels.dtype == torch.int64 and labels.shape == (28, 28, 28)
    labels = labels.numpy()
    occupied = voxelize(mesh.vertices, mesh.faces, 28, *bounds).numpy()
    np.testing.assert_array_equal(labels > 0, occupied)
    x = cell_centers((28,) * 3, *bounds)[..., 0]
    margin = 2 * 0.7 / 28 + mesh.edges_unique_length.max()
    assert set(np.unique(labels[occupied & (x < -margin)])) == {4}
    assert set(np.unique(labels[occupied & (x > margin)])) == {8}


@pytest.fixture(scope="module")
def posed_in_camera(body_models_root):
    """A posed mannequin seen by an OpenCV camera 3 m away: vertices, faces, pelvis."""
    from body import BodyModel

    model = BodyModel(body_models_root)
    generator = torch.Generator().manual_seed(3)
    pose = 0.2 * torch.randn(1, 72, generator=generator)
    pose[:, :3] = torch.tensor([math.pi, 0.0, 0.0])
    with torch.no_grad():
        out = model(pose, torch.zeros(1, 10), torch.tensor([[0.1, 0.2, 3.0]]))
    return out.vertices[0].double(), model.faces, out.joints[0, 0].double()


def crop_camera(root: torch.Tensor, crop_size: int, body_pixels: float) -> torch.Tensor:
    """(3, 3) intrinsics of a square crop centred on the root, body about body_pixels tall."""
    focal = body_pixels * float(root[2]) / 1.8
    K = torch.tensor([[focal, 0.0, 0.0], [0.0, 0.9 * focal, 0.0], [0.0, 0.0, 1.0]])
    K = K.double()
    K[:2, 2] = (crop_size - 1) / 2 - K.diagonal()[:2] * root[:2] / root[2]
    return K


def grid_intrinsics(K: torch.Tensor, crop_size: int, size: int) -> torch.Tensor:
    """Intrinsics of the crop resized to size pixels (pixel centres at integers)."""
    scale = size / crop_size
    resized = K.clone()
    resized[:2] *= scale
    resized[:2, 2] = (K[:2, 2] + 0.5) * scale - 0.5
    return resized


def test_bodynet_grid_puts_the_root_in_the_middle_with_one_scale(posed_in_camera) -> None:
    root = posed_in_camera[2]
    crop_size, resolution = 256, 128
    K = crop_camera(root, crop_size, 200.0)
    step = 0.01 * torch.eye(3, dtype=torch.float64)
    points = torch.stack((root, root + step[0], root + step[2]))  # root, 1 cm along x, along z
    grid = bodynet_grid_vertices(points, K, float(root[2]), crop_size, resolution)
    pixel = K @ root / root[2]
    expected_root = torch.stack(((pixel[0] + 0.5) / 2, (pixel[1] + 0.5) / 2, torch.tensor(64.0)))
    torch.testing.assert_close(grid[0], expected_root.double())
    # A centimetre deeper moves the grid depth by f s / z_root per metre (f = mean of fx, fy,
    # which differ by 10%), the orthographic scale of a centimetre sideways at the root.
    step_sideways, step_deeper = grid[1, 0] - grid[0, 0], grid[2, 2] - grid[0, 2]
    scale = resolution / crop_size * 0.01 / root[2]
    torch.testing.assert_close(step_deeper, 0.5 * (K[0, 0] + K[1, 1]) * scale)
    torch.testing.assert_close(step_sideways, K[0, 0] * scale, rtol=1e-3, atol=0)


def test_bodynet_grid_to_camera_inverts_the_grid_map(posed_in_camera) -> None:
    vertices, _, root = posed_in_camera
    K = crop_camera(root, 256, 200.0)
    grid = bodynet_grid_vertices(vertices, K, float(root[2]), 256, 128)
    back = bodynet_grid_to_camera(grid, K, float(root[2]), 256, 128)
    torch.testing.assert_close(back, torch.as_tensor(vertices, dtype=back.dtype))


def test_bodynet_voxels_reproduce_the_rendered_silhouette(posed_in_camera) -> None:
    """Max over depth of the occupancy vs the silhouette of the same crop rendered at the grid's
    resolution (crop 128 px, grid 64: the scale is exercised too).

    The occupancy is conservative: a column is occupied when the mesh's projection touches the
    pixel's square, while the silhouette samples pixel centres; on a 64 px body the boundary
    band makes their plain IoU about 0.8-0.9. So: every silhouette pixel is covered, nothing
    lies beyond one pixel of the silhouette, and against the silhouette supersampled 16x per
    pixel and max-pooled (the pixels the projection touches, up to slivers thinner than 1/16
    pixel) the IoU is >= 0.97.
    """
    from geometry.render import render_silhouette

    vertices, faces, root = posed_in_camera
    crop_size, resolution = 128, 64
    K = crop_camera(root, crop_size, 100.0)
    occupancy = bodynet_voxelize(vertices, faces, K, float(root[2]), crop_size, resolution)
    assert occupancy.shape == (64, 64, 64)
    assert not occupancy[0].any() and not occupancy[-1].any()  # the body fits in depth
    projected = occupancy.any(dim=0).numpy()  # (H, W) = (v, u)

    def silhouette(factor: int) -> np.ndarray:
        K_render = grid_intrinsics(K, crop_size, resolution * factor).float()
        size = (resolution * factor,) * 2
        return render_silhouette(vertices[None].float(), faces, K_render[None], size)[0].numpy()

    plain = silhouette(1)
    assert plain.sum() > 300 and not np.any(plain & ~projected)
    assert not np.any(projected & ~ndimage.binary_dilation(plain, np.ones((3, 3), bool)))
    fine = silhouette(16).reshape(resolution, 16, resolution, 16).any(axis=(1, 3))
    assert not np.any(fine & ~projected)
    assert (fine & projected).sum() / (fine | projected).sum() >= 0.97
