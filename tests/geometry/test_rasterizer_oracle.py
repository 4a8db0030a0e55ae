"""The rasterizer against an independent oracle (trimesh/embree ray casting) and its gradients."""

import math

import numpy as np
import pytest
import torch
import trimesh

from geometry.rasterizer import interpolate, rasterize
from geometry.render import render_depth

SIZE = 128
K_IMAGE = torch.tensor(
    [[150.0, 0.0, 63.5], [0.0, 150.0, 63.5], [0.0, 0.0, 1.0]], dtype=torch.float64
)


def oracle(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, size: tuple[int, int]):
    """Face id and depth of the first hit of a ray through each pixel centre (embree)."""
    height, width = size
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pixels = np.stack([columns.ravel(), rows.ravel(), np.ones(height * width)], axis=1)
    directions = pixels @ np.linalg.inv(K).T
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    locations, ray_index, face_index = mesh.ray.intersects_location(
        np.zeros_like(directions), directions, multiple_hits=False
    )
    ids = np.full(height * width, -1)
    depth = np.full(height * width, np.inf)
    ids[ray_index] = face_index
    depth[ray_index] = locations[:, 2]
    return ids.reshape(height, width), depth.reshape(height, width)


def compare(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor):
    """(face-id agreement over the foreground union, max depth error where ids agree, fg pixels)."""
    fragments = rasterize(vertices[None], faces, K[None], (SIZE, SIZE))
    ours = fragments.face_index[0].numpy()
    ids, depth = oracle(vertices.double().numpy(), faces.numpy(), K.double().numpy(), (SIZE, SIZE))
    union = (ours >= 0) | (ids >= 0)
    same = (ours == ids) & union
    depth_error = np.abs(fragments.depth[0].double().numpy()[same] - depth[same])
    assert np.array_equal(ours[~union], ids[~union])  # background exact
    return same.sum() / union.sum(), depth_error.max(), union.sum()


