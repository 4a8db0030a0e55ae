"""PARE's losses (paper eq. 2): 3D joints, 2D reprojected keypoints, SMPL parameters and part
segmentation, each a pure function of tensors that skips the samples lacking its ground truth.

Every term is a mean over what it supervises and returns 0 (with a gradient path) when a batch
has nothing for it, so the weights of the experiment config mean the same for every mix.

- `keypoints3d_loss`: squared error of the 3D joints after centring both poses on the mean of
  the joints both have (datasets annotate different roots; the centroid is defined for all of
  them), weighted by the ground truth's confidence, for samples with `has_keypoints3d`.
- `keypoints2d_loss`: squared error in normalised crop coordinates ([-1, 1] over the crop's
  pixel edges) between the weak-perspective projection s (X + t) of the predicted joints and the
  ground truth, weighted by confidence (SPIN's form).
- `smpl_loss`: squared error of the 24 rotation matrices and of the betas, for `has_smpl`.
- `part_segmentation_loss`: cross-entropy of P's J + 1 channels (24 parts, then background) at
  feature resolution against the part labels downsampled with nearest sampling, for
  `has_part_segm` (the suite's labels are 0 background, 1..24 parts).
- `joint_heatmap_loss`: the Table 3 ablation (a)/(b): squared error between P's J channels and
  Gaussian heatmaps (sigma in feature pixels) of the 2D joints, per joint confidence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_modules.common.heatmaps import gaussian_heatmaps

NUM_PARTS = 24


def _zero(like: Tensor) -> Tensor:
    return like.sum() * 0.0


def _masked_mean(errors: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean of (..., N) errors by (..., N) weights; 0 with a gradient if no weight."""
    total = weights.sum()
    return (errors * weights).sum() / total if total > 0 else _zero(errors)


def centre_on_shared(points: Tensor, shared: Tensor) -> Tensor:
    """(B, J, 3) points minus the mean of the joints `shared` (B, J) marks, per sample."""
    weights = shared.to(points.dtype)[..., None]
    count = weights.sum(dim=1, keepdim=True).clamp_min(1)
    return points - (points * weights).sum(dim=1, keepdim=True) / count


def keypoints3d_loss(pred: Tensor, target: Tensor, has_keypoints3d: Tensor) -> Tensor:
    """pred (B, J, 3), target (B, J, 4) metres + confidence, has (B,) -> scalar (module doc)."""
    weights = target[..., 3] * has_keypoints3d[:, None].to(target.dtype)  # (B, J)
    shared = weights > 0
    errors = centre_on_shared(pred, shared) - centre_on_shared(target[..., :3], shared)
    return _masked_mean(errors.square().sum(dim=-1), weights)


def weak_perspective_project(points: Tensor, cam: Tensor) -> Tensor:
    """(B, J, 3) points, (B, 3) (s, tx, ty) -> (B, J, 2) normalised crop coordinates."""
    return cam[:, None, :1] * (points[..., :2] + cam[:, None, 1:])


def normalise_pixels(keypoints2d: Tensor, crop_size: int) -> Tensor:
    """(..., 2) crop pixels (centres on integers) -> [-1, 1] over the crop's pixel edges."""
    return (keypoints2d + 0.5) * (2.0 / crop_size) - 1.0


def keypoints2d_loss(pred: Tensor, cam: Tensor, target: Tensor, crop_size: int) -> Tensor:
    """pred (B, J, 3) joints, cam (B, 3), target (B, J, 3) crop pixels + confidence."""
    projected = weak_perspective_project(pred, cam)
    errors = (projected - normalise_pixels(target[..., :2], crop_size)).square().sum(dim=-1)
    return _masked_mean(errors, target[..., 2])


def smpl_loss(
    rotmats: Tensor, betas: Tensor, target_rotmats: Tensor, target_betas: Tensor, has_smpl: Tensor
) -> tuple[Tensor, Tensor]:
    """(pose loss, shape loss): rotations (B, 24, 3, 3) and betas (B, 10) against the targets."""
    weights = has_smpl.to(rotmats.dtype)
    pose_errors = (rotmats - target_rotmats).square().flatten(1).mean(dim=1)
    shape_errors = (betas - target_betas).square().mean(dim=1)
    return _masked_mean(pose_errors, weights), _masked_mean(shape_errors, weights)


def part_targets(part_segm: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, S, S) labels 0 background, 1..24 -> (B, h, w) class indices of P's channels
    (part k -> k - 1, background -> 24), nearest sampling."""
    small = F.interpolate(part_segm[:, None].float(), size=size, mode="nearest")[:, 0].long()
    return torch.where(small > 0, small - 1, NUM_PARTS)


def part_segmentation_loss(part_logits: Tensor, part_segm: Tensor, has_part_segm: Tensor) -> Tensor:
    """part_logits (B, 25, h, w), part_segm (B, S, S), has (B,) -> mean pixel cross-entropy."""
    if not has_part_segm.any():
        return _zero(part_logits)
    keep = has_part_segm.bool()
    targets = part_targets(part_segm[keep], (part_logits.shape[-2], part_logits.shape[-1]))
    return F.cross_entropy(part_logits[keep], targets)


def joint_heatmap_loss(
    part_logits: Tensor, keypoints2d: Tensor, crop_size: int, sigma: float = 2.0
) -> Tensor:
    """part_logits (B, J, h, w) raw heatmaps, keypoints2d (B, J, 3) crop pixels + confidence."""
    size = (part_logits.shape[-2], part_logits.shape[-1])
    targets = gaussian_heatmaps(keypoints2d, crop_size, size, sigma)
    errors = (part_logits - targets).square().mean(dim=(-2, -1))  # (B, J)
    return _masked_mean(errors, keypoints2d[..., 2])
