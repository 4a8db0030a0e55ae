"""The rasterizer against trimesh ray casting, its tie rule, culling, near plane and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from geometry.cameras import project_points
from geometry.rasterizer import Fragments, _candidate_faces, _chunk_keys, interpolate, rasterize

MIN_FACE_AGREEMENT = 0.995  # over pixels that either side calls foreground
MAX_DEPTH_ERROR_M = 1e-4


def intrinsics(focal: float, image_size: tuple[int, int], batch_size: int = 1) -> torch.Tensor:
    """(B, 3, 3) float32 K with the principal point at the image centre."""
    height, width = image_size
    K = torch.tensor([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0, 0, 1]])
    return K.expand(batch_size, 3, 3).clone()


def ray_cast(
    vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Independent oracle: first hit of the ray through each pixel centre (trimesh + embree).

    Returns (H, W) face index (-1 for a miss) and (H, W) depth z of the hit in float64 (the
    ray-plane intersection of the hit face; +inf for a miss).
    """
    height, width = image_size
    mesh = trimesh.Trimesh(vertices.astype(np.float64), faces, process=False)
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pixels = np.stack((columns.ravel(), rows.ravel(), np.ones(height * width)), axis=1)
    directions = pixels @ np.linalg.inv(K.astype(np.float64)).T  # (H * W, 3), z = 1
    face_index = mesh.ray.intersects_first(np.zeros_like(directions), directions)
    depth = np.full(height * width, np.inf)
    hit = face_index >= 0
    triangles = mesh.triangles[face_index[hit]]  # (M, 3, 3)
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    depth[hit] = (normals * triangles[:, 0]).sum(1) / (normals * directions[hit]).sum(1)
    return face_index.reshape(height, width), depth.reshape(height, width)


def oracle_agreement(
    vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, image_size: tuple[int, int]
) -> dict[str, float]:
    """Rasterize one mesh and compare with ``ray_cast``: agreement statistics."""
    fragments = rasterize(vertices[None], faces, K[None], image_size)
    face_index, depth = fragments.face_index[0].numpy(), fragments.depth[0].numpy()
    oracle_face, oracle_depth = ray_cast(vertices.numpy(), faces.numpy(), K.numpy(), image_size)
    union = (face_index >= 0) | (oracle_face >= 0)
    agree = union & (face_index == oracle_face)
    return {
        "foreground_pixels": int(union.sum()),
        "face_agreement": float(agree.sum() / union.sum()),
        "max_depth_error_m": float(np.abs(depth[agree] - oracle_depth[agree]).max()),
        "background_mismatches": int(((face_index < 0) != (oracle_face < 0)).sum()),
        "background_exact": bool(np.array_equal(face_index < 0, oracle_face < 0)),
    }


@pytest.fixture(scope="module")
def body_model(body_models_root):
    from body import BodyModel

    return BodyModel(body_models_root)


def posed_mannequin(body_model, batch_size: int, seed: int, depth: float = 3.0) -> torch.Tensor:
    """(B, 6890, 3) randomly posed and shaped mannequins facing an OpenCV camera."""
    generator = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(batch_size, 72, generator=generator)
    pose[:, :3] = torch.tensor([math.pi, 0.0, 0.0]) + 0.2 * pose[:, :3]
    betas = torch.randn(batch_size, 10, generator=generator)
    transl = torch.tensor([0.0, 0.1, depth]).expand(batch_size, 3)
    with torch.no_grad():
        return body_model(pose, betas, transl).vertices


