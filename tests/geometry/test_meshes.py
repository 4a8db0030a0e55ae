"""Marching cubes back to metres, chamfer distance against a dense reference, mesh files."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import trimesh

from geometry.meshes import (
    NearestIndex,
    chamfer_distance,
    concatenate_meshes,
    grid_to_mesh,
    load_mesh,
    nearest_neighbors,
    save_mesh,
)

# Deliberately non-cubic everywhere: resolution (D, H, W) = (z, y, x) and box extents differ.
SHAPE = (22, 36, 28)
BOUNDS_MIN = np.array([-0.7, -0.9, 1.5])
BOUNDS_MAX = np.array([0.7, 0.9, 2.6])
CELL = (BOUNDS_MAX - BOUNDS_MIN) / np.array(SHAPE[::-1])  # (x, y, z) cell sides, metres


def cell_centers(shape=SHAPE, bounds_min=BOUNDS_MIN, bounds_max=BOUNDS_MAX) -> np.ndarray:
    """(D, H, W, 3) xyz centres of the cells, written out from the convention independently."""
    depth, height, width = shape
    cell = (bounds_max - bounds_min) / np.array([width, height, depth])
    k, j, i = np.meshgrid(np.arange(depth), np.arange(height), np.arange(width), indexing="ij")
    return bounds_min + (np.stack((i, j, k), axis=-1) + 0.5) * cell


def as_trimesh(vertices: torch.Tensor, faces: torch.Tensor) -> trimesh.Trimesh:
    return trimesh.Trimesh(vertices.numpy(), faces.numpy(), process=False)


def ellipsoid_field(center: np.ndarray, semi_axes: np.ndarray) -> np.ndarray:
    """(D, H, W) implicit function, negative inside, zero exactly on the ellipsoid."""
    return np.linalg.norm((cell_centers() - center) / semi_axes, axis=-1) - 1.0


@pytest.mark.parametrize("kind", ["sdf", "occupancy"])
def test_sphere_vertices_lie_on_the_sphere_within_a_cell(kind: str) -> None:
    center, radius = np.array([0.1, -0.15, 2.0]), 0.4
    distance = np.linalg.norm(cell_centers() - center, axis=-1) - radius
    grid, level = (distance, 0.0) if kind == "sdf" else ((distance < 0).astype(np.float32), 0.5)

    vertices, faces = grid_to_mesh(torch.as_tensor(grid), BOUNDS_MIN, BOUNDS_MAX, level)

    assert vertices.dtype == torch.float32 and faces.dtype == torch.int64
    radii = np.linalg.norm(vertices.numpy() - center, axis=1)
    tolerance = 0.1 * CELL.max() if kind == "sdf" else CELL.max()
    assert np.abs(radii - radius).max() <= tolerance
    mesh = as_trimesh(vertices, faces)
    assert mesh.is_watertight
    # Outward winding: positive volume, close to the sphere's.
    assert mesh.volume == pytest.approx(4.0 / 3.0 * math.pi * radius**3, rel=0.1)


@pytest.mark.parametrize("kind", ["sdf", "occupancy"])
def test_axis_order_with_an_off_centre_ellipsoid(kind: str) -> None:
    center, semi_axes = np.array([0.2, -0.3, 2.1]), np.array([0.4, 0.25, 0.15])
    field = ellipsoid_field(center, semi_axes)
    grid, level = (field, 0.0) if kind == "sdf" else ((field < 0).astype(np.float64), 0.5)

    vertices, _ = grid_to_mesh(grid, BOUNDS_MIN, BOUNDS_MAX, level)

    low, high = vertices.numpy().min(axis=0), vertices.numpy().max(axis=0)
    # Any swap of two axes moves a bound by far more than one cell along some axis.
    np.testing.assert_array_less(np.abs(low - (center - semi_axes)), CELL)
    np.testing.assert_array_less(np.abs(high - (center + semi_axes)), CELL)


def test_solids_touching_the_border_give_closed_surfaces() -> None:
    centers = cell_centers()
    # A block filling every cell with x < 0.3, and a sphere cut by the box's near z face.
    block = (centers[..., 0] < 0.3).astype(np.float32)
    sphere = np.linalg.norm(centers - np.array([0.0, 0.0, 1.55]), axis=-1) - 0.5

    for grid, level in ((block, 0.5), (sphere, 0.0), (np.ones(SHAPE), 0.5)):
        vertices, faces = grid_to_mesh(grid, BOUNDS_MIN, BOUNDS_MAX, level)
        mesh = as_trimesh(vertices, faces)
        assert mesh.is_watertight and mesh.volume > 0

    # The occupancy cap lies on the box boundary, half a cell beyond the border cells' centres.
    vertices, _ = grid_to_mesh(block, BOUNDS_MIN, BOUNDS_MAX)
    np.testing.assert_allclose(vertices.numpy().min(axis=0), BOUNDS_MIN, atol=1e-6)


def test_signed_distance_offset_surface_at_a_positive_level() -> None:
    center, radius, offset = np.array([0.0, 0.1, 2.0]), 0.3, 0.05
    distance = np.linalg.norm(cell_centers() - center, axis=-1) - radius
    vertices, faces = grid_to_mesh(distance, BOUNDS_MIN, BOUNDS_MAX, offset, signed_distance=True)
    radii = np.linalg.norm(vertices.numpy() - center, axis=1)
    np.testing.assert_allclose(radii, radius + offset, atol=0.1 * CELL.max())
    assert as_trimesh(vertices, faces).volume > 0


def test_empty_grid_gives_an_empty_mesh() -> None:
    vertices, faces = grid_to_mesh(np.zeros(SHAPE), BOUNDS_MIN, BOUNDS_MAX)
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)
    vertices, faces = grid_to_mesh(np.ones(SHAPE), BOUNDS_MIN, BOUNDS_MAX, level=0.0)  # SDF > 0
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)


def test_marching_cubes_of_a_voxelized_mannequin_is_within_a_voxel(body_models_root) -> None:
    volumes = pytest.importorskip("geometry.volumes")
    from body import BodyModel

    model = BodyModel(body_models_root)
    generator = torch.Generator().manual_seed(0)
    pose = 0.2 * torch.randn(1, 72, generator=generator)
    pose[:, :3] = torch.tensor([math.pi, 0.0, 0.0])
    with torch.no_grad():
        body = model(pose, transl=torch.tensor([[0.0, 0.2, 3.0]])).vertices[0]
    faces = model.faces
    bounds_min, bounds_max = body.min(dim=0).values - 0.05, body.max(dim=0).values + 0.05
    resolution = 64
    occupancy = volumes.voxelize(body, faces, resolution, bounds_min, bounds_max)

    vertices, _ = grid_to_mesh(occupancy, bounds_min, bounds_max)

    voxel = (bounds_max - bounds_min) / resolution
    voxel_diagonal = float(voxel.norm())
    surface = trimesh.Trimesh(body.numpy(), faces.numpy(), process=False)
    samples, _ = trimesh.sample.sample_surface(surface, 50_000, seed=0)
    samples_t = torch.as_tensor(samples, dtype=torch.float32)[None]
    distance = chamfer_distance(vertices[None], samples_t)
    assert float(distance) <= voxel_diagonal
    # Not only on average: almost every marching-cubes vertex is within a voxel diagonal.
    _, to_surface = nearest_neighbors(vertices[None], samples_t)
    assert torch.quantile(to_surface, 0.99) <= voxel_diagonal


def dense_chamfer(a, b, weights_a=None, weights_b=None, squared=False) -> torch.Tensor:
    """Reference: full distance matrix; zero-weight points masked out as neighbours."""
    distances = torch.cdist(a, b)  # (B, N, M)
    distances = distances.square() if squared else distances
    weights_a = torch.ones(a.shape[:2], dtype=a.dtype) if weights_a is None else weights_a
    weights_b = torch.ones(b.shape[:2], dtype=b.dtype) if weights_b is None else weights_b
    a_to_b = distances.masked_fill(~(weights_b > 0)[:, None, :], math.inf).min(dim=2).values
    b_to_a = distances.masked_fill(~(weights_a > 0)[:, :, None], math.inf).min(dim=1).values
    term_a = (weights_a * a_to_b).sum(1) / weights_a.sum(1)
    term_b = (weights_b * b_to_a).sum(1) / weights_b.sum(1)
    return term_a + term_b


def random_sets(seed: int = 0, batch: int = 3, n: int = 40, m: int = 55):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, n, 3, generator=generator, dtype=torch.float64)
    b = 0.5 + torch.randn(batch, m, 3, generator=generator, dtype=torch.float64)
    return a, b, generator


@pytest.mark.parametrize("squared", [False, True])
def test_chamfer_matches_the_dense_reference(squared: bool) -> None:
    a, b, _ = random_sets()
    expected = dense_chamfer(a, b, squared=squared)
    torch.testing.assert_close(chamfer_distance(a, b, squared=squared), expected)


@pytest.mark.parametrize("squared", [False, True])
def test_weighted_chamfer_matches_the_dense_reference(squared: bool) -> None:
    a, b, generator = random_sets(seed=1)
    weights_a = torch.rand(a.shape[:2], generator=generator, dtype=torch.float64)
    weights_b = torch.rand(b.shape[:2], generator=generator, dtype=torch.float64)
    weights_b[:, ::3] = 0.0  # padding: never anyone's nearest neighbour
    expected = dense_chamfer(a, b, weights_a, weights_b, squared=squared)
    actual = chamfer_distance(a, b, weights_a, weights_b, squared=squared)
    torch.testing.assert_close(actual, expected)
    unmasked = dense_chamfer(a, b, weights_a, (weights_b > 0).double() + weights_b, squared)
    assert not torch.allclose(actual, unmasked)


def test_chamfer_is_zero_for_identical_sets_and_symmetric() -> None:
    a, b, _ = random_sets(seed=2)
    torch.testing.assert_close(chamfer_distance(a, a.clone()), torch.zeros(3, dtype=a.dtype))
    torch.testing.assert_close(chamfer_distance(a, b), chamfer_distance(b, a))
    assert (chamfer_distance(a, b) > 0).all()


def test_chamfer_with_an_empty_side_is_zero() -> None:
    a, b, _ = random_sets(seed=3, batch=2)
    weights_b = torch.ones(b.shape[:2], dtype=b.dtype)
    weights_b[1] = 0.0
    distance = chamfer_distance(a, b, weights_b=weights_b)
    assert distance[0] > 0 and distance[1] == 0


@pytest.mark.parametrize("squared", [False, True])
def test_chamfer_gradients_reach_both_sets_and_match_the_reference(squared: bool) -> None:
    a, b, generator = random_sets(seed=4)
    weights_a = torch.rand(a.shape[:2], generator=generator, dtype=torch.float64)
    grads = []
    for function in (chamfer_distance, dense_chamfer):
        a_leaf, b_leaf = a.clone().requires_grad_(), b.clone().requires_grad_()
        function(a_leaf, b_leaf, weights_a, None, squared=squared).sum().backward()
        grads.append((a_leaf.grad, b_leaf.grad))
    (ours_a, ours_b), (reference_a, reference_b) = grads
    assert ours_a is not None and ours_b is not None
    assert ours_a.abs().sum() > 0 and ours_b.abs().sum() > 0
    torch.testing.assert_close(ours_a, reference_a)
    torch.testing.assert_close(ours_b, reference_b)


def test_nearest_neighbors_matches_brute_force() -> None:
    a, b, _ = random_sets(seed=5)
    indices, distances = nearest_neighbors(a, b)
    dense = torch.cdist(a, b)
    torch.testing.assert_close(indices, dense.argmin(dim=2))
    torch.testing.assert_close(distances, dense.min(dim=2).values)


def test_chamfer_on_a_body_and_a_dense_scan_needs_no_distance_matrix() -> None:
    # 6890 x 50k: a dense float32 matrix would take 1.4 GB; the tree path takes a fraction.
    generator = torch.Generator().manual_seed(6)
    vertices = torch.randn(1, 6890, 3, generator=generator).requires_grad_()
    scan = torch.randn(1, 50_000, 3, generator=generator)
    start = time.perf_counter()
    distance = chamfer_distance(vertices, scan)
    distance.sum().backward()
    elapsed = time.perf_counter() - start
    assert torch.isfinite(distance).all() and vertices.grad is not None
    assert elapsed < 10.0  # generous: about 0.1 s here; a dense matrix would not fit at all


def test_chamfer_rejects_mismatched_shapes() -> None:
    a, b, _ = random_sets()
    with pytest.raises(ValueError, match="batch sizes"):
        chamfer_distance(a, b[:2])
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        chamfer_distance(a[0], b[0])


def small_mesh(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """An icosphere with shuffled vertices and a duplicated one (a seam, as in textured body
    meshes), so a reader or writer that reorders or merges vertices would be caught."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    order = np.random.default_rng(seed).permutation(len(sphere.vertices))
    inverse = np.argsort(order)
    vertices = np.concatenate((sphere.vertices[order], sphere.vertices[order[:1]]))
    faces = inverse[sphere.faces]
    first_user = np.flatnonzero((faces == 0).any(axis=1))[0]
    faces[first_user][faces[first_user] == 0] = len(vertices) - 1
    return torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces)


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
@pytest.mark.parametrize("with_colors", [False, True])
def test_save_load_round_trip_keeps_vertex_order(tmp_path, suffix: str, with_colors: bool) -> None:
    vertices, faces = small_mesh()
    colors = torch.rand(len(vertices), 3) if with_colors else None
    path = tmp_path / "nested" / f"mesh{suffix}"

    save_mesh(path, vertices, faces, vertex_colors=colors)
    loaded_vertices, loaded_faces = load_mesh(path)

    torch.testing.assert_close(loaded_vertices, vertices, atol=1e-6, rtol=0)
    assert torch.equal(loaded_faces, faces)


