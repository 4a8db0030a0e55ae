"""Volumetric metrics of BodyNet: voxel IoU and 3D body-part IoU (metrics.md), percent.

Volumes are (B, D, H, W) in DESIGN.md's layout. BodyNet's voxel IoU is per sample: threshold
the predicted occupancy (``>= threshold``), intersection over union on the grid, then the mean
over samples (an aggregate intersection / union over the whole set is a different number). A
sample whose prediction and ground truth are both empty has no IoU and is skipped.

3D part IoU (BodyNet appendix B.3) is per class over the whole set (intersections and unions
summed over samples), the labels being the argmax over the class scores; the foreground IoU
merges every non-background class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from metrics._checks import Inputs, check_positive
from metrics.base import SuiteMetric, safe_ratio
from metrics.segmentation import check_labels, class_names_or_default, confusion_matrix


def voxel_iou_per_sample(occupied: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """IoU (B,) of bool (B, ...) volumes; valid (B,) is False where the union is empty."""
    intersection = (occupied & target).flatten(1).sum(dim=1)
    union = (occupied | target).flatten(1).sum(dim=1)
    return intersection / union.clamp_min(1), union > 0


class VoxelIoU(SuiteMetric):
    """BodyNet's voxel IoU, percent: per-sample IoU averaged over samples (module docstring).

    Args:
        threshold: a voxel is predicted occupied where its probability is ``>= threshold``.

    ``update(preds (B, D, H, W) probabilities (or an already thresholded bool occupancy),
    target (B, D, H, W) bool)``.
    """

    default_name = "voxel_iou_pct"
    higher_is_better = True
    iou_sum: Tensor
    num_samples: Tensor

    def __init__(self, threshold: float = 0.5, name: str | None = None, **kwargs: Any) -> None:
        check_positive(type(self).__name__, "threshold", threshold)
        super().__init__(name, **kwargs)
        self.threshold = float(threshold)
        self._add_sum_state("iou_sum")
        self._add_sum_state("num_samples", integer=True)

    def update(self, preds: Tensor, target: Tensor) -> None:
        inputs = Inputs(self.where)
        is_mask = isinstance(preds, Tensor) and preds.dtype == torch.bool
        inputs.check(preds, "preds", ("B", "D", "H", "W"), kind="bool" if is_mask else "float")
        inputs.check(target, "target", ("B", "D", "H", "W"), kind="bool")
        occupied = preds if is_mask else preds >= self.threshold
        iou, valid = voxel_iou_per_sample(occupied, target)
        self.iou_sum += iou[valid].sum().to(self.iou_sum)
        self.num_samples += valid.sum().to(self.num_samples)

    def compute(self) -> Tensor:
        return 100.0 * safe_ratio(self.iou_sum, self.num_samples)


class PartVoxelIoU(SuiteMetric):
    """3D body-part IoU over the set, percent (module docstring).

    Args:
        num_classes: C, background (class 0) included (BodyNet: 6 parts + background = 7).
        class_names: a name per class for the result keys (default ``class_<c>``).

    ``update(preds (B, C, D, H, W) scores, target (B, D, H, W) int labels in [0, C))``.
    ``compute()``: ``{"<class name>": IoU, ..., "foreground": IoU of the merged parts, "mean":
    mean over the part classes (background excluded) that occur}``; a class that never occurs
    in prediction or ground truth has IoU NaN.
    """

    default_name = "part_voxel_iou"
    higher_is_better = True
    intersection: Tensor
    union: Tensor
    foreground_intersection: Tensor
    foreground_union: Tensor

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.class_names = class_names_or_default(type(self).__name__, num_classes, class_names)
        super().__init__(name, **kwargs)
        self.num_classes = num_classes
        self._add_sum_state("intersection", (num_classes,), integer=True)
        self._add_sum_state("union", (num_classes,), integer=True)
        self._add_sum_state("foreground_intersection", integer=True)
        self._add_sum_state("foreground_union", integer=True)

    def update(self, preds: Tensor, target: Tensor) -> None:
        inputs = Inputs(self.where)
        inputs.check(preds, "preds", ("B", self.num_classes, "D", "H", "W"))
        inputs.check(target, "target", ("B", "D", "H", "W"), kind="int")
        check_labels(inputs, target, "target", self.num_classes)
        labels = preds.argmax(dim=1)
        confusion = confusion_matrix(labels, target, self.num_classes)
        intersection = confusion.diagonal()
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - intersection
        self.intersection += intersection.to(self.intersection)
        self.union += union.to(self.union)
        fg_iou_counts = ((labels > 0) & (target > 0)).sum(), ((labels > 0) | (target > 0)).sum()
        self.foreground_intersection += fg_iou_counts[0].to(self.foreground_intersection)
        self.foreground_union += fg_iou_counts[1].to(self.foreground_union)

    def key_units(self) -> dict[str, str]:
        return dict.fromkeys((*self.class_names, "foreground", "mean"), "pct")

    def compute(self) -> dict[str, Tensor]:
        iou = 100.0 * safe_ratio(self.intersection, self.union)
        result = dict(zip(self.class_names, iou, strict=True))
        result["foreground"] = 100.0 * safe_ratio(
            self.foreground_intersection, self.foreground_union
        )
        result["mean"] = iou[1:].nanmean()
        return result
