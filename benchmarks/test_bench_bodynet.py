"""BodyNet benchmarks on the CPU (issue 9, "Performance").

- `test_training_throughput`: images/s of one training step (forward of the four subnetworks,
  every loss of the combined loss, backward, an RMSprop step) of the paper's network (two
  stacks each, 256 x 256 input, 128^3 output) at batch 2 in fp32 and bf16 autocast, and of
  `bodynet_tiny` (one stack, 64 x 64, 32^3) at batch 16 in fp32, on a synthetic batch; with the
  step's FLOPs (`torch.utils.flop_counter`, 2 x multiply-adds) and the process's peak resident
  memory after the step (`ru_maxrss`, a high-water mark of the whole run).
- `test_voxel_targets_per_second`: `BodyNetTargets` (heatmaps, segmentation, voxels) on crops of
  the tiny synthetic SURREAL, at 32^3 and 128^3.
- `test_smpl_fitting_seconds_per_sample`: `body.fitting.fit_body` with its default 400 steps on
  the mannequin's 128^3 isosurface (the paper reports 0.28 s per image for the network's
  foreground voxels on a GPU of its day; fitting is the expensive step on a CPU).
"""

from __future__ import annotations

import math
import resource
from functools import partial

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lightning_modules.bodynet.module import BodyNetModule
from lightning_modules.bodynet.network import BodyNetNetwork

SIZES = {
    "paper": {"input_size": 256, "voxel_resolution": 128, "num_stacks": 2, "features": 256,
              "hourglass_depth": 4, "batch": 2},
    "tiny": {"input_size": 64, "voxel_resolution": 32, "num_stacks": 1, "features": 64,
             "hourglass_depth": 2, "batch": 16},
}  # fmt: skip
WEIGHTS = {"pose2d": 1e7, "segm": 1e3, "pose3d": 1e6, "voxels": 1e1, "reproj_front": 1.0,
           "reproj_side": 1.0}  # fmt: skip


def synthetic_batch(batch: int, side: int, resolution: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    size = side // 4
    return {
        "image": torch.randn(batch, 3, side, side, generator=generator),
        "bodynet_heatmaps2d": torch.rand(batch, 16, size, size, generator=generator),
        "bodynet_joint_weight": torch.ones(batch, 16),
        "bodynet_segm": torch.randint(0, 15, (batch, size, size), generator=generator),
        "bodynet_heatmaps3d": torch.rand(batch, 16, 19, size, size, generator=generator),
        "bodynet_joint3d_weight": torch.ones(batch, 16),
        "bodynet_voxels": torch.rand((batch, *(resolution,) * 3), generator=generator) > 0.9,
        "bodynet_silhouette": (torch.rand(batch, resolution, resolution) > 0.7).float(),
        "has_bodynet_voxels": torch.ones(batch, dtype=torch.bool),
    }


@pytest.mark.parametrize(
    ("size", "precision"), [("paper", "fp32"), ("paper", "bf16"), ("tiny", "fp32")]
)
def test_training_throughput(benchmark, size: str, precision: str) -> None:
    settings = dict(SIZES[size])
    batch_size = settings.pop("batch")
    torch.manual_seed(0)
    network = BodyNetNetwork(**settings)
    module = BodyNetModule(network, partial(torch.optim.RMSprop, lr=1e-3), loss_weights=WEIGHTS)
    module.train()
    optimizer = module.configure_optimizers()
    batch = synthetic_batch(batch_size, settings["input_size"], settings["voxel_resolution"])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def step() -> float:
        optimizer.zero_grad()
        with autocast:
            terms = module.compute_losses(batch, module(batch["image"]))
            loss = sum(module.loss_weights[name] * value for name, value in terms.items())
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    with FlopCounterMode(display=False) as counter:
        step()  # also the warm-up round
    flops = counter.get_total_flops()
    loss = benchmark.pedantic(step, rounds=2, iterations=1)
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        batch=batch_size, input=settings["input_size"], voxels=settings["voxel_resolution"],
        threads=torch.get_num_threads(), images_per_s=batch_size / seconds,
        step_gflops=flops / 1e9, achieved_flops_per_s=flops / seconds,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )  # fmt: skip
    assert math.isfinite(loss)


@pytest.fixture(scope="module")
def crops(tmp_path_factory, body_models_root):
    from datamodules.base import BodyModels, ReaderOptions, reader_class
    from datamodules.datasets import CropDataset
    from datamodules.synthetic.world import write_world

    root = tmp_path_factory.mktemp("bodynet_world")
    write_world(root, "tiny", ["surreal"], body_model_root=body_models_root, progress=False)
    options = ReaderOptions(body_models=BodyModels(body_models_root))
    dataset = CropDataset(reader_class("surreal")(root, "train", options), 256)
    return [dataset[i] for i in range(4)]


@pytest.mark.parametrize("resolution", [32, 128])
def test_voxel_targets_per_second(benchmark, crops, body_models_root, resolution) -> None:
    from lightning_modules.bodynet.targets import BodyNetTargets

    transform = BodyNetTargets(str(body_models_root), voxel_resolution=resolution)
    transform(crops[0])  # builds the body models

    def run() -> int:
        return sum(int(transform(crop)["bodynet_voxels"].sum() > 0) for crop in crops)

    assert benchmark.pedantic(run, rounds=3, iterations=1) == len(crops)
    benchmark.extra_info.update(samples_per_s=len(crops) / benchmark.stats.stats.mean)


def test_smpl_fitting_seconds_per_sample(benchmark, body_models_root) -> None:
    from body import BodyModel
    from body.fitting import fit_body
    from geometry.meshes import grid_to_mesh
    from geometry.volumes import bodynet_grid_vertices, voxelize_interior

    model = BodyModel(body_models_root, "mannequin", "neutral")
    pose = torch.zeros(1, 72)
    pose[0, 0] = math.pi
    transl = torch.tensor([[0.0, 0.1, 4.0]])
    K = torch.tensor([[450.0, 0.0, 127.5], [0.0, 450.0, 127.5], [0.0, 0.0, 1.0]])
    true = model(pose, None, transl)
    root = float(true.joints[0, 0, 2])

    def frame(vertices: torch.Tensor) -> torch.Tensor:
        return torch.stack([bodynet_grid_vertices(v, K, root, 256, 128) for v in vertices])

    grid = voxelize_interior(frame(true.vertices)[0], model.faces, 128, (0.0,) * 3, (128.0,) * 3)
    surface, _ = grid_to_mesh(grid.float(), (0.0, 0.0, 0.0), (128, 128, 128))
    start = pose.clone()
    start[0, 3:] = 0.1

    def run() -> float:
        return fit_body(model, surface[None], start, transl, frame).energies[-1]

    assert math.isfinite(benchmark.pedantic(run, rounds=1, iterations=1))
    benchmark.extra_info.update(steps=400, seconds_per_sample=benchmark.stats.stats.mean)
