"""BodyNet's network: output shapes of every subnetwork, the second input branch, the part
network initialised from the shape network, and input checks."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.bodynet.network import BetasRegressor, BodyNetNetwork, VoxelHead
from lightning_modules.common.hourglass import Hourglass, StackedHourglass

TINY = {"input_size": 64, "voxel_resolution": 32, "features": 32, "hourglass_depth": 2}


@pytest.mark.parametrize("stacks", [1, 2])
def test_every_subnetwork_has_a_prediction_per_stack(stacks: int) -> None:
    torch.manual_seed(0)
    network = BodyNetNetwork(num_stacks=stacks, **TINY).eval()
    with torch.no_grad():
        out = network(torch.randn(2, 3, 64, 64))
    assert [tuple(p.shape) for p in out.pose2d] == [(2, 16, 16, 16)] * stacks
    assert [tuple(p.shape) for p in out.segm] == [(2, 15, 16, 16)] * stacks
    assert [tuple(p.shape) for p in out.pose3d] == [(2, 16, 19, 16, 16)] * stacks
    assert [tuple(p.shape) for p in out.voxels] == [(2, 32, 32, 32)] * stacks


def test_the_voxel_head_reaches_the_grid_by_2x_stages() -> None:
    head = VoxelHead(resolution=64, input_side=16)  # two stages: 16 -> 32 -> 64
    assert head(torch.randn(1, 64, 16, 16)).shape == (1, 64, 64, 64)
    assert len(head.convs) == 1
    with pytest.raises(ValueError, match="power-of-two"):
        VoxelHead(resolution=48, input_side=16)


def test_the_part_network_starts_with_the_shape_networks_foreground() -> None:
    torch.manual_seed(1)
    shape = BodyNetNetwork(**TINY, num_stacks=2).eval()
    for parameter in shape.voxel_heads.parameters():  # a non-trivial output layer
        parameter.data.normal_(0.0, 0.05)
    parts = BodyNetNetwork(**TINY, num_stacks=2, num_part_classes=7)
    parts.init_parts_from_shape(shape)
    parts.eval()
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        occupancy = torch.sigmoid(shape(image).voxels[-1])
        scores = parts(image).voxels[-1]
    assert scores.shape == (2, 7, 32, 32, 32)
    foreground = 1.0 - scores.softmax(dim=1)[:, 0]
    torch.testing.assert_close(foreground, occupancy, atol=1e-5, rtol=1e-5)
    assert occupancy.std() > 0.01  # the comparison is not between constants
    with pytest.raises(ValueError, match="num_part_classes"):
        shape.init_parts_from_shape(parts)


def test_bad_inputs_name_the_expected_shape() -> None:
    network = BodyNetNetwork(**TINY, num_stacks=1)
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        network(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="divisible"):
        BodyNetNetwork(input_size=72, voxel_resolution=36, features=8, hourglass_depth=2)
    stacked = StackedHourglass(3, 4, num_stacks=1, features=8, depth=1, extra_channels=5)
    with pytest.raises(ValueError, match="second input"):
        stacked(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="divisible by 2"):
        Hourglass(2, 4)(torch.randn(1, 4, 6, 6))


def _reached(network: BodyNetNetwork, output: torch.Tensor) -> set[str]:
    """The subnetworks whose parameters get a gradient from `output`."""
    network.zero_grad()
    output.square().mean().backward()
    return {
        name
        for name in ("pose2d", "segm", "pose3d", "shape")
        if any(p.grad is not None and p.grad.abs().sum() > 0
               for p in getattr(network, name).parameters())
    }  # fmt: skip


@pytest.mark.parametrize(
    ("shape_inputs", "upstream"),
    [
        (["pose2d"], {"pose2d"}),
        (["rgb"], set()),
        (["segm"], {"segm"}),
        (["pose3d"], {"pose2d", "segm", "pose3d"}),
        (["pose3d", "segm"], {"pose2d", "segm", "pose3d"}),
        (["rgb", "pose2d", "segm", "pose3d"], {"pose2d", "segm", "pose3d"}),
    ],
)
def test_the_shape_network_reads_exactly_its_inputs(shape_inputs, upstream) -> None:
    torch.manual_seed(2)
    network = BodyNetNetwork(num_stacks=1, shape_inputs=shape_inputs, **TINY)
    out = network(torch.randn(2, 3, 64, 64))
    assert out.voxels[-1].shape == (2, 32, 32, 32)
    assert _reached(network, out.voxels[-1]) == upstream | {"shape"}
    assert (network.shape.inputs.stem is None) == (shape_inputs == ["pose3d"])
    channels = {"rgb": 3, "pose2d": 16, "segm": 15}
    assert network.shape.in_channels == sum(channels.get(name, 0) for name in shape_inputs)


@pytest.mark.parametrize(
    ("pose3d_inputs", "upstream"),
    [(["rgb"], set()), (["pose2d"], {"pose2d"}), (["segm"], {"segm"}),
     (["segm", "pose2d"], {"pose2d", "segm"})],
)  # fmt: skip
def test_the_3d_pose_network_reads_exactly_its_inputs(pose3d_inputs, upstream) -> None:
    torch.manual_seed(3)
    network = BodyNetNetwork(num_stacks=1, pose3d_inputs=pose3d_inputs, **TINY)
    out = network(torch.randn(2, 3, 64, 64))
    assert out.pose3d[-1].shape == (2, 16, 19, 16, 16)
    assert _reached(network, out.pose3d[-1]) == upstream | {"pose3d"}
    assert network.pose3d_inputs == tuple(
        n for n in ("rgb", "pose2d", "segm") if n in pose3d_inputs
    )


def test_unknown_or_missing_inputs_are_named() -> None:
    with pytest.raises(ValueError, match=r"shape_inputs.*\['depth'\]"):
        BodyNetNetwork(num_stacks=1, shape_inputs=["depth"], **TINY)
    with pytest.raises(ValueError, match="pose3d_inputs"):
        BodyNetNetwork(num_stacks=1, pose3d_inputs=["pose3d"], **TINY)
    with pytest.raises(ValueError, match="shape_inputs"):
        BodyNetNetwork(num_stacks=1, shape_inputs=[], **TINY)
    stem_free = StackedHourglass(0, 4, num_stacks=1, features=8, depth=1, extra_channels=5)
    assert stem_free(None, torch.randn(1, 5, 4, 4))[-1].shape == (1, 4, 4, 4)
    with pytest.raises(ValueError, match="no image-resolution input"):
        stem_free(torch.randn(1, 3, 16, 16), torch.randn(1, 5, 4, 4))
    with pytest.raises(ValueError, match="needs some input"):
        StackedHourglass(0, 4, num_stacks=1, features=8, depth=1)


def test_the_betas_regressor_has_the_papers_fully_connected_sizes() -> None:
    # Appendix B.2 at the paper's sizes: 256 x 256 input, hourglass depth 4 -> 128 x 4 x 4.
    regressor = BetasRegressor(3 + 16 + 15, 16 * 19, 256, features=16, depth=4)
    sizes = [(m.in_features, m.out_features) for m in regressor.regressor
             if isinstance(m, torch.nn.Linear)]  # fmt: skip
    assert sizes == [(2048, 1024), (1024, 512), (512, 10)]
    network = BodyNetNetwork(num_stacks=1, num_betas=10, **TINY)
    assert len(network.voxel_heads) == 0
    with pytest.raises(ValueError, match="num_part_classes"):
        BodyNetNetwork(num_stacks=1, num_betas=10, num_part_classes=7, **TINY)