def random_closed_scene(seed: int) -> trimesh.Trimesh:
    """A few randomly rotated, scaled and placed closed shapes, 2 to 5 m in front of the camera."""
    rng = np.random.default_rng(seed)
    shapes = [
        trimesh.creation.icosphere(subdivisions=3, radius=0.5),
        trimesh.creation.box(extents=(0.8, 0.5, 0.6)),
        trimesh.creation.capsule(height=0.8, radius=0.25, count=(12, 12)),
        trimesh.creation.icosphere(subdivisions=1, radius=0.4),
    ]
    for shape in shapes:
        transform = np.eye(4)
        transform[:3, :3] = Rotation.random(random_state=rng).as_matrix() * rng.uniform(0.6, 1.4)
        transform[:3, 3] = (rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7), rng.uniform(2.5, 4))
        shape.apply_transform(transform)
    return trimesh.util.concatenate(shapes)


def mesh_tensors(mesh: trimesh.Trimesh) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_ray_casting_on_posed_mannequin(body_model, seed: int) -> None:
    image_size = (128, 112)
    vertices = posed_mannequin(body_model, 1, seed)[0]
    stats = oracle_agreement(
        vertices, body_model.faces, intrinsics(240.0, image_size)[0], image_size
    )
    assert stats["foreground_pixels"] > 2500  # the body fills the image height
    assert stats["face_agreement"] >= MIN_FACE_AGREEMENT, stats
    assert stats["max_depth_error_m"] <= MAX_DEPTH_ERROR_M, stats
    assert stats["background_exact"], stats


@pytest.mark.parametrize("seed", range(4))
def test_matches_ray_casting_on_random_closed_meshes(seed: int) -> None:
    image_size = (96, 96)
    vertices, faces = mesh_tensors(random_closed_scene(seed))
    stats = oracle_agreement(vertices, faces, intrinsics(150.0, image_size)[0], image_size)
    assert stats["foreground_pixels"] > 1000
    assert stats["face_agreement"] >= MIN_FACE_AGREEMENT, stats
    assert stats["max_depth_error_m"] <= MAX_DEPTH_ERROR_M, stats
    assert stats["background_exact"], stats


def pixel_coverage(vertices: torch.Tensor, faces: torch.Tensor, K, image_size) -> torch.Tensor:
    """(H, W) number of faces whose inside test accepts each pixel centre (no depth test)."""
    candidates = _candidate_faces(vertices[None], faces, K[None], image_size, 0.01, False)
    pixel, key = _chunk_keys(candidates, 0, candidates.num_pairs.numel(), image_size[1])
    inside = pixel[key != torch.iinfo(torch.int64).max]
    return torch.bincount(inside, minlength=image_size[0] * image_size[1]).view(image_size)


def planar_grid(cells: int, spacing: int, depth: float, seed: int) -> tuple[torch.Tensor, ...]:
    """A flat grid at ``depth`` with random diagonals; vertices project to integer pixels.

    With K = diag(depth, depth, 1) the vertex (u, v, depth) projects exactly to (u, v) (depth
    is a power of two), so many
    pixel centres lie exactly on shared edges and vertices: the tie rule decides them all.
    """
    generator = torch.Generator().manual_seed(seed)
    coordinates = torch.arange(cells + 1, dtype=torch.float32) * spacing
    rows, columns = torch.meshgrid(coordinates, coordinates, indexing="ij")
    vertices = torch.stack((columns, rows, torch.full_like(rows, depth)), dim=-1).view(-1, 3)
    index = torch.arange((cells + 1) ** 2).view(cells + 1, cells + 1)
    a, b = index[:-1, :-1].flatten(), index[:-1, 1:].flatten()
    c, d = index[1:, :-1].flatten(), index[1:, 1:].flatten()
    flip = torch.rand(a.shape, generator=generator) < 0.5
    first = torch.where(flip[:, None], torch.stack((a, c, b), 1), torch.stack((a, c, d), 1))
    second = torch.where(flip[:, None], torch.stack((b, c, d), 1), torch.stack((a, d, b), 1))
    faces = torch.cat((first, second))
    faces = faces[torch.randperm(faces.shape[0], generator=generator)]
    K = torch.tensor([[depth, 0.0, 0.0], [0.0, depth, 0.0], [0.0, 0.0, 1.0]])
    return vertices, faces, K


