"""Multi-person matching strategies (metrics.md "Matching"), each a named, tested function.

Every strategy matches the people of one image and returns, for each ground-truth person, the
index of its prediction, or -1 when it has none: an int64 tensor (M,) on the inputs' device.
The strategies differ, and each paper's table used its own; they are never mixed:

- ``argmin3d`` (CRMH's Panoptic evaluation): each ground-truth person takes the prediction with
  the smallest Euclidean distance between the flattened root-relative poses, on the joints
  visible for *all* ground-truth people of the image; several people may take the same
  prediction and misses are not penalised.
- ``greedy2d`` (BEV/ROMP): the pair with the smallest mean 2D keypoint distance is matched
  first, then the next among the unmatched, over pairs whose boxes overlap with IoU >= 0.05;
  the evaluation then charges each missed person 150 mm (``fill_missed``).
- ``hungarian``: the optimal one-to-one assignment on any cost matrix (scipy's
  ``linear_sum_assignment``), with an optional largest admissible cost.
- ``mupots_identity_matching``: MuPoTS-3D's own 2D rule
  (``mpii_multiperson_get_identity_matching.m``): ground-truth people in order, each takes
  among the not yet matched predictions the one with the most matching joints (both |dx| and
  |dy| below 40 px, joints 2..14 of the 17, predicted joints at (0, 0) count as missing), if
  that count is positive; the first best wins ties.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from body.joint_sets import subset_indices
from metrics.joints import root_relative

GREEDY2D_MIN_IOU = 0.05
MISSED_PERSON_PENALTY_MM = 150.0
MUPOTS_MATCHING_THRESHOLD_PX = 40.0
MATCHERS = ("argmin3d", "greedy2d", "hungarian", "mupots_identity_matching")


def _unmatched(num_target: int, device: torch.device) -> Tensor:
    return torch.full((num_target,), -1, dtype=torch.int64, device=device)


def argmin3d(
    preds: Tensor, target: Tensor, target_visible: Tensor | None = None, root_index: int | None = 0
) -> Tensor:
    """CRMH's Panoptic matching (module docstring).

    Args:
        preds: (N, J, 3) predicted poses; target: (M, J, 3) ground truth, same joint order.
        target_visible: (M, J) bool; the joints compared are those visible in every row.
        root_index: joint subtracted from each pose first (None: poses are compared as given).

    Returns:
        (M,) int64 prediction index per ground-truth person (-1 for all when N = 0).
    """
    if len(preds) == 0 or len(target) == 0:
        return _unmatched(len(target), target.device)
    shared = torch.ones(target.shape[1], dtype=torch.bool, device=target.device)
    if target_visible is not None:
        shared = target_visible.all(dim=0)
    pred_rel = root_relative(preds, root_index)[:, shared].flatten(1)  # (N, 3 J')
    target_rel = root_relative(target, root_index)[:, shared].flatten(1)  # (M, 3 J')
    distances = torch.cdist(target_rel.double(), pred_rel.double())  # (M, N)
    return distances.argmin(dim=1)


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """(A, B) IoU of xyxy boxes (A, 4) and (B, 4); 0 where both boxes are empty."""
    low = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    high = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    intersection = (high - low).clamp_min(0).prod(dim=-1)
    area_a = (boxes_a[:, 2:] - boxes_a[:, :2]).clamp_min(0).prod(dim=-1)
    area_b = (boxes_b[:, 2:] - boxes_b[:, :2]).clamp_min(0).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return intersection / union.clamp_min(torch.finfo(union.dtype).tiny)


def mean_keypoint_distances(preds: Tensor, target: Tensor, target_visible: Tensor) -> Tensor:
    """(M, N) mean 2D distance over each ground-truth person's visible joints (inf if none)."""
    distances = torch.linalg.vector_norm(target[:, None] - preds[None], dim=-1)  # (M, N, J)
    mask = target_visible[:, None].expand_as(distances)
    counts = mask.sum(dim=-1)
    mean = torch.where(mask, distances, torch.zeros_like(distances)).sum(dim=-1) / counts.clamp_min(
        1
    )
    return torch.where(counts > 0, mean, torch.full_like(mean, math.inf))


