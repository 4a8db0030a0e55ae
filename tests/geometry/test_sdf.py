"""Signed distance grids: the exact path against analytic shapes and trimesh, the fast path
within its documented bound of the exact one, signs, and the per-mesh box."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from geometry.sdf import FAST_SDF_ERROR_BOUND, mesh_box, signed_distance_grid


def cell_centers(resolution: int, bounds_min, bounds_max) -> np.ndarray:
    """(R, R, R, 3) cell centres written out from the convention, independently of the code."""
    cell = (np.asarray(bounds_max) - np.asarray(bounds_min)) / resolution
    k, j, i = np.meshgrid(*(np.arange(resolution),) * 3, indexing="ij")
    return np.asarray(bounds_min) + (np.stack((i, j, k), axis=-1) + 0.5) * cell


@pytest.fixture(scope="module")
def mannequin(body_models_root) -> trimesh.Trimesh:
    from body import BodyModel

    model = BodyModel(body_models_root)
    with torch.no_grad():
        out = model(torch.zeros(1, 72), torch.zeros(1, 10), torch.zeros(1, 3))
    return trimesh.Trimesh(out.vertices[0].double().numpy(), model.faces.numpy(), process=False)


SPHERE_CENTER, SPHERE_RADIUS = np.array([0.013, -0.021, 0.034]), 0.3


def sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=SPHERE_RADIUS)
    mesh.apply_translation(SPHERE_CENTER)
    return mesh


def test_exact_sphere_matches_the_analytic_distance() -> None:
    """The icosphere is inscribed in the sphere and contains the sphere shrunk by the smallest
    face-plane distance, so the two distances differ by at most that tessellation gap."""
    mesh = sphere()
    triangles = mesh.triangles - SPHERE_CENTER
    plane_distance = np.abs(np.einsum("fc,fc->f", mesh.face_normals, triangles[:, 0]))
    tessellation = SPHERE_RADIUS - plane_distance.min()
    low, high = SPHERE_CENTER - 0.45, SPHERE_CENTER + 0.45
    grid = signed_distance_grid(mesh.vertices, mesh.faces, 20, low, high, exact=True)
    assert grid.dtype == torch.float32 and grid.shape == (20, 20, 20)
    analytic = np.linalg.norm(cell_centers(20, low, high) - SPHERE_CENTER, axis=-1) - 0.3
    error = np.abs(grid.numpy() - analytic)
    assert error.max() <= tessellation + 1e-6
    assert error.max() > 0.2 * tessellation  # the gap is real, the comparison is not vacuous


def test_exact_rotated_box_matches_the_analytic_distance() -> None:
    half = np.array([0.25, 0.15, 0.1])
    transform = trimesh.transformations.rotation_matrix(0.7, [1.0, 2.0, 3.0])
    transform[:3, 3] = [0.05, -0.02, 0.03]
    mesh = trimesh.creation.box(extents=2 * half, transform=transform)
    low, high = np.full(3, -0.4), np.full(3, 0.4)
    grid = signed_distance_grid(mesh.vertices, mesh.faces, 18, low, high, exact=True)
    local = (cell_centers(18, low, high) - transform[:3, 3]) @ transform[:3, :3]  # box frame
    excess = np.abs(local) - half
    outside = np.linalg.norm(np.maximum(excess, 0.0), axis=-1)
    inside = np.minimum(excess.max(axis=-1), 0.0)
    np.testing.assert_allclose(grid.numpy(), outside + inside, atol=1e-6)


def test_exact_mannequin_matches_trimesh(mannequin) -> None:
    """trimesh's signed distance is positive inside: compared with a minus sign."""
    low, high = mesh_box(mannequin.vertices, 0.1)
    grid = signed_distance_grid(mannequin.vertices, mannequin.faces, 12, low, high, exact=True)
    centers = cell_centers(12, low.numpy(), high.numpy()).reshape(-1, 3)
    reference = -trimesh.proximity.signed_distance(mannequin, centers).reshape(grid.shape)
    assert (reference < 0).sum() > 5  # some centres fall inside the body
    np.testing.assert_allclose(grid.numpy(), reference, atol=1e-5)  # trimesh: ~1e-6 m noise


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("shape", ["mannequin", "sphere"])
def test_fast_within_its_bound_of_exact(shape: str, resolution: int, request) -> None:
    mesh = request.getfixturevalue("mannequin") if shape == "mannequin" else sphere()
    low, high = mesh_box(mesh.vertices, 0.1)
    exact = signed_distance_grid(mesh.vertices, mesh.faces, resolution, low, high, exact=True)
    fast = signed_distance_grid(mesh.vertices, mesh.faces, resolution, low, high)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    diagonal = float(torch.linalg.norm((high - low) / resolution))
    error = (fast.double() - exact.double()).abs() / diagonal
    assert error.max() <= FAST_SDF_ERROR_BOUND
    assert error.mean() <= 0.3
    # Signs agree wherever the exact distance exceeds the bound, on both sides.
    decided = exact.abs() > FAST_SDF_ERROR_BOUND * diagonal
    assert (exact[decided] < 0).sum() > 10 and (exact[decided] > 0).sum() > 10
    torch.testing.assert_close(torch.sign(fast[decided]), torch.sign(exact[decided]))


def test_signs_at_known_points(mannequin) -> None:
    low, high = mesh_box(mannequin.vertices, 0.1)
    for exact in (False, True):
        grid = signed_distance_grid(mannequin.vertices, mannequin.faces, 32, low, high, exact)
        assert grid[0, 0, 0] > 0.05 and grid[-1, -1, -1] > 0.05  # the box's corners
        # The cell holding the middle of the torso (below the neck, above the pelvis).
        torso = mannequin.vertices[:, 1].min() + 0.65 * np.ptp(mannequin.vertices[:, 1])
        point = np.array([0.0, torso, mannequin.vertices[:, 2].mean()])
        index = np.floor((point - low.numpy()) / ((high - low).numpy() / 32)).astype(int)
        assert grid[index[2], index[1], index[0]] < -0.03


def test_mesh_box_pads_each_side_relatively() -> None:
    vertices = torch.tensor([[0.0, -1.0, 2.0], [2.0, 1.0, 2.5], [1.0, 0.0, 3.0]])
    low, high = mesh_box(vertices, padding=0.25)
    torch.testing.assert_close(low, torch.tensor([-0.5, -1.5, 1.75]))
    torch.testing.assert_close(high, torch.tensor([2.5, 1.5, 3.25]))
    assert low.dtype == torch.float32
    low_np, high_np = mesh_box(vertices.numpy().astype(np.float64))
    assert low_np.dtype == torch.float64
    torch.testing.assert_close(high_np.float(), torch.tensor([2.2, 1.2, 3.1]))
