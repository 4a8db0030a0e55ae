"""PARE's network, the HMR-EFT regressor and PARE's losses: sizes against independent counts,
the attention and pooling operators, the part-supervised attention on a toy task, losses."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from geometry.rotations import axis_angle_to_matrix, rotation_6d_to_matrix
from lightning_modules.common.backbones import ResNetBackbone
from lightning_modules.common.heatmaps import gaussian_heatmaps
from lightning_modules.common.smpl_regressor import (
    IterativeRegressor,
    load_mean_params,
    set_initial_body,
)
from lightning_modules.pare import losses
from lightning_modules.pare.network import (
    HMRNetwork,
    PAREHead,
    PARENetwork,
    keypoint_pooling,
    part_attention,
    spatial_softmax,
)


@pytest.fixture(scope="module")
def mean_params(body_models_root):
    return load_mean_params(body_models_root / "mannequin" / "extras" / "smpl_mean_params.npz")


def _pare(mean_params, depth=50, **head) -> PARENetwork:
    return PARENetwork(
        ResNetBackbone(depth), functools.partial(PAREHead, mean_params=mean_params, **head)
    )


def _counts(network: nn.Module, size: int = 224) -> tuple[float, float]:
    network.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(torch.zeros(1, 3, size, size))
    return sum(p.numel() for p in network.parameters()) / 1e6, counter.get_total_flops() / 1e9


@pytest.mark.parametrize(
    ("upsampling", "params_m", "gflops"), [("deconv", 44.6, 14.0), ("upsample", 35.4, 21.1)]
)
def test_resnet50_sizes_match_the_reference_counts(mean_params, upsampling, params_m, gflops):
    """The issue's independent counts at 224 x 224 (FLOPs = 2 x multiply-adds): transposed-conv
    head 44.6 M and 13.9 to 14.1 GFLOPs, upsample + 3x3 head 35.4 M and 21.1 GFLOPs."""
    params, flops = _counts(_pare(mean_params, upsampling=upsampling))
    assert abs(params / params_m - 1) < 0.02 and abs(flops / gflops - 1) < 0.02, (params, flops)


def test_untrained_network_predicts_the_mean_body_and_shapes(mean_params):
    torch.manual_seed(0)
    network = _pare(mean_params, depth=18).eval()
    with torch.no_grad():
        out = network(torch.randn(2, 3, 64, 64))
    assert out.part_logits.shape == (2, 25, 16, 16) and out.attention.shape == (2, 24, 16, 16)
    mean_rotations = rotation_6d_to_matrix(mean_params["pose"].reshape(24, 6))
    assert (out.rotmats - mean_rotations).abs().max() < 0.2
    assert (out.betas - mean_params["shape"]).abs().max() < 0.2
    assert (out.cam - mean_params["cam"]).abs().max() < 0.2
    hmr = HMRNetwork(
        ResNetBackbone(18), functools.partial(IterativeRegressor, mean_params=mean_params)
    )
    with torch.no_grad():
        out = hmr.eval()(torch.randn(2, 3, 64, 64))
    assert out.rotmats.shape == (2, 24, 3, 3) and out.part_logits is None
    assert (out.rotmats - mean_rotations).abs().max() < 0.2


def test_the_initial_body_can_be_set_from_training_statistics(mean_params):
    """`set_initial_body` (PAREModule's mean_params_from_training_data) moves both regressors'
    starting point to a given body: the untrained networks then predict it."""
    torch.manual_seed(0)
    rotmats = axis_angle_to_matrix(0.4 * torch.randn(24, 3))
    betas = torch.linspace(-1, 1, 10)
    pare = _pare(mean_params, depth=18).eval()
    hmr = HMRNetwork(
        ResNetBackbone(18), functools.partial(IterativeRegressor, mean_params=mean_params)
    ).eval()
    for network in (pare, hmr):
        assert set_initial_body(network, rotmats, betas) == 1
        with torch.no_grad():
            out = network(torch.randn(2, 3, 64, 64))
        assert (out.rotmats - rotmats).abs().max() < 0.2
        assert (out.betas - betas).abs().max() < 0.2
        far = (rotation_6d_to_matrix(mean_params["pose"].reshape(24, 6)) - rotmats).abs().max()
        assert far > 0.5  # the check above would fail from the shipped mean parameters


def test_spatial_softmax_attention_and_pooling():
    torch.manual_seed(1)
    logits, features = torch.randn(2, 24, 5, 7), torch.randn(2, 3, 5, 7)
    attention = spatial_softmax(logits)
    torch.testing.assert_close(attention.sum(dim=(-2, -1)), torch.ones(2, 24))
    expected = torch.stack(
        [
            torch.stack([(attention[b, j] * features[b, c]).sum() for c in range(3)])
            for b in range(2)
            for j in range(24)
        ]
    )
    torch.testing.assert_close(part_attention(attention, features).reshape(-1, 3), expected)
    # A distribution concentrated on one cell samples the features of that cell.
    peaked = torch.zeros(2, 24, 5, 7)
    peaked[:, :, 3, 4] = 1.0
    torch.testing.assert_close(
        keypoint_pooling(peaked, features), features[:, :, 3, 4][:, None].expand(2, 24, 3)
    )


def test_background_channel_never_enters_the_attention(mean_params):
    head = PAREHead(8, mean_params, branch="conv", channels=8, smpl_channels=4).eval()
    features = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        first = head(features)
        head.part_final.weight[24].add_(5.0)  # the background kernel only
        second = head(features)
    torch.testing.assert_close(first.attention, second.attention)
    torch.testing.assert_close(first.rotmats, second.rotmats)


def test_part_supervision_focuses_the_attention_on_the_visible_part(mean_params):
    """Toy: a bright square at a random place is part 1 (label 1), the rest background. After
    150 steps of the part loss alone, the attention of part 1 puts at least twice the square's
    area fraction inside it (measured: 0.999 of the mass in a square of 6% of the area)."""
    torch.manual_seed(0)
    size = 24
    head = PAREHead(3, mean_params, branch="conv", channels=16, smpl_channels=4)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = (
            torch.rand(n, 3, size, size) * 0.3,
            torch.zeros(n, size, size, dtype=torch.long),
        )
        for i in range(n):
            y, x = torch.randint(0, size - 6, (2,)).tolist()
            images[i, :, y : y + 6, x : x + 6] += 0.7
            labels[i, y : y + 6, x : x + 6] = 1
        return images, labels

    for _ in range(150):
        images, labels = batch(16)
        loss = losses.part_segmentation_loss(head(images).part_logits, labels, torch.ones(16))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    images, labels = batch(32)
    with torch.no_grad():
        attention = head.eval()(images).attention[:, 0]
    inside = (attention * (labels == 1)).sum(dim=(-2, -1))
    fraction = 36 / size**2
    assert inside.mean() >= 2 * fraction, (inside.mean(), fraction)


def test_losses_skip_what_is_absent_and_vanish_at_the_truth():
    torch.manual_seed(2)
    pred = torch.randn(3, 10, 3)
    target = torch.cat([pred + torch.tensor([0.3, -0.2, 4.0]), torch.ones(3, 10, 1)], dim=-1)
    has = torch.tensor([True, True, False])
    assert losses.keypoints3d_loss(pred, target, has) < 1e-10  # translation does not count
    assert losses.keypoints3d_loss(pred, target, torch.zeros(3, dtype=torch.bool)) == 0
    target[0, 0, :3] += 1.0
    assert losses.keypoints3d_loss(pred, target, has) > 0.01
    cam = torch.tensor([[0.8, 0.1, -0.05]]).expand(3, 3)
    projected = losses.weak_perspective_project(pred, cam)
    pixels = (projected + 1.0) * 32 - 0.5  # a 64-pixel crop
    keypoints2d = torch.cat([pixels, torch.ones(3, 10, 1)], dim=-1)
    assert losses.keypoints2d_loss(pred, cam, keypoints2d, 64) < 1e-10
    keypoints2d[..., :2] += 5.0
    assert losses.keypoints2d_loss(pred, cam, keypoints2d, 64) > 0.001
    keypoints2d[..., 2] = 0
    assert losses.keypoints2d_loss(pred, cam, keypoints2d, 64) == 0
    labels = torch.tensor([[[0, 3], [24, 1]]])
    np.testing.assert_array_equal(losses.part_targets(labels, (2, 2)), [[[24, 2], [23, 0]]])
    logits = torch.randn(1, 25, 2, 2, requires_grad=True)
    assert losses.part_segmentation_loss(logits, labels, torch.tensor([False])) == 0
    rotations = rotation_6d_to_matrix(torch.randn(2, 24, 6))
    pose, shape = losses.smpl_loss(rotations, torch.zeros(2, 10), rotations, torch.ones(2, 10),
                                   torch.tensor([True, False]))  # fmt: skip
    assert pose == 0 and shape == 1


def test_joint_heatmaps_peak_at_the_joints():
    keypoints2d = torch.tensor([[[10.0, 20.0, 1.0], [40.0, 5.0, 0.0]]])
    heatmaps = gaussian_heatmaps(keypoints2d, 64, (16, 16), sigma=1.0)
    peak = torch.nonzero(heatmaps[0, 0] == heatmaps[0, 0].max())[0].tolist()
    assert peak == [round((20 + 0.5) / 4 - 0.5), round((10 + 0.5) / 4 - 0.5)]
    assert losses.joint_heatmap_loss(heatmaps, keypoints2d, 64, sigma=1.0) < 1e-12


def test_mean_params_errors_name_file_and_field(tmp_path):
    path = tmp_path / "smpl_mean_params.npz"
    np.savez(path, pose=np.zeros(144), shape=np.zeros(10))
    with pytest.raises(ValueError, match=r"smpl_mean_params\.npz: field 'cam' missing"):
        load_mean_params(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_mean_params(tmp_path / "absent.npz")


def test_mean_body_baseline_is_the_chordal_mean():
    from geometry.rotations import axis_angle_to_matrix, chordal_mean
    from lightning_modules.common.baseline import MeanBodyBaseline

    torch.manual_seed(3)
    centre = torch.randn(24, 3) * 0.5
    poses = centre[None] + 0.05 * torch.randn(50, 24, 3)
    samples = [{"pose": p.reshape(72), "betas": torch.full((10,), float(i)), "has_smpl": True}
               for i, p in enumerate(poses)]  # fmt: skip
    samples.append({"pose": torch.zeros(72), "betas": torch.full((10,), 1e3), "has_smpl": False})
    baseline = MeanBodyBaseline()
    assert not baseline.fitted
    baseline.fit(samples)
    assert baseline.fitted and int(baseline.num_samples) == 50
    torch.testing.assert_close(baseline.betas, torch.full((10,), 24.5))
    expected = chordal_mean(axis_angle_to_matrix(poses.double()), dim=0).float()
    torch.testing.assert_close(baseline.rotmats, expected)
    # The chordal mean of small perturbations lies near the centre rotation and is orthonormal.
    assert (baseline.rotmats - axis_angle_to_matrix(centre)).abs().max() < 0.05
    eye = torch.eye(3).expand(24, 3, 3)
    torch.testing.assert_close(baseline.rotmats @ baseline.rotmats.transpose(1, 2), eye)
    rotmats, betas = baseline(4)
    assert rotmats.shape == (4, 24, 3, 3) and betas.shape == (4, 10)
    with pytest.raises(ValueError, match="no training sample with SMPL"):
        MeanBodyBaseline().fit(samples[-1:])
