"""Names, units and flattening shared by every metric (DESIGN.md's results keys)."""

from __future__ import annotations

import pytest
import torch

import metrics
from metrics.base import flat_key, flatten_result


def test_flat_keys_put_the_unit_before_a_threshold() -> None:
    assert flat_key("silhouette", "f1_fg", "pct") == "silhouette/f1_fg_pct"
    assert flat_key("joint_detection", "f1@0.4", "pct") == "joint_detection/f1_pct@0.4"


def test_flatten_scalars_and_dicts() -> None:
    assert flatten_result("mpjpe_mm", torch.tensor(12.5), {}) == {"mpjpe_mm": 12.5}
    assert flatten_result("s", {"a": torch.tensor(1.0), "b@2": 3}, {"a": "pct", "b@2": "l"}) == {
        "s/a_pct": 1.0,
        "s/b_l@2": 3.0,
    }
    with pytest.raises(KeyError, match="key 'c' has no unit"):
        flatten_result("s", {"c": 1.0}, {"a": "pct"})


def test_results_of_several_metrics_refuses_clashing_names() -> None:
    pose = torch.zeros(1, 3, 3)
    first, second = metrics.MPJPE(), metrics.MPJPE(root_index=None)
    for metric in (first, second):
        metric.update(pose, pose)
    with pytest.raises(ValueError, match=r"two metrics report \['mpjpe_mm'\]"):
        metrics.results_of([first, second])
    renamed = metrics.MPJPE(root_index=None, name="mpjpe_abs_mm")
    renamed.update(pose, pose)
    assert metrics.results_of([first, renamed]) == {"mpjpe_mm": 0.0, "mpjpe_abs_mm": 0.0}


def test_every_metric_has_a_default_name_and_states_reduced_across_processes() -> None:
    instances = [
        metrics.MPJPE(), metrics.PAMPJPE(), metrics.PVE(), metrics.PCK3D(), metrics.AUC3D(),
        metrics.MPJAE(), metrics.PAMPJAE(), metrics.VoxelIoU(), metrics.PartVoxelIoU(7),
        metrics.SilhouetteScores(), metrics.PartSegmentationScores(7), metrics.PCKh(),
        metrics.DepthOrderAccuracy(), metrics.CollisionScores(), metrics.JointDetectionScores(),
        metrics.KeypointAP(), metrics.MuPoTSPCK(), metrics.PanopticMPJPE(),
    ]  # fmt: skip
    names = [metric.name for metric in instances]
    assert len(set(names)) == len(names)
    assert names[:8] == [
        "mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "pck3d_pct", "auc3d_pct", "mpjae_deg",
        "pa_mpjae_deg", "voxel_iou_pct",
    ]  # fmt: skip
    for metric in instances:
        assert metric._reductions, type(metric).__name__
        assert all(fn is not None for fn in metric._reductions.values()), type(metric).__name__
