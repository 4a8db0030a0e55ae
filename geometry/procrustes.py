"""Similarity Procrustes alignment (Umeyama 1991), the one used by PA-MPJPE and PA-PVE.

Finds, per sample, the scale s >= 0, proper rotation R (det +1) and translation t minimising
``sum_i w_i |target_i - (s R source_i + t)|^2``:

1. centre both point sets on their (weighted) means;
2. SVD of the 3x3 cross-covariance ``sum_i w_i target_c_i source_c_i^T = U diag(S) V^T``;
3. ``R = U diag(1, 1, d) V^T`` with ``d = det(U V^T)``, so a mirrored pose is NOT aligned away;
4. ``s = (S_0 + S_1 + d S_2) / sum_i w_i |source_c_i|^2`` (= trace(R K) / |source_c|_F^2);
5. ``t = mean_target - s R mean_source``.

Step 2-3 is roma's ``special_procrustes`` (SVD with sign correction, and damped gradients
where the rotation is ambiguous). The rest is written here because the ready-made versions
compute something else or fail on the cases the metrics meet: ``scipy.spatial.procrustes``
and torchmetrics' ``ProcrustesDisparity`` normalise both sets to unit norm and allow
reflections; roma's ``rigid_points_registration`` returns NaN for a collapsed source or
all-zero weights and computes in the input precision. The code never transposes based on
shapes, so it is correct for every batch size and every joint count (the heuristic copied
through many public repositories breaks batches of 2 or 3 and poses of 2 or 3 joints).

Computations run in float64 on the inputs' device; results come back in the input dtype.
"""

from __future__ import annotations

import roma
import torch
from torch import Tensor

# Relative spread below which a source counts as a single point (see similarity_procrustes).
_DEGENERATE_RELATIVE_SPREAD = 1e-10


def _check_shapes(source: Tensor, target: Tensor, weights: Tensor | None) -> None:
    if source.dim() < 2 or source.shape[-1] != 3:
        raise ValueError(f"source must have shape (..., N, 3), got {tuple(source.shape)}")
    if source.shape != target.shape:
        raise ValueError(
            f"source and target shapes differ: {tuple(source.shape)} vs {tuple(target.shape)}"
        )
    if weights is not None and weights.shape != source.shape[:-1]:
        raise ValueError(
            f"weights must have shape {tuple(source.shape[:-1])}, got {tuple(weights.shape)}"
        )


def _weighted_mean(points: Tensor, weights: Tensor, total: Tensor) -> Tensor:
    """(..., N, 3) points, (..., N, 1) weights, (..., 1) total -> (..., 3) weighted mean."""
    return (weights * points).sum(dim=-2) / total.clamp_min(torch.finfo(total.dtype).tiny)


def similarity_procrustes(
    source: Tensor, target: Tensor, weights: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Similarity transform taking ``source`` onto ``target``: target ~ s R source + t.

    Args:
        source: (..., N, 3) points to align (the prediction, for PA-MPJPE), any unit.
        target: (..., N, 3) points in the same order (the ground truth), same unit.
        weights: optional (..., N) non-negative weights (0/1 visibility or confidences).
            Points with weight 0 do not influence the result at all. None means all ones.

    Returns:
        scale (...), rotation (..., 3, 3) with det +1 and translation (..., 3) in the unit of
        the points, all in the dtype of ``source``; ``apply_similarity`` applies them.

    Degenerate cases never give NaN: when the weighted source collapses to a single point
    (spread about its centroid below 1e-10 of its distance from the origin, e.g. all points
    equal, or all weights zero) the scale is 0, the translation is the target's weighted
    mean (0 if all weights are zero) and the rotation is some proper rotation. With N = 2, or
    collinear points, the rotation about the line is not determined; the aligned points are.
    """
    _check_shapes(source, target, weights)
    source64 = source.to(torch.float64)
    target64 = target.to(torch.float64)
    if weights is None:
        weights64 = torch.ones(source.shape[:-1], dtype=torch.float64, device=source.device)
    else:
        weights64 = weights.to(torch.float64)
    point_weights = weights64[..., None]  # (..., N, 1)
    total = point_weights.sum(dim=-2)  # (..., 1)

    mean_source = _weighted_mean(source64, point_weights, total)  # (..., 3)
    mean_target = _weighted_mean(target64, point_weights, total)
    centred_source = source64 - mean_source[..., None, :]
    centred_target = target64 - mean_target[..., None, :]
    cross_covariance = (point_weights * centred_target).transpose(-1, -2) @ centred_source

    # SVD with the smallest singular value's sign flipped when needed, so that det(R) = +1.
    rotation, signed_singular_values = roma.special_procrustes(
        cross_covariance, return_singular_values=True, method="svd"
    )
    source_spread = (point_weights * centred_source.square()).sum(dim=(-2, -1))  # (...)
    source_magnitude = (point_weights * source64.square()).sum(dim=(-2, -1))
    degenerate = source_spread <= _DEGENERATE_RELATIVE_SPREAD**2 * source_magnitude
    scale = torch.where(
        degenerate,
        torch.zeros_like(source_spread),
        signed_singular_values.sum(dim=-1) / torch.where(degenerate, 1.0, source_spread),
    )
    translation = mean_target - scale[..., None] * (rotation @ mean_source[..., None])[..., 0]
    return scale.to(source.dtype), rotation.to(source.dtype), translation.to(source.dtype)


def apply_similarity(
    points: Tensor, scale: Tensor, rotation: Tensor, translation: Tensor
) -> Tensor:
    """``scale * rotation @ p + translation`` for every point p.

    Args:
        points: (..., N, 3).
        scale: (...); rotation: (..., 3, 3); translation: (..., 3), as returned by
            ``similarity_procrustes``.

    Returns:
        (..., N, 3) transformed points.
    """
    rotated = points @ rotation.transpose(-1, -2)  # row vectors: (R p)^T = p^T R^T
    return scale[..., None, None] * rotated + translation[..., None, :]


def procrustes_align(source: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """``source`` (..., N, 3) aligned onto ``target`` by ``similarity_procrustes``."""
    scale, rotation, translation = similarity_procrustes(source, target, weights)
    return apply_similarity(source, scale, rotation, translation)
