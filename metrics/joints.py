"""Single-person 3D joint metrics: MPJPE, PA-MPJPE, 3DPCK and its AUC (metrics.md).

Inputs are poses (B, J, 3) in metres, prediction and ground truth in the same joint order, with
an optional ``visible`` (B, J) bool mask of the joints to evaluate. The root joint (for
root-relative errors) is subtracted whatever the mask says, so the root need not be among the
evaluated joints (3DPW and Human3.6M evaluate 14 LSP joints rooted at the H36M pelvis).

Per-sample values are means over the visible joints; a sample with no visible joint is skipped
(it adds nothing to the sum or to the count). PCK pools all visible joints of all samples.
Computations run in float64 on millimetres.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from geometry import procrustes_align
from metrics._checks import Inputs, check_choice, check_positive, check_root_index
from metrics.base import SuiteMetric, safe_ratio

MM_PER_M = 1000.0


# ----------------------------------------------------------------------------- pure functions


def root_relative(joints: Tensor, root_index: int | None) -> Tensor:
    """(B, J, 3) joints minus each pose's root joint; an unchanged copy for ``root_index`` None."""
    if root_index is None:
        return joints.clone()
    return joints - joints[:, root_index : root_index + 1]


def joint_errors(preds: Tensor, target: Tensor) -> Tensor:
    """Euclidean distances (B, J) between (B, J, D) point sets, in their unit."""
    return torch.linalg.vector_norm(preds - target, dim=-1)


