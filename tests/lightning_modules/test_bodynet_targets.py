"""BodyNet's targets on real crop samples of the tiny synthetic SURREAL: every target decodes
back to the ground truth it encodes, voxels agree with the silhouette, absent labels give
zero weight."""

from __future__ import annotations

import pickle

import pytest
import torch

from body.joint_sets import canonical_indices
from lightning_modules.bodynet import targets as bodynet_targets
from lightning_modules.bodynet.losses import front_view
from lightning_modules.bodynet.targets import BodyNetTargets

SIDE = 64


@pytest.fixture(scope="module")
def samples(tiny_world, body_models_root):
    from datamodules.base import BodyModels, ReaderOptions, reader_class
    from datamodules.datasets import CropDataset

    options = ReaderOptions(body_models=BodyModels(body_models_root))
    dataset = CropDataset(reader_class("surreal")(tiny_world, "train", options), SIDE)
    transform = BodyNetTargets(str(body_models_root), voxel_resolution=32, part_voxels=True)
    return [(dataset[i], transform(dataset[i])) for i in range(3)]


def test_heatmaps_decode_to_the_joints(samples) -> None:
    joints = canonical_indices("bodynet_16")
    for sample, out in samples:
        assert out["bodynet_heatmaps2d"].shape == (16, 16, 16)
        keep = out["bodynet_joint_weight"] > 0
        assert keep.sum() >= 10
        decoded = bodynet_targets.decode_heatmaps2d(out["bodynet_heatmaps2d"][None], SIDE)[0]
        error = (decoded - sample["keypoints2d"][joints, :2]).abs()[keep]
        assert error.max() <= 2.0 + 1e-4  # half a heatmap pixel of 4 crop pixels
        assert (out["bodynet_heatmaps2d"][~keep] == 0).all()


def test_3d_heatmaps_decode_to_root_relative_depth(samples) -> None:
    joints = canonical_indices("bodynet_16")
    for sample, out in samples:
        volume = out["bodynet_heatmaps3d"]
        assert volume.shape == (16, 19, 16, 16)
        assert (out["bodynet_joint3d_weight"] == 1).all()
        _, depth = bodynet_targets.decode_heatmaps3d(volume[None], SIDE)
        true = sample["keypoints3d"][joints, 2] - sample["keypoints3d"][joints[6], 2]  # pelvis
        inside = true.abs() < 0.045 * 9
        assert (depth[0] - true).abs()[inside].max() <= 0.0225 + 1e-4  # half a bin
        assert volume[6].argmax() // (16 * 16) == 9  # the root is in the middle bin


def test_voxels_match_the_silhouette_and_centre_the_root(samples) -> None:
    for _, out in samples:
        voxels, silhouette = out["bodynet_voxels"], out["bodynet_silhouette"]
        assert voxels.shape == (32, 32, 32) and voxels.dtype == torch.bool
        assert bool(out["has_bodynet_voxels"])
        front = front_view(voxels.float())
        iou = (front * silhouette).sum() / ((front + silhouette) > 0).sum()
        assert iou > 0.7, iou  # voxels are slightly larger than the mesh (paper 3.2)
        depths = voxels.any(dim=2).any(dim=1).nonzero()[:, 0].float()
        assert 10 <= depths.mean() <= 22  # the body is around the middle depth (16)


def test_part_targets_cover_the_occupancy(samples) -> None:
    for _, out in samples:
        parts = out["bodynet_part_voxels"]
        assert set(parts.unique().tolist()) <= set(range(7)) and parts.max() > 1
        assert torch.equal(parts > 0, out["bodynet_voxels"])
        front = out["bodynet_part_front"]
        assert front.shape == (32, 32) and set(front.unique().tolist()) <= set(range(7))
        segm = out["bodynet_segm"]
        assert segm.shape == (16, 16) and set(segm.unique().tolist()) <= set(range(15))


def test_absent_annotations_give_zero_weight(samples, body_models_root) -> None:
    sample = dict(samples[0][0])
    sample.update(
        has_smpl=torch.tensor(False), has_keypoints3d=torch.tensor(False),
        has_part_segm=torch.tensor(False),
    )  # fmt: skip
    sample["keypoints2d"] = sample["keypoints2d"].clone()
    sample["keypoints2d"][:, 2] = 0
    out = BodyNetTargets(str(body_models_root), voxel_resolution=16)(sample)
    assert out["bodynet_joint_weight"].sum() == 0 and out["bodynet_heatmaps2d"].sum() == 0
    assert out["bodynet_joint3d_weight"].sum() == 0 and out["bodynet_heatmaps3d"].sum() == 0
    assert not out["has_bodynet_voxels"] and not out["bodynet_voxels"].any()
    assert (out["bodynet_segm"] == -100).all()


def test_the_front_silhouette_and_root_depth_come_from_what_the_sample_has(
    samples, body_models_root
) -> None:
    """Part labels first (SURREAL's segmentation, UP-3D's rendered fit), then the mask, then
    the voxels' front view; the root depth from the 3D joints, else from the posed SMPL."""
    transform = BodyNetTargets(str(body_models_root), voxel_resolution=32)
    sample, full = samples[0]
    root = sample["keypoints3d"][canonical_indices("bodynet_16")[6]]
    assert float(full["bodynet_root_depth"]) == pytest.approx(float(root[2]))
    no_parts = dict(sample, has_part_segm=torch.tensor(False))
    assert torch.equal(transform(no_parts)["bodynet_silhouette"], full["bodynet_silhouette"])
    bare = dict(no_parts, has_mask=torch.tensor(False), mask=torch.zeros_like(sample["mask"]),
                has_keypoints3d=torch.tensor(False))  # fmt: skip
    out = transform(bare)
    assert torch.equal(out["bodynet_silhouette"], out["bodynet_voxels"].amax(dim=0).float())
    assert out["bodynet_silhouette"].sum() > 0
    # SMPL's root joint (the pelvis) posed with the sample's gender: a few cm from the label.
    assert float(out["bodynet_root_depth"]) == pytest.approx(float(root[2]), abs=0.05)
    masked = dict(no_parts, mask=torch.zeros_like(sample["mask"]))
    assert transform(masked)["bodynet_silhouette"].sum() == 0  # the mask, as it is


def test_the_transform_pickles_without_its_body_models(samples, body_models_root) -> None:
    transform = BodyNetTargets(str(body_models_root), voxel_resolution=16)
    transform(samples[0][0])  # builds the models
    assert pickle.loads(pickle.dumps(transform))._models is None