@pytest.mark.parametrize("seed", [0, 1])
def test_tie_rule_covers_every_pixel_exactly_once(seed: int) -> None:
    vertices, faces, K = planar_grid(cells=8, spacing=3, depth=2.0, seed=seed)
    image_size = (30, 30)
    coverage = pixel_coverage(vertices, faces, K, image_size)
    # The grid spans pixels 0..24; the tie rule gives its right and bottom borders away.
    assert torch.equal(coverage[:24, :24], torch.ones(24, 24, dtype=torch.int64))
    assert coverage[24:].sum() == 0 and coverage[:, 24:].sum() == 0
    # Reversing the winding (the other side of the same surface) must not open cracks either.
    coverage_back = pixel_coverage(vertices, faces.flip(1), K, image_size)
    assert torch.equal(coverage_back, coverage)
    fragments = rasterize(vertices[None], faces, K[None], image_size)
    assert torch.equal(fragments.face_index[0, :24, :24] >= 0, torch.ones(24, 24, dtype=bool))


def test_fan_around_a_pixel_centre_covers_it_once() -> None:
    """Twelve faces meet at a vertex that projects exactly onto pixel (10, 10)."""
    angles = torch.arange(12) * (2 * math.pi / 12)
    rim = torch.stack((10 + 6 * angles.cos(), 10 + 6 * angles.sin(), torch.full((12,), 2.0)), 1)
    vertices = torch.cat((torch.tensor([[10.0, 10.0, 2.0]]), rim))
    spokes = torch.arange(12)
    faces = torch.stack((torch.zeros_like(spokes), 1 + (spokes + 1) % 12, 1 + spokes), dim=1)
    K = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    coverage = pixel_coverage(vertices, faces, K, (21, 21))
    assert coverage[10, 10] == 1
    assert coverage.max() == 1


def test_batch_elements_do_not_leak(body_model) -> None:
    image_size = (64, 48)
    vertices = posed_mannequin(body_model, 3, seed=5)
    vertices[1] += torch.tensor([0.3, 0.0, 0.5])  # different placement per element
    K = intrinsics(40.0, image_size, batch_size=3)
    K[2, 0, 0] = 55.0
    batched = rasterize(vertices, body_model.faces, K, image_size)
    for element in range(3):
        one = slice(element, element + 1)
        alone = rasterize(vertices[one], body_model.faces, K[one], image_size)
        assert torch.equal(batched.face_index[element], alone.face_index[0])
        assert torch.equal(batched.bary[element], alone.bary[0])
        assert torch.equal(batched.depth[element], alone.depth[0])


def test_small_chunks_give_the_same_fragments(body_model) -> None:
    image_size = (64, 64)
    vertices = posed_mannequin(body_model, 2, seed=6)
    K = intrinsics(40.0, image_size, batch_size=2)
    whole = rasterize(vertices, body_model.faces, K, image_size)
    chunked = rasterize(vertices, body_model.faces, K, image_size, pairs_per_chunk=500)
    for name in ("face_index", "bary", "depth"):
        assert torch.equal(getattr(whole, name), getattr(chunked, name)), name


def test_backface_culling_keeps_the_image_of_closed_meshes(body_model) -> None:
    image_size = (96, 96)
    scene_vertices, scene_faces = mesh_tensors(random_closed_scene(7))
    mannequins = posed_mannequin(body_model, 2, seed=7)
    for vertices, faces in ((scene_vertices[None], scene_faces), (mannequins, body_model.faces)):
        K = intrinsics(150.0, image_size, vertices.shape[0])
        plain = rasterize(vertices, faces, K, image_size)
        culled = rasterize(vertices, faces, K, image_size, cull_backfaces=True)
        assert (plain.face_index >= 0).sum() > 500
        assert torch.equal(plain.face_index, culled.face_index)
        assert torch.equal(plain.depth, culled.depth)