def masked_mean(values: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-row mean of (B, N) values over a (B, N) bool mask.

    Returns (means (B,), valid (B,) bool); rows with no masked entry are not valid and their
    mean is 0 (never read).
    """
    if mask is None:
        mask = torch.ones_like(values, dtype=torch.bool)
    counts = mask.sum(dim=1)
    sums = torch.where(mask, values, torch.zeros_like(values)).sum(dim=1)
    return sums / counts.clamp_min(1), counts > 0


def mpjpe_per_sample(
    preds: Tensor, target: Tensor, visible: Tensor | None = None, root_index: int | None = 0
) -> tuple[Tensor, Tensor]:
    """Per-sample MPJPE in the input unit, after root alignment (none when ``root_index`` is None).

    Returns (errors (B,), valid (B,) bool: the sample has a visible joint).
    """
    errors = joint_errors(root_relative(preds, root_index), root_relative(target, root_index))
    return masked_mean(errors, visible)


def pa_mpjpe_per_sample(
    preds: Tensor, target: Tensor, visible: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-sample PA-MPJPE in the input unit: similarity Procrustes of each prediction onto its
    ground truth (fitted on the visible joints only, reflections excluded), then the mean error
    over the visible joints. Returns (errors (B,), valid (B,) bool)."""
    weights = None if visible is None else visible.to(preds.dtype)
    aligned = procrustes_align(preds, target, weights)
    return masked_mean(joint_errors(aligned, target), visible)


def pck_counts(
    errors: Tensor, visible: Tensor | None, thresholds: Tensor, inclusive: bool
) -> tuple[Tensor, Tensor]:
    """Correct-joint counts for each threshold, pooled over all visible joints.

    Args:
        errors: (B, J) joint errors; thresholds: (T,) in the same unit.
        inclusive: count ``error <= threshold`` as correct; strict ``<`` otherwise.

    Returns:
        (correct (T,) int64, total () int64: the number of visible joints).
    """
    if visible is None:
        visible = torch.ones_like(errors, dtype=torch.bool)
    pooled = errors[visible]  # (N,)
    below = pooled[None] <= thresholds[:, None] if inclusive else pooled[None] < thresholds[:, None]
    return below.sum(dim=1), visible.sum()


def auc_from_pck(pck: Tensor, integration: str = "mean") -> Tensor:
    """Area under a PCK curve sampled on an evenly spaced threshold grid, in PCK's unit.

    ``"mean"``: the mean of the points (MPI-INF-3DHP / MuPoTS-3D MATLAB scripts); ``"trapezoid"``:
    the integral of the piecewise linear curve over the threshold range divided by its length
    (the 3DPW challenge evaluator integrates ``np.interp`` over [0, 1]).
    """
    if integration == "mean" or pck.numel() == 1:
        return pck.mean()
    return (pck.sum() - 0.5 * (pck[0] + pck[-1])) / (pck.numel() - 1)


# ----------------------------------------------------------------------------- metric classes


def _joint_inputs(
    where: str, preds: Any, target: Any, visible: Any, root_index: int | None
) -> tuple[Tensor, Tensor, Tensor | None, int | None]:
    """Checked (B, J, 3) poses converted to float64 millimetres, the mask, the root index."""
    inputs = Inputs(where)
    inputs.check(preds, "preds", ("B", "J", 3))
    inputs.check(target, "target", ("B", "J", 3))
    mask = inputs.optional_mask(visible, "visible", ("B", "J"))
    root = inputs.index(root_index, "root_index", preds.shape[1])
    return preds.double() * MM_PER_M, target.double() * MM_PER_M, mask, root


class _PerSampleMean(SuiteMetric):
    """Mean over samples of a per-sample value: float64 sum and int64 count states."""

    higher_is_better = False
    value_sum: Tensor
    num_samples: Tensor

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._add_sum_state("value_sum")
        self._add_sum_state("num_samples", integer=True)

    def _accumulate(self, values: Tensor, valid: Tensor) -> None:
        self.value_sum += values[valid].sum().to(self.value_sum)
        self.num_samples += valid.sum().to(self.num_samples)

    def compute(self) -> Tensor:
        return safe_ratio(self.value_sum, self.num_samples)


class MPJPE(_PerSampleMean):
    """Mean per-joint position error in mm (metrics.md "MPJPE").

    Per sample: the mean Euclidean error over the visible joints after subtracting each pose's
    own root joint (``root_index``; None: no alignment, the absolute error); then the mean over
    samples.

    Args:
        root_index: joint subtracted from every joint of each pose (prediction and ground truth
            separately), whatever ``visible`` says; None for absolute errors.
        name: log / results key (default ``mpjpe_mm``).

    ``update(preds (B, J, 3), target (B, J, 3), visible (B, J) bool or None)``, metres.
    """

    default_name = "mpjpe_mm"

    def __init__(self, root_index: int | None = 0, name: str | None = None, **kwargs: Any) -> None:
        check_root_index(type(self).__name__, root_index)
        super().__init__(name, **kwargs)
        self.root_index = root_index

    def update(self, preds: Tensor, target: Tensor, visible: Tensor | None = None) -> None:
        preds_mm, target_mm, mask, root = _joint_inputs(
            self.where, preds, target, visible, self.root_index
        )
        self._accumulate(*mpjpe_per_sample(preds_mm, target_mm, mask, root))


class PAMPJPE(_PerSampleMean):
    """Procrustes-aligned MPJPE in mm (metrics.md "PA-MPJPE", also "reconstruction error").

    Per sample: the similarity transform (scale, proper rotation, translation; a mirrored pose
    is not aligned away) taking the prediction onto the ground truth, fitted on the visible
    joints (``geometry.similarity_procrustes``, correct for every batch size and joint count),
    then the mean error over the visible joints; then the mean over samples.

    ``update(preds (B, J, 3), target (B, J, 3), visible (B, J) bool or None)``, metres.
    """

    default_name = "pa_mpjpe_mm"

    def update(self, preds: Tensor, target: Tensor, visible: Tensor | None = None) -> None:
        preds_mm, target_mm, mask, _ = _joint_inputs(self.where, preds, target, visible, None)
        self._accumulate(*pa_mpjpe_per_sample(preds_mm, target_mm, mask))


class _PCKBase(SuiteMetric):
    """Pooled correct-joint counts on a threshold grid (mm), root-relative errors."""

    higher_is_better = True
    correct: Tensor
    total: Tensor

    def __init__(
        self,
        thresholds_mm: Tensor,
        inclusive: bool,
        root_index: int | None,
        name: str | None,
        **kwargs: Any,
    ) -> None:
        check_root_index(type(self).__name__, root_index)
        super().__init__(name, **kwargs)
        self.inclusive = bool(inclusive)
        self.root_index = root_index
        self.thresholds_mm = thresholds_mm.to(torch.float64)
        self._add_sum_state("correct", (len(thresholds_mm),), integer=True)
        self._add_sum_state("total", integer=True)

    def update(self, preds: Tensor, target: Tensor, visible: Tensor | None = None) -> None:
        preds_mm, target_mm, mask, root = _joint_inputs(
            self.where, preds, target, visible, self.root_index
        )
        errors = joint_errors(root_relative(preds_mm, root), root_relative(target_mm, root))
        thresholds = self.thresholds_mm.to(errors.device)
        correct, total = pck_counts(errors, mask, thresholds, self.inclusive)
        self.correct += correct.to(self.correct)
        self.total += total.to(self.total)

    def _pck_percent(self) -> Tensor:
        return 100.0 * safe_ratio(self.correct, self.total)


class PCK3D(_PCKBase):
    """3D percentage of correct keypoints (metrics.md "3DPCK and AUC"), percent.

    The share of all visible joints (pooled over samples) whose root-relative error is below
    ``threshold_mm`` (strict ``<``, MPI-INF-3DHP and MuPoTS-3D) or at most it
    (``inclusive=True``, the 3DPW challenge's ``<=`` at 50 mm).

    ``update(preds (B, J, 3), target (B, J, 3), visible (B, J) bool or None)``, metres.
    """

    default_name = "pck3d_pct"

    def __init__(
        self,
        threshold_mm: float = 150.0,
        inclusive: bool = False,
        root_index: int | None = 0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_positive(type(self).__name__, "threshold_mm", threshold_mm, allow_zero=True)
        self.threshold_mm = float(threshold_mm)
        super().__init__(torch.tensor([threshold_mm]), inclusive, root_index, name, **kwargs)

    def compute(self) -> Tensor:
        return self._pck_percent()[0]


class AUC3D(_PCKBase):
    """Area under the 3DPCK curve, percent (metrics.md "3DPCK and AUC").

    PCK (pooled, as ``PCK3D``) on ``linspace(0, max_threshold_mm, num_thresholds)``, combined by
    ``integration``: ``"mean"`` of the points (MPI-INF-3DHP / MuPoTS-3D: 0, 5, ..., 150 mm, strict;
    a perfect prediction scores 30/31 = 96.77 because the 0 mm point counts nothing) or
    ``"trapezoid"`` (the 3DPW challenge: thresholds 0..199 mm, ``inclusive=True``).

    ``update(preds (B, J, 3), target (B, J, 3), visible (B, J) bool or None)``, metres.
    """

    default_name = "auc3d_pct"

    def __init__(
        self,
        max_threshold_mm: float = 150.0,
        num_thresholds: int = 31,
        inclusive: bool = False,
        root_index: int | None = 0,
        integration: str = "mean",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        check_positive(owner, "max_threshold_mm", max_threshold_mm)
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int):
            raise ValueError(f"{owner}: num_thresholds must be an int, got {num_thresholds!r}")
        check_positive(owner, "num_thresholds", num_thresholds)
        check_choice(owner, "integration", integration, ("mean", "trapezoid"))
        self.integration = integration
        thresholds = torch.linspace(0.0, max_threshold_mm, num_thresholds, dtype=torch.float64)
        super().__init__(thresholds, inclusive, root_index, name, **kwargs)

    def compute(self) -> Tensor:
        return auc_from_pck(self._pck_percent(), self.integration)
