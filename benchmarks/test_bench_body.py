"""Body-layer benchmarks: BodyModel forward and mannequin generation, on the CPU."""

import torch

from body import BodyModel
from body.mannequin import build_mannequin


def test_body_model_forward_batch64_cpu(benchmark, body_models_root):
    model = BodyModel(body_models_root)
    generator = torch.Generator().manual_seed(0)
    pose, betas = (
        0.3 * torch.randn(64, 72, generator=generator),
        torch.randn(64, 10, generator=generator),
    )
    benchmark.extra_info.update(batch=64, device="cpu", threads=torch.get_num_threads())
    with torch.no_grad():
        out = benchmark(model, pose, betas, None, "h36m_17")
    assert out.vertices.shape == (64, 6890, 3)


def test_mannequin_generation(benchmark):
    benchmark.extra_info.update(what="build_mannequin(): meshing, rigging and shape space")
    mannequin = benchmark.pedantic(build_mannequin, rounds=2, iterations=1)
    assert mannequin.vertices.shape == (6890, 3)