def test_culling_keeps_faces_whose_normal_points_at_the_camera() -> None:
    # Vertices at z = 2 counter-clockwise on screen: normal (v1 - v0) x (v2 - v0) = -z.
    vertices = torch.tensor([[[-1.0, -1.0, 2.0], [-1.0, 1.0, 2.0], [1.0, 0.0, 2.0]]])
    normal = torch.linalg.cross(vertices[0, 1] - vertices[0, 0], vertices[0, 2] - vertices[0, 0])
    assert normal[2] < 0  # towards the camera at the origin
    front, back = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2, 1]])
    K, image_size = intrinsics(10.0, (16, 16)), (16, 16)
    for faces in (front, back):
        assert (rasterize(vertices, faces, K, image_size).face_index >= 0).sum() > 20
    assert (rasterize(vertices, front, K, image_size, cull_backfaces=True).face_index >= 0).any()
    assert (rasterize(vertices, back, K, image_size, cull_backfaces=True).face_index < 0).all()


def test_faces_behind_the_near_plane_are_dropped() -> None:
    image_size = (32, 32)
    K = intrinsics(20.0, image_size)
    in_front = [[-1.0, -1.0, 2.0], [-1.0, 1.0, 2.0], [1.0, 0.0, 2.0]]
    straddling = [[-1.0, -1.0, 0.005], [-1.0, 1.0, 2.0], [1.0, 0.0, 2.0]]
    behind = [[-1.0, -1.0, -2.0], [-1.0, 1.0, -2.0], [1.0, 0.0, -2.0]]
    faces = torch.tensor([[0, 1, 2]])
    visible = lambda corners, near=0.01: (
        rasterize(torch.tensor([corners]), faces, K, image_size, near=near).face_index >= 0
    ).sum()
    assert visible(in_front) > 50
    assert visible(straddling) == 0
    assert visible(behind) == 0
    assert visible(in_front, near=2.5) == 0


