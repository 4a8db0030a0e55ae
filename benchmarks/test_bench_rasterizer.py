"""Rasterizer benchmarks on the CPU: mannequin crops, a crowded full-HD frame, interpolate.

Goal (issue 3): the 256x256 mannequin at batch 8 under 20 ms per image on 2 cores.
"""

from __future__ import annotations

import math

import torch
from torch.profiler import ProfilerActivity, profile

from body import BodyModel
from geometry.rasterizer import interpolate, rasterize


def posed_mannequins(model: BodyModel, transl: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(N, 6890, 3) randomly posed mannequins facing an OpenCV camera, placed at ``transl``."""
    generator = torch.Generator().manual_seed(seed)
    count = transl.shape[0]
    pose = 0.2 * torch.randn(count, 72, generator=generator)
    pose[:, :3] = torch.tensor([math.pi, 0.0, 0.0])
    with torch.no_grad():
        return model(pose, None, transl).vertices


def intrinsics(focal: float, height: int, width: int, batch_size: int) -> torch.Tensor:
    K = torch.tensor([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0, 0, 1]])
    return K.expand(batch_size, 3, 3).clone()


def crop_batch(body_models_root) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eight mannequins framed like 256x256 person crops (the body spans ~90% of the height)."""
    model = BodyModel(body_models_root)
    vertices = posed_mannequins(model, torch.tensor([0.0, 0.15, 3.0]).expand(8, 3))
    return vertices, model.faces, intrinsics(400.0, 256, 256, 8)


def peak_cpu_memory_mb(function) -> float:
    """Peak of the CPU memory allocated by tensors while ``function`` runs (torch profiler).

    Allocations are attributed to the operators that make them (self memory, net of what they
    free) and later frees to ``[memory]`` events; their running sum in time order peaks at the
    high-water mark above what was allocated before the call.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        function()
    running = peak = 0
    for event in sorted(profiler.events(), key=lambda event: event.time_range.start):
        is_free = event.name == "[memory]"
        running += event.cpu_memory_usage if is_free else event.self_cpu_memory_usage
        peak = max(peak, running)
    return peak / 2**20


def test_rasterize_mannequin_256_batch8(benchmark, body_models_root):
    vertices, faces, K = crop_batch(body_models_root)
    fragments = benchmark.pedantic(
        rasterize, (vertices, faces, K, (256, 256)), rounds=10, warmup_rounds=1
    )
    assert (fragments.face_index >= 0).float().mean() > 0.1
    benchmark.extra_info.update(
        batch=8,
        ms_per_image=round(1e3 * benchmark.stats.stats.mean / 8, 2),
        goal_ms_per_image=20,
        threads=torch.get_num_threads(),
    )


def test_rasterize_20_people_1920x1080(benchmark, body_models_root):
    model = BodyModel(body_models_root)
    generator = torch.Generator().manual_seed(1)
    column, row = (torch.arange(20) % 5).float(), (torch.arange(20) // 5).float()
    x = column - 2.0 + 0.2 * torch.randn(20, generator=generator)
    transl = torch.stack((x, torch.full((20,), 0.3), 4.0 + 1.5 * row), dim=1)
    people = posed_mannequins(model, transl, seed=1)  # (20, 6890, 3): 4 rows of 5, 4 to 8.5 m
    scene = people.reshape(1, -1, 3)  # one mesh of 20 x 6890 vertices
    offsets = people.shape[1] * torch.arange(20)
    faces = (model.faces[None] + offsets[:, None, None]).reshape(-1, 3)
    K = intrinsics(1200.0, 1080, 1920, 1)
    run = lambda: rasterize(scene, faces, K, (1080, 1920))
    fragments = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert (fragments.face_index >= 0).float().mean() > 0.1
    benchmark.extra_info.update(
        people=20,
        faces=faces.shape[0],
        ms_per_frame=round(1e3 * benchmark.stats.stats.mean, 1),
        peak_memory_mb=round(peak_cpu_memory_mb(run), 1),
    )


def test_interpolate_forward_backward_256_batch8(benchmark, body_models_root):
    vertices, faces, K = crop_batch(body_models_root)
    colors = torch.rand(vertices.shape, generator=torch.Generator().manual_seed(2))

    def forward_backward() -> None:
        positions = vertices.clone().requires_grad_()
        values = colors.clone().requires_grad_()
        fragments = rasterize(positions, faces, K, (256, 256))
        image = interpolate(fragments, faces, values)
        depth = interpolate(fragments, faces, positions[..., 2:])
        (image.sum() + depth.sum()).backward()

    benchmark.pedantic(forward_backward, rounds=5, warmup_rounds=1)
    benchmark.extra_info.update(
        batch=8,
        what="rasterize + interpolate colours and depth, backward to positions and colours",
        ms_per_image=round(1e3 * benchmark.stats.stats.mean / 8, 2),
    )
