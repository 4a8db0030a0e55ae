"""Voxel IoU (per sample), part voxel IoU, silhouette and part segmentation scores, PCKh."""

from __future__ import annotations

import math

import pytest
import torch

import metrics


def test_voxel_iou_is_per_sample_not_aggregate() -> None:
    """BodyNet's number: the mean of per-sample IoUs, not total intersection / total union."""
    preds = torch.zeros(2, 4, 5, 5)
    target = torch.zeros(2, 4, 5, 5, dtype=torch.bool)
    preds[0, 0, 0, :2] = 1.0  # sample 0: intersection 1, union 2
    target[0, 0, 0, 0] = True
    target[1] = True  # sample 1: intersection 0, union 100
    metric = metrics.VoxelIoU()
    metric.update(preds, target)
    assert float(metric.compute()) == pytest.approx(25.0)  # aggregate would be 100 / 102 %


def test_voxel_iou_threshold_is_inclusive_and_empty_samples_skipped() -> None:
    preds = torch.full((2, 2, 2, 2), 0.5)
    preds[1] = 0.0
    target = torch.ones(2, 2, 2, 2, dtype=torch.bool)
    target[1] = False  # sample 1: both empty, no IoU
    metric = metrics.VoxelIoU()
    metric.update(preds, target)
    assert float(metric.compute()) == 100.0
    metric = metrics.VoxelIoU(threshold=0.6)
    metric.update(preds, target)
    assert float(metric.compute()) == 0.0
    metric = metrics.VoxelIoU()  # an already thresholded occupancy is taken as it is
    metric.update(preds >= 0.5, target)
    assert float(metric.compute()) == 100.0


def test_part_voxel_iou_small_example() -> None:
    # Labels along one row: target 0 1 1 2, predicted (argmax) 0 1 2 2.
    target = torch.tensor([0, 1, 1, 2]).reshape(1, 1, 1, 4)
    labels = torch.tensor([0, 1, 2, 2])
    scores = torch.nn.functional.one_hot(labels, 3).T.reshape(1, 3, 1, 1, 4).float()
    metric = metrics.PartVoxelIoU(num_classes=3, class_names=["background", "torso", "head"])
    metric.update(scores, target)
    result = metric.results()
    assert result["part_voxel_iou/background_pct"] == 100.0
    assert result["part_voxel_iou/torso_pct"] == 50.0  # 1 / 2
    assert result["part_voxel_iou/head_pct"] == 50.0  # 1 / 2
    assert result["part_voxel_iou/foreground_pct"] == 100.0
    assert result["part_voxel_iou/mean_pct"] == 50.0


def test_silhouette_f1_variants_differ() -> None:
    # 10 pixels: tp 3, fp 1, fn 2, tn 4.
    preds = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.bool).reshape(1, 2, 5)
    target = torch.tensor([1, 1, 1, 0, 1, 1, 0, 0, 0, 0], dtype=torch.bool).reshape(1, 2, 5)
    metric = metrics.SilhouetteScores()
    metric.update(preds, target)
    result = metric.compute()
    assert float(result["accuracy"]) == pytest.approx(70.0)
    assert float(result["iou_fg"]) == pytest.approx(50.0)  # 3 / 6
    assert float(result["f1_fg"]) == pytest.approx(100 * 6 / 9)
    assert float(result["f1_mean"]) == pytest.approx(100 * (6 / 9 + 8 / 11) / 2)
    ignore = torch.zeros_like(preds)
    ignore[0, 0, 3] = ignore[0, 0, 4] = True  # drop the fp and one fn
    metric = metrics.SilhouetteScores()
    metric.update(preds, target, ignore)
    assert float(metric.compute()["accuracy"]) == pytest.approx(87.5)


def test_silhouette_counts_accumulate_over_images_of_different_sizes() -> None:
    metric = metrics.SilhouetteScores()
    metric.update(torch.ones(1, 2, 2, dtype=torch.bool), torch.ones(1, 2, 2, dtype=torch.bool))
    metric.update(torch.zeros(1, 3, 4, dtype=torch.bool), torch.ones(1, 3, 4, dtype=torch.bool))
    assert float(metric.compute()["accuracy"]) == pytest.approx(25.0)  # 4 of 16 pixels


def test_part_segmentation_ignores_255_and_leaves_absent_classes_out() -> None:
    target = torch.tensor([[0, 1, 1, 255, 0]])[None]
    preds = torch.tensor([[0, 1, 0, 2, 0]])[None]
    metric = metrics.PartSegmentationScores(num_classes=4)
    metric.update(preds, target)
    result = metric.compute()
    assert float(result["accuracy"]) == pytest.approx(75.0)  # the 255 pixel is not counted
    assert float(result["iou_class_0"]) == pytest.approx(100 * 2 / 3)
    assert float(result["iou_class_1"]) == pytest.approx(50.0)
    assert math.isnan(float(result["iou_class_2"])) and math.isnan(float(result["iou_class_3"]))
    assert float(result["mean_iou"]) == pytest.approx(50.0)  # class 1 only
    assert float(result["f1_macro"]) == pytest.approx(100 * (0.8 + 2 / 3) / 2)


def test_part_segmentation_rejects_labels_out_of_range() -> None:
    metric = metrics.PartSegmentationScores(num_classes=3)
    with pytest.raises(ValueError, match=r"preds holds label 3, outside \[0, 3\)"):
        metric.update(torch.tensor([[[3]]]), torch.tensor([[[0]]]))
    with pytest.raises(ValueError, match=r"target holds label 7, outside \[0, 3\) or 255"):
        metric.update(torch.tensor([[[0]]]), torch.tensor([[[7]]]))
    with pytest.raises(ValueError, match="ignore_index 2 is one of the classes"):
        metrics.PartSegmentationScores(num_classes=3, ignore_index=2)


def test_pckh_strict_and_inclusive_at_the_boundary() -> None:
    target = torch.zeros(1, 3, 2)
    preds = torch.tensor([[[0.0, 0.0], [3.2, 0.0], [4.0, 0.0]]])  # ratios 0, 0.5, 0.625 at 6.4 px
    normaliser = torch.tensor([6.4])
    strict, inclusive = metrics.PCKh(), metrics.PCKh(inclusive=True)
    strict.update(preds, target, None, normaliser)
    inclusive.update(preds, target, None, normaliser)
    assert float(strict.compute()) == pytest.approx(100 / 3)
    assert float(inclusive.compute()) == pytest.approx(200 / 3)


def test_pckh_needs_a_positive_normaliser() -> None:
    with pytest.raises(ValueError, match="normaliser must be positive"):
        metrics.PCKh().update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), None, torch.zeros(1))
    with pytest.raises(ValueError, match=r"normaliser \(B,\) is required"):
        metrics.PCKh().update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