def posed_mannequin(model, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    pose = 0.35 * torch.randn(1, 72, generator=generator)
    pose[0, :3] = torch.tensor([math.pi, 0.0, 0.0]) + 0.3 * torch.randn(3, generator=generator)
    transl = torch.tensor([[0.0, 0.2, 2.4]])
    with torch.no_grad():
        return model(pose, transl=transl).vertices[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mannequin_agrees_with_ray_casting(neutral_model, seed):
    vertices = posed_mannequin(neutral_model, seed)
    agreement, depth_error, foreground = compare(vertices, neutral_model.faces, K_IMAGE.float())
    assert foreground > 1500
    assert agreement >= 0.995, agreement
    assert depth_error < 1e-4, depth_error


def random_closed_meshes(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    meshes = []
    for index in range(4):
        mesh = trimesh.creation.icosphere(subdivisions=2) if index % 2 else trimesh.creation.box()
        mesh.apply_scale(rng.uniform(0.2, 0.6, size=3))
        mesh.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
        mesh.apply_translation(
            [rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(2.5, 4)]
        )
        meshes.append(mesh)
    combined = trimesh.util.concatenate(meshes)
    return torch.tensor(combined.vertices, dtype=torch.float32), torch.tensor(combined.faces)


@pytest.mark.parametrize("seed", [3, 4])
def test_random_closed_meshes_agree_with_ray_casting(seed):
    vertices, faces = random_closed_meshes(seed)
    agreement, depth_error, foreground = compare(vertices, faces, K_IMAGE.float())
    assert foreground > 500
    assert agreement >= 0.995, agreement
    assert depth_error < 1e-4, depth_error


def test_batch_elements_do_not_leak(neutral_model):
    first, second = posed_mannequin(neutral_model, 5), posed_mannequin(neutral_model, 6)
    K = K_IMAGE.float()[None].expand(2, 3, 3)
    batched = rasterize(torch.stack([first, second]), neutral_model.faces, K, (SIZE, SIZE))
    for index, vertices in enumerate((first, second)):
        alone = rasterize(vertices[None], neutral_model.faces, K[:1], (SIZE, SIZE))
        assert torch.equal(batched.face_index[index], alone.face_index[0])
        assert torch.equal(batched.depth[index], alone.depth[0])


def test_culling_changes_nothing_on_a_closed_mesh(neutral_model):
    vertices = posed_mannequin(neutral_model, 7)[None]
    K = K_IMAGE.float()[None]
    plain = rasterize(vertices, neutral_model.faces, K, (SIZE, SIZE))
    culled = rasterize(vertices, neutral_model.faces, K, (SIZE, SIZE), cull_backfaces=True)
    assert torch.equal(plain.face_index, culled.face_index)
    # Inside out, culling keeps the far side of the body: same silhouette, larger depth.
    flipped = rasterize(vertices, neutral_model.faces.flip(1), K, (SIZE, SIZE), cull_backfaces=True)
    covered = plain.face_index >= 0
    assert torch.equal(flipped.face_index >= 0, covered)
    assert (flipped.depth[covered] >= plain.depth[covered]).all()
    assert (flipped.depth[covered] > plain.depth[covered] + 0.05).float().mean() > 0.5


def test_faces_behind_the_near_plane_are_dropped():
    vertices = torch.tensor([[[-1.0, -1.0, 0.005], [1.0, -1.0, 2.0], [0.0, 1.0, 2.0]]])
    faces = torch.tensor([[0, 1, 2]])
    K = K_IMAGE.float()[None]
    assert (rasterize(vertices, faces, K, (SIZE, SIZE)).face_index < 0).all()
    assert (rasterize(vertices, faces, K, (SIZE, SIZE), near=0.001).face_index >= 0).any()


def test_interpolation_reproduces_depth_and_constants(neutral_model):
    vertices = posed_mannequin(neutral_model, 8)[None]
    fragments = rasterize(vertices, neutral_model.faces, K_IMAGE.float()[None], (SIZE, SIZE))
    covered = fragments.face_index >= 0
    z = interpolate(fragments, neutral_model.faces, vertices[..., 2:])[..., 0]
    torch.testing.assert_close(z[covered], fragments.depth[covered], rtol=1e-5, atol=1e-6)
    ones = interpolate(fragments, neutral_model.faces, torch.ones(1, 6890, 2))
    torch.testing.assert_close(ones[covered], torch.ones(int(covered.sum()), 2))
    assert (ones[~covered] == 0).all()
    torch.testing.assert_close(fragments.bary[covered].sum(-1), torch.ones(int(covered.sum())))


def test_gradcheck_values_and_positions():
    vertices = torch.tensor(
        [[[-0.5, -0.4, 2.0], [0.6, -0.3, 2.5], [0.0, 0.6, 3.0]]],
        dtype=torch.float64,
        requires_grad=True,
    )
    faces = torch.tensor([[0, 1, 2]])
    K = torch.tensor([[[14.0, 0.0, 3.5], [0.0, 14.0, 3.5], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    values = torch.randn(1, 3, 2, dtype=torch.float64, requires_grad=True)

    def render(positions, vertex_values):
        fragments = rasterize(positions, faces, K, (8, 8))
        return interpolate(fragments, faces, vertex_values)

    assert (rasterize(vertices, faces, K, (8, 8)).face_index >= 0).sum() > 8
    assert torch.autograd.gradcheck(render, (vertices, values), eps=1e-6, atol=1e-5)


def test_depth_order_gradients_reach_the_hidden_person():
    front = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    vertices_front = torch.tensor(front.vertices + np.array([0.0, 0.0, 3.0]), dtype=torch.float32)
    vertices_back = torch.tensor(front.vertices + np.array([0.3, 0.0, 3.5]), dtype=torch.float32)
    faces = torch.tensor(front.faces)
    back = vertices_back[None].clone().requires_grad_(True)
    K = K_IMAGE.float()[None]
    depth_front = render_depth(vertices_front[None], faces, K, (SIZE, SIZE))
    depth_back = render_depth(back, faces, K, (SIZE, SIZE))
    overlap = torch.isfinite(depth_front) & torch.isfinite(depth_back)
    assert overlap.sum() > 100
    # CRMH-style: where the back person should be in front, penalise its larger depth.
    loss = torch.nn.functional.softplus(depth_back[overlap] - depth_front[overlap]).sum()
    loss.backward()
    assert back.grad is not None
    moved = back.grad.norm(dim=-1)[0] > 0
    assert moved.sum() > 10
    assert (back.grad[0, moved, 2] > 0).all()  # pushing the hidden person's surface forward


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_fragments(neutral_model):
    vertices = posed_mannequin(neutral_model, 9)[None]
    cpu = rasterize(vertices, neutral_model.faces, K_IMAGE.float()[None], (SIZE, SIZE))
    gpu = rasterize(
        vertices.cuda(), neutral_model.faces.cuda(), K_IMAGE.float()[None].cuda(), (SIZE, SIZE)
    )
    assert (cpu.face_index == gpu.face_index.cpu()).float().mean() > 0.999
