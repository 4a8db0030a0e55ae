"""Rasterizer benchmarks on the CPU: the mannequin at 256x256 and a 1080p crowd of 20."""

import math
import resource

import torch

from body import BodyModel
from geometry.rasterizer import interpolate, rasterize


def posed_people(model: BodyModel, count: int, seed: int = 0) -> torch.Tensor:
    """(count, 6890, 3) camera-facing mannequins spread in front of the camera."""
    generator = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(count, 72, generator=generator)
    pose[:, :3] = torch.tensor([math.pi, 0.0, 0.0])
    transl = torch.stack(
        [torch.linspace(-3.0, 3.0, count), torch.zeros(count), torch.linspace(5.0, 9.0, count)], 1
    )
    with torch.no_grad():
        return model(pose, transl=transl).vertices


def test_rasterize_mannequin_256_batch8(benchmark, body_models_root):
    model = BodyModel(body_models_root)
    vertices = posed_people(model, 8)
    vertices = vertices - vertices.mean(dim=1, keepdim=True) + torch.tensor([0.0, 0.0, 2.5])
    K = torch.tensor([[300.0, 0.0, 127.5], [0.0, 300.0, 127.5], [0.0, 0.0, 1.0]]).expand(8, 3, 3)
    fragments = benchmark(rasterize, vertices, model.faces, K, (256, 256))
    benchmark.extra_info["ms_per_image"] = 1e3 * benchmark.stats.stats.mean / 8
    assert (fragments.face_index >= 0).sum() > 8 * 2000


def test_rasterize_crowd_1080p_20_people(benchmark, body_models_root):
    model = BodyModel(body_models_root)
    people = posed_people(model, 20)  # (20, V, 3)
    faces = (model.faces[None] + 6890 * torch.arange(20)[:, None, None]).flatten(0, 1)
    scene = people.flatten(0, 1)[None]  # one frame, 20 people
    K = torch.tensor([[[1150.0, 0.0, 959.5], [0.0, 1150.0, 539.5], [0.0, 0.0, 1.0]]])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fragments = benchmark.pedantic(rasterize, (scene, faces, K, (1080, 1920)), rounds=3)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    benchmark.extra_info["ms_per_frame"] = 1e3 * benchmark.stats.stats.mean
    benchmark.extra_info["peak_rss_growth_mb"] = (after - before) / 1024
    benchmark.extra_info["peak_rss_mb"] = after / 1024
    assert (fragments.face_index >= 0).sum() > 20 * 1000


def test_interpolate_forward_backward_256_batch8(benchmark, body_models_root):
    model = BodyModel(body_models_root)
    vertices = posed_people(model, 8)
    vertices = vertices - vertices.mean(dim=1, keepdim=True) + torch.tensor([0.0, 0.0, 2.5])
    K = torch.tensor([[300.0, 0.0, 127.5], [0.0, 300.0, 127.5], [0.0, 0.0, 1.0]]).expand(8, 3, 3)

    def step():
        positions = vertices.clone().requires_grad_(True)
        fragments = rasterize(positions, model.faces, K, (256, 256))
        depth = interpolate(fragments, model.faces, positions[..., 2:])
        depth.sum().backward()
        return positions.grad

    grad = benchmark(step)
    benchmark.extra_info["ms_per_image"] = 1e3 * benchmark.stats.stats.mean / 8
    assert grad is not None and grad.abs().sum() > 0