def test_save_mesh_rejects_other_suffixes(tmp_path) -> None:
    vertices, faces = small_mesh()
    with pytest.raises(ValueError, match=r"\.stl"):
        save_mesh(tmp_path / "mesh.stl", vertices, faces)


def test_concatenate_meshes_offsets_faces() -> None:
    vertices, faces = small_mesh()
    merged_vertices, merged_faces, mesh_index = concatenate_meshes(
        [(vertices, faces), (vertices.numpy() + 1.0, faces.numpy())]
    )
    count = len(vertices)
    assert merged_vertices.shape == (2 * count, 3)
    assert torch.equal(merged_faces[len(faces) :], faces + count)
    assert torch.equal(mesh_index, torch.arange(2).repeat_interleave(count))


def test_a_nearest_index_built_once_answers_like_nearest_neighbors() -> None:
    generator = torch.Generator().manual_seed(3)
    targets = torch.rand(2, 300, 3, generator=generator, dtype=torch.float64)
    valid = torch.rand(2, 300, generator=generator) > 0.3
    valid[1] = False  # an element with no valid point
    index = NearestIndex(targets, valid)
    for _ in range(2):  # the same trees serve every query
        queries = torch.rand(2, 50, 3, generator=generator, dtype=torch.float64)
        got = index.query(queries)
        expected = nearest_neighbors(queries, targets, valid)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        squared = ((queries[0, :, None] - targets[0, None]) ** 2).sum(-1)
        brute = squared.masked_fill(~valid[0][None], float("inf")).argmin(dim=1)
        assert torch.equal(got[0][0], brute) and (got[0][1] == -1).all()
    with pytest.raises(ValueError, match="query sets"):
        index.indices(torch.zeros(3, 5, 3))