def two_triangles(dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two triangles sharing an edge at different depths, for an 8x10 image; every pixel centre
    lies at least 0.04 px from every edge's line, so small perturbations of the vertices keep
    every pixel's face."""
    vertices = torch.tensor(
        [[[-0.93, -0.71, 2.1], [-0.87, 0.83, 2.6], [0.91, -0.77, 2.3], [0.79, 0.69, 3.1]]],
        dtype=dtype,
    )
    faces = torch.tensor([[0, 1, 2], [2, 1, 3]])
    K = torch.tensor([[[9.0, 0.0, 4.7], [0.0, 9.0, 3.6], [0.0, 0.0, 1.0]]], dtype=dtype)
    return vertices, faces, K


def test_interpolating_z_gives_depth_and_constants_stay_constant(body_model) -> None:
    image_size = (64, 64)
    vertices = posed_mannequin(body_model, 2, seed=8)
    faces = body_model.faces
    fragments = rasterize(vertices, faces, intrinsics(40.0, image_size, 2), image_size)
    foreground = fragments.face_index >= 0
    z = interpolate(fragments, faces, vertices[..., 2:])[..., 0]
    torch.testing.assert_close(z[foreground], fragments.depth[foreground], rtol=1e-6, atol=1e-6)
    assert (z[~foreground] == 0).all() and torch.isinf(fragments.depth[~foreground]).all()
    constant = torch.tensor([0.25, -3.0]).expand(2, vertices.shape[1], 2)
    values = interpolate(fragments, faces, constant)
    torch.testing.assert_close(values[foreground], constant[0, :1].expand(int(foreground.sum()), 2))
    assert (values[~foreground] == 0).all()
    assert (fragments.bary[~foreground] == 0).all()
    torch.testing.assert_close(
        fragments.bary[foreground].sum(-1), torch.ones(int(foreground.sum()))
    )


def test_interpolated_positions_lie_on_the_pixel_rays(body_model) -> None:
    """Perspective-correct weights put the interpolated 3D point on the pixel's own ray."""
    image_size = (64, 64)
    vertices = posed_mannequin(body_model, 1, seed=11).double()
    K = intrinsics(100.0, image_size).double()
    fragments = rasterize(vertices, body_model.faces, K, image_size)
    foreground = fragments.face_index[0] >= 0
    points = interpolate(fragments, body_model.faces, vertices)[0][foreground]  # (P, 3)
    rows, columns = foreground.nonzero(as_tuple=True)
    reprojected = project_points(points, K[0])
    torch.testing.assert_close(reprojected, torch.stack((columns, rows), 1).double())


def test_interpolate_gradcheck_values_and_positions() -> None:
    vertices, faces, K = two_triangles()
    image_size = (8, 10)
    values = torch.randn(1, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    render = lambda v, x: interpolate(rasterize(v, faces, K, image_size), faces, x)
    face_index = rasterize(vertices, faces, K, image_size).face_index
    assert (face_index == 0).sum() >= 10 and (face_index == 1).sum() >= 10
    assert torch.autograd.gradcheck(
        render, (vertices.requires_grad_(), values.requires_grad_()), eps=1e-6, atol=1e-5
    )
    depth = lambda v: rasterize(v, faces, K, image_size).depth.nan_to_num(posinf=0.0)
    assert torch.autograd.gradcheck(depth, (vertices,), eps=1e-6, atol=1e-5)


def test_depth_ordering_gradients_reach_the_hidden_person(body_model) -> None:
    """CRMH-style: each person is rendered alone; where the hidden person (B) is wrongly
    rendered in front of A, a loss on the two depth maps moves B's covering vertices."""
    image_size = (64, 64)
    people = posed_mannequin(body_model, 2, seed=9)
    people[1, :, 2] += 0.4  # B stands behind A, mostly hidden by it
    people.requires_grad_()
    faces = body_model.faces
    K = intrinsics(100.0, image_size)
    rendered: list[Fragments] = [rasterize(people[k : k + 1], faces, K, image_size) for k in (0, 1)]
    depth_a = interpolate(rendered[0], faces, people[0:1, :, 2:])[0, ..., 0]
    depth_b = interpolate(rendered[1], faces, people[1:2, :, 2:])[0, ..., 0]
    both = (rendered[0].face_index[0] >= 0) & (rendered[1].face_index[0] >= 0)
    assert both.sum() > 100  # they overlap
    # Ground truth says B is in front there: penalise log(1 + exp(z_B - z_A)).
    loss = torch.nn.functional.softplus(depth_b[both] - depth_a[both]).sum()
    loss.backward()
    assert (depth_a[both] < depth_b[both]).float().mean() > 0.9  # B is hidden there
    gradient = people.grad
    covering_b = faces[rendered[1].face_index[0][both]].unique()
    assert gradient[1, covering_b].norm(dim=-1).min() > 0  # every vertex of a covering face
    others = torch.ones(gradient.shape[1], dtype=torch.bool)
    others[covering_b] = False
    assert (gradient[1, others] == 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(body_model) -> None:
    image_size = (128, 128)
    vertices = posed_mannequin(body_model, 4, seed=10)
    K = intrinsics(70.0, image_size, 4)
    on_cpu = rasterize(vertices, body_model.faces, K, image_size)
    on_gpu = rasterize(vertices.cuda(), body_model.faces.cuda(), K.cuda(), image_size)
    same = on_gpu.face_index.cpu() == on_cpu.face_index
    assert same.float().mean() >= 0.999
    torch.testing.assert_close(on_gpu.bary.cpu()[same], on_cpu.bary[same], atol=1e-4, rtol=0)
    torch.testing.assert_close(on_gpu.depth.cpu()[same], on_cpu.depth[same], atol=1e-5, rtol=0)
