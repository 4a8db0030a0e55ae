"""LoCO's joint detection precision, recall and F1 (LoCO tables 2 to 4; metrics.md), percent.

Predictions and ground truth of an image are joints ``(joint type, x, y, z)``, all types pooled
in one matrix. A (ground truth, prediction) pair is a candidate when the types are equal and
the distance is at most the threshold (metres for LoCO's table 3, voxels for the VHA
compression F1 of table 2). Matching is LoCO's two-pass non-minimum suppression
(``test_metrics.py``), which is not Hungarian: keep the smallest candidate of every
ground-truth row (the first one on ties), then, among those, the smallest of every prediction
column (the first one on ties). TP = ground-truth joints with a surviving pair, FN = the
others, FP = predictions - TP. Per image precision TP / (TP + FP), recall TP / (TP + FN) and
F1 2 TP / (2 TP + FN + FP); an image with neither predictions nor ground truth scores 1, 1, 1,
one with only one of the two 0, 0, 0. The reported values are means over images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from metrics._checks import Inputs, check_positive
from metrics.base import SuiteMetric, safe_ratio

LOCO_THRESHOLDS_M = (0.4, 0.8, 1.2)


def first_minimum_mask(costs: Tensor, dim: int) -> Tensor:
    """bool mask of the first finite minimum along ``dim`` (one per line at most)."""
    if costs.numel() == 0:
        return torch.zeros_like(costs, dtype=torch.bool)
    index = costs.argmin(dim=dim, keepdim=True)  # argmin returns the first minimum
    keep = torch.zeros_like(costs, dtype=torch.bool).scatter_(dim, index, True)
    return keep & torch.isfinite(costs)


def loco_true_positives(preds: Tensor, target: Tensor, thresholds: Sequence[float]) -> list[int]:
    """TP of LoCO's two-pass matching of (N, 4) predictions and (M, 4) ground-truth joints, for
    each threshold (the distances are computed once)."""
    if len(preds) == 0 or len(target) == 0:
        return [0] * len(thresholds)
    distances = torch.cdist(target[:, 1:].double(), preds[:, 1:].double())  # (M, N)
    same_type = target[:, None, 0] == preds[None, :, 0]
    inf = torch.full_like(distances, math.inf)
    counts = []
    for threshold in thresholds:
        candidate = same_type & (distances <= threshold)
        rows = first_minimum_mask(torch.where(candidate, distances, inf), dim=1)
        columns = first_minimum_mask(torch.where(rows, distances, inf), dim=0)
        counts.append(int(columns.any(dim=1).sum()))
    return counts


def detection_scores(
    true_positives: int, num_preds: int, num_target: int
) -> tuple[float, float, float]:
    """(precision, recall, F1) as fractions, with LoCO's empty-side rules (module docstring)."""
    if num_preds == 0 and num_target == 0:
        return 1.0, 1.0, 1.0
    if num_preds == 0 or num_target == 0:
        return 0.0, 0.0, 0.0
    false_positives = num_preds - true_positives
    false_negatives = num_target - true_positives
    precision = true_positives / num_preds
    recall = true_positives / num_target
    f1 = 2 * true_positives / (2 * true_positives + false_negatives + false_positives)
    return precision, recall, f1


class JointDetectionScores(SuiteMetric):
    """LoCO's per-image joint detection scores averaged over images, percent (module docstring).

    Args:
        thresholds: distances at which a same-type pair is a candidate, in the coordinates'
            unit (LoCO: 0.4, 0.8, 1.2 m; VHA: 0, 1, 2 voxels).

    ``update(preds, target)``: one entry per image in each list, ``preds[i]`` (N_i, 4) and
    ``target[i]`` (M_i, 4) rows of (joint type, x, y, z).
    ``compute()``: ``{"precision@<t>", "recall@<t>", "f1@<t>"}`` for every threshold t.
    """

    default_name = "joint_detection"
    higher_is_better = True
    score_sums: Tensor
    num_images: Tensor

    def __init__(
        self,
        thresholds: Sequence[float] = LOCO_THRESHOLDS_M,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        thresholds = tuple(float(t) for t in thresholds)
        if not thresholds or len(set(thresholds)) != len(thresholds):
            raise ValueError(f"JointDetectionScores: thresholds must be distinct, got {thresholds}")
        for threshold in thresholds:
            check_positive(type(self).__name__, "thresholds", threshold, allow_zero=True)
        super().__init__(name, **kwargs)
        self.thresholds = thresholds
        # Sums over images of the per-image (precision, recall, F1), one row per threshold.
        self._add_sum_state("score_sums", (len(thresholds), 3))
        self._add_sum_state("num_images", integer=True)

    def update(self, preds: Sequence[Tensor], target: Sequence[Tensor]) -> None:
        if len(preds) != len(target):
            raise ValueError(
                f"{self.where}: preds and target must list the same images, "
                f"got {len(preds)} and {len(target)}"
            )
        for index, (pred, truth) in enumerate(zip(preds, target, strict=True)):
            inputs = Inputs(f"{self.where}: image {index}")
            inputs.check(pred, "preds", ("N", 4))
            inputs.check(truth, "target", ("M", 4))
            scores = [
                detection_scores(true_positives, len(pred), len(truth))
                for true_positives in loco_true_positives(pred, truth, self.thresholds)
            ]
            self.score_sums += torch.tensor(scores, dtype=torch.float64, device=self.device)
            self.num_images += 1

    def _keys(self) -> list[str]:
        return [
            f"{score}@{t:g}" for t in self.thresholds for score in ("precision", "recall", "f1")
        ]

    def key_units(self) -> dict[str, str]:
        return dict.fromkeys(self._keys(), "pct")

    def compute(self) -> dict[str, Tensor]:
        means = 100.0 * safe_ratio(self.score_sums, self.num_images.expand_as(self.score_sums))
        return dict(zip(self._keys(), means.flatten(), strict=True))
