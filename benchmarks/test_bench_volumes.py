"""Voxelization and signed distance grids of the mannequin, on the CPU.

Goals on the 2-core CI machines (issue 3): voxelizing at 128^3 under 200 ms, the fast 32^3 SDF
under 50 ms (CRMH reports 45 ms per 32^3 grid on a 1080Ti GPU).
"""

import pytest
import torch

from body import BodyModel
from geometry.sdf import mesh_box, signed_distance_grid
from geometry.volumes import voxelize


@pytest.fixture(scope="module")
def mannequin(body_models_root):
    """Rest-pose mannequin vertices (6890, 3) and faces (13776, 3)."""
    model = BodyModel(body_models_root)
    with torch.no_grad():
        out = model(torch.zeros(1, 72), torch.zeros(1, 10), torch.zeros(1, 3))
    return out.vertices[0], model.faces


def test_voxelize_mannequin_128(benchmark, mannequin):
    vertices, faces = mannequin
    bounds = mesh_box(vertices, 0.1)
    benchmark.extra_info.update(resolution=128, faces=len(faces), threads=torch.get_num_threads())
    occupied = benchmark(voxelize, vertices, faces, 128, *bounds)
    assert occupied.shape == (128, 128, 128) and occupied.any()


@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
@pytest.mark.parametrize("resolution", [32, 64])
def test_signed_distance_grid_mannequin(benchmark, mannequin, resolution, exact):
    vertices, faces = mannequin
    bounds = mesh_box(vertices, 0.1)
    benchmark.extra_info.update(resolution=resolution, exact=exact)
    rounds = 3 if exact and resolution == 64 else 10
    grid = benchmark.pedantic(
        signed_distance_grid,
        args=(vertices, faces, resolution, *bounds, exact),
        rounds=rounds,
        warmup_rounds=1,
    )
    assert grid.shape == (resolution,) * 3 and (grid < 0).any()
