"""BodyNet's losses (paper sections 3.1-3.3, appendix B.3), each summed over the stacks
(intermediate supervision) and averaged over elements, as the authors' Torch criteria
(`MSECriterion`, `SpatialCrossEntropyCriterion`, `BCECriterion` with size averaging) do; the
paper's loss weights (1e7, 1e3, 1e6, 1e1, 1, 1) are relative to those means.

Voxel grids are (B, D, H, W) (DESIGN.md): D is depth (the camera's z), H and W the crop's rows
and columns. The front view is the max over D, (B, H, W), aligned with the crop's silhouette;
the side view is the max over W, (B, D, H). Part grids are (B, K, D, H, W), class 0 background:
the front and side views of a part are its maxima over the ray, of the background its minimum.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

# The paper's combined-loss weights (section 3.3), before normalisation to sum to one.
PAPER_WEIGHTS = {
    "pose2d": 1e7,
    "segm": 1e3,
    "pose3d": 1e6,
    "voxels": 1e1,
    "reproj_front": 1.0,
    "reproj_side": 1.0,
}
_EPS = 1e-6  # probabilities are clamped to [eps, 1 - eps] before the log of a BCE


def normalised_weights(weights: dict[str, float]) -> dict[str, float]:
    """`weights` scaled to sum to one (the paper's rule); ValueError when they cannot be."""
    total = sum(weights.values())
    if total <= 0 or any(value < 0 for value in weights.values()):
        raise ValueError(f"loss weights must be non-negative with a positive sum, got {weights}")
    return {name: value / total for name, value in weights.items()}


def betas_mse(predictions: Sequence[Tensor], target: Tensor, keep: Tensor) -> Tensor:
    """The shape-parameter regressor's L2 loss (section 4.2): the mean squared error of the
    predicted betas (B, num_betas) per stack against `target` over the samples `keep` (B,)
    with SMPL ground truth, summed over stacks; 0 (in the graph) when no sample has it."""
    if not keep.any():
        return sum(p.sum() * 0.0 for p in predictions)  # type: ignore[return-value]
    truth = target[keep].to(predictions[0].dtype)
    return sum(F.mse_loss(p[keep], truth) for p in predictions)  # type: ignore[return-value]


def heatmap_mse(
    predictions: Sequence[Tensor], target: Tensor, weight: Tensor | None = None
) -> Tensor:
    """Mean squared error of each stack's heatmaps (B, J, ...) against `target`, summed over
    stacks. `weight` (B, J) in [0, 1] drops absent joints (their heatmaps are not scored)."""
    total = target.new_zeros(())
    for prediction in predictions:
        error = (prediction - target).pow(2).flatten(2).mean(dim=2)  # (B, J)
        if weight is not None:
            error = error * weight
        total = total + error.mean()
    return total


def segmentation_cross_entropy(
    predictions: Sequence[Tensor], target: Tensor, ignore_index: int = -100
) -> Tensor:
    """Spatial cross-entropy of each stack's (B, C, h, w) scores against labels (B, h, w)."""
    total = predictions[0].new_zeros(())
    for prediction in predictions:
        if (target != ignore_index).any():
            total = total + F.cross_entropy(prediction, target, ignore_index=ignore_index)
    return total


def voxel_bce(predictions: Sequence[Tensor], target: Tensor) -> Tensor:
    """Eq. (1): BCE of each stack's occupancy logits (B, D, H, W) against 0/1 voxels."""
    target = target.to(predictions[0].dtype)
    return sum(
        (F.binary_cross_entropy_with_logits(p, target) for p in predictions),
        predictions[0].new_zeros(()),
    )


def front_view(occupancy: Tensor) -> Tensor:
    """Eq. (2): max over depth, (B, D, H, W) -> (B, H, W)."""
    return occupancy.amax(dim=-3)


def side_view(occupancy: Tensor) -> Tensor:
    """Eq. (2): max over width, (B, D, H, W) -> (B, D, H)."""
    return occupancy.amax(dim=-1)


def _bce(probability: Tensor, target: Tensor) -> Tensor:
    probability = probability.clamp(_EPS, 1.0 - _EPS)
    return F.binary_cross_entropy(probability, target.to(probability.dtype))


def reprojection_losses(
    predictions: Sequence[Tensor], silhouette: Tensor, voxels: Tensor
) -> tuple[Tensor, Tensor]:
    """Eqs. (3) and (4) summed over stacks: (front, side).

    Args:
        predictions: per stack occupancy logits (B, D, H, W).
        silhouette: (B, H, W) ground-truth silhouette at the grid's resolution (from the 2D
            segmentation, paper 3.2).
        voxels: (B, D, H, W) ground-truth occupancy; its side view is the side target.
    """
    side_target = side_view(voxels.to(predictions[0].dtype))
    front = predictions[0].new_zeros(())
    side = predictions[0].new_zeros(())
    for logits in predictions:
        occupancy = torch.sigmoid(logits)
        front = front + _bce(front_view(occupancy), silhouette)
        side = side + _bce(side_view(occupancy), side_target)
    return front, side


def part_voxel_cross_entropy(predictions: Sequence[Tensor], target: Tensor) -> Tensor:
    """Multi-class cross-entropy of each stack's part scores (B, K, D, H, W) against class
    labels (B, D, H, W) (0 background), summed over stacks."""
    return sum(
        (F.cross_entropy(p, target.long()) for p in predictions), predictions[0].new_zeros(())
    )


def part_views(probabilities: Tensor, dim: int) -> Tensor:
    """Views of per-class probabilities (B, K, D, H, W) along `dim` (-3 front, -1 side): the
    max for the parts (classes 1..K-1), the min for the background (class 0)."""
    background = probabilities[:, :1].amin(dim=dim)
    parts = probabilities[:, 1:].amax(dim=dim)
    return torch.cat((background, parts), dim=1)


def part_reprojection_losses(
    predictions: Sequence[Tensor], front_labels: Tensor, voxel_labels: Tensor
) -> tuple[Tensor, Tensor]:
    """Appendix B.3: one BCE per class and view (2 K terms), averaged over classes, summed over
    stacks: (front, side).

    Args:
        predictions: per stack part scores (B, K, D, H, W).
        front_labels: (B, H, W) ground-truth class of each pixel (the 2D segmentation grouped
            into the K classes, at the grid's resolution).
        voxel_labels: (B, D, H, W) ground-truth class of each voxel.
    """
    classes = predictions[0].shape[1]
    front_target = F.one_hot(front_labels.long(), classes).movedim(-1, 1)  # (B, K, H, W)
    voxel_one_hot = F.one_hot(voxel_labels.long(), classes).movedim(-1, 1)  # (B, K, D, H, W)
    side_target = part_views(voxel_one_hot.to(predictions[0].dtype), dim=-1)  # (B, K, D, H)
    front = predictions[0].new_zeros(())
    side = predictions[0].new_zeros(())
    for scores in predictions:
        probabilities = scores.softmax(dim=1)
        front = front + _bce(part_views(probabilities, dim=-3), front_target)
        side = side + _bce(part_views(probabilities, dim=-1), side_target)
    return front, side