def greedy_assignment(cost: Tensor) -> Tensor:
    """Greedy one-to-one matching on an (M, N) cost (inf = not allowed): cheapest pair first.

    Ties are broken by the row-major order of the pairs. Returns (M,) int64, -1 unmatched.
    """
    matches = _unmatched(cost.shape[0], cost.device)
    if cost.numel() == 0:
        return matches
    order = torch.argsort(cost.flatten(), stable=True)
    order = order[torch.isfinite(cost.flatten()[order])]
    used_rows = torch.zeros(cost.shape[0], dtype=torch.bool)
    used_cols = torch.zeros(cost.shape[1], dtype=torch.bool)
    for flat in order.tolist():
        row, col = divmod(flat, cost.shape[1])
        if not used_rows[row] and not used_cols[col]:
            matches[row] = col
            used_rows[row] = used_cols[col] = True
    return matches


def greedy2d(
    preds: Tensor,
    target: Tensor,
    target_visible: Tensor,
    pred_boxes: Tensor,
    target_boxes: Tensor,
    min_iou: float = GREEDY2D_MIN_IOU,
) -> Tensor:
    """BEV/ROMP's greedy 2D matching (module docstring).

    Args:
        preds: (N, J, 2) predicted keypoints; target: (M, J, 2) ground truth, pixels.
        target_visible: (M, J) bool, the joints that count in the mean distance.
        pred_boxes, target_boxes: (N, 4), (M, 4) xyxy boxes; pairs with IoU below ``min_iou``
            are never matched.

    Returns:
        (M,) int64 prediction index per ground-truth person, -1 for a miss.
    """
    if len(preds) == 0 or len(target) == 0:
        return _unmatched(len(target), target.device)
    cost = mean_keypoint_distances(preds.double(), target.double(), target_visible)
    overlapping = box_iou(target_boxes.double(), pred_boxes.double()) >= min_iou
    return greedy_assignment(torch.where(overlapping, cost, torch.full_like(cost, math.inf)))


def hungarian(cost: Tensor, max_cost: float = math.inf) -> Tensor:
    """Optimal one-to-one assignment of rows (ground truth) to columns (predictions).

    Args:
        cost: (M, N); entries above ``max_cost`` or non-finite are not admissible.

    Returns:
        (M,) int64 column per row, -1 where a row gets no admissible column. Among the
        assignments with the most admissible pairs, the one of least total cost.
    """
    matches = _unmatched(cost.shape[0], cost.device)
    if cost.numel() == 0:
        return matches
    values = cost.detach().double().cpu().numpy()
    admissible = np.isfinite(values) & (values <= max_cost)
    if not admissible.any():
        return matches
    big = 1.0 + 2.0 * np.abs(values[admissible]).max() * max(values.shape)  # above any real sum
    rows, cols = linear_sum_assignment(np.where(admissible, values, big))
    keep = admissible[rows, cols]
    rows_kept = torch.as_tensor(rows[keep], device=cost.device)
    matches[rows_kept] = torch.as_tensor(cols[keep], device=cost.device)
    return matches


def mupots_identity_matching(
    preds: Tensor, target: Tensor, threshold_px: float = MUPOTS_MATCHING_THRESHOLD_PX
) -> Tensor:
    """MuPoTS-3D's identity matching on (N, 17, 2) and (M, 17, 2) mupots_17 keypoints, pixels.

    Returns (M,) int64 prediction index per ground-truth person, -1 when unmatched.
    """
    joints = subset_indices("mupots_17", "matching")
    matches = _unmatched(len(target), target.device)
    if len(preds) == 0 or len(target) == 0:
        return matches
    pred_joints, target_joints = preds[:, joints].double(), target[:, joints].double()
    pred_present = ~(pred_joints == 0).all(dim=-1)  # (N, J'): (0, 0) means not predicted
    close = ((target_joints[:, None] - pred_joints[None]).abs() < threshold_px).all(dim=-1)
    scores = (close & pred_present[None]).sum(dim=-1)  # (M, N): the ground truth is all visible
    taken = torch.zeros(len(preds), dtype=torch.bool, device=preds.device)
    for row in range(len(target)):
        row_scores = torch.where(taken, torch.zeros_like(scores[row]), scores[row])
        best = int(row_scores.argmax())
        if row_scores[best] > 0:
            matches[row] = best
            taken[best] = True
    return matches


def fill_missed(
    errors: Tensor, matches: Tensor, penalty: float = MISSED_PERSON_PENALTY_MM
) -> Tensor:
    """Per-person errors (M,) with every unmatched person (``matches == -1``) set to ``penalty``
    (BEV/ROMP charge a missed person 150 mm)."""
    return torch.where(matches >= 0, errors, torch.full_like(errors, penalty))
