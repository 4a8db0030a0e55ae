"""2D segmentation scores: silhouettes (BodyNet table 3, UP-3D) and part segmentation, percent.

All counts are accumulated over the whole test set (pixels of every image, at whatever
resolution each update has), then turned into scores once (metrics.md):

- silhouettes: ``accuracy`` = correct pixels / pixels; ``iou_fg`` = foreground intersection over
  union; ``f1_fg`` = foreground F1 (BodyNet's text: "F1-score computed for foreground pixels");
  ``f1_mean`` = the mean of the foreground and background F1 (SPIN's UP-3D evaluator). BodyNet's
  table uses ``f1_fg``. Pixels under ``ignore`` count for nothing.
- parts: a confusion matrix over the classes (pixels whose target is ``ignore_index``, 255 in
  UP-3D's part annotations, are dropped); per-class IoU, their mean over the foreground classes
  (class 0 is background), the macro F1 over all classes background included (UP-3D's 6 parts +
  background, as SPIN), and the pixel accuracy. A class absent from both prediction and
  ground truth has NaN scores and is left out of the means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from metrics._checks import Inputs
from metrics.base import SuiteMetric, safe_ratio

# ----------------------------------------------------------------------------- pure functions


def confusion_matrix(
    labels: Tensor, target: Tensor, num_classes: int, valid: Tensor | None = None
) -> Tensor:
    """(C, C) int64 counts: entry [t, p] counts elements with target t and prediction p.

    ``labels`` and ``target`` hold classes in [0, C); ``valid`` (same shape, bool) selects the
    elements that count.
    """
    if valid is not None:
        labels, target = labels[valid], target[valid]
    pairs = target.flatten().long() * num_classes + labels.flatten().long()
    counts = torch.bincount(pairs, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def binary_counts(
    preds: Tensor, target: Tensor, ignore: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(true positives, false positives, false negatives, true negatives) of bool masks."""
    keep = torch.ones_like(target) if ignore is None else ~ignore
    tp = (preds & target & keep).sum()
    fp = (preds & ~target & keep).sum()
    fn = (~preds & target & keep).sum()
    tn = (~preds & ~target & keep).sum()
    return tp, fp, fn, tn


def f1_from_counts(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
    """2 TP / (2 TP + FP + FN), NaN where that is 0 / 0."""
    return safe_ratio(2 * tp, 2 * tp + fp + fn)


def class_names_or_default(
    owner: str, num_classes: int, names: Sequence[str] | None
) -> tuple[str, ...]:
    """Checked result-key names of C classes (default ``class_<c>``)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"{owner}: num_classes must be an int >= 2, got {num_classes!r}")
    if names is None:
        return tuple(f"class_{c}" for c in range(num_classes))
    names = tuple(names)
    if len(names) != num_classes or len(set(names)) != num_classes:
        raise ValueError(f"{owner}: class_names must be {num_classes} distinct names, got {names}")
    return names


def check_labels(
    inputs: Inputs, labels: Tensor, name: str, num_classes: int, ignore_index: int | None = None
) -> None:
    """Labels must lie in [0, num_classes) or equal ``ignore_index``."""
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        valid |= labels == ignore_index
    if not bool(valid.all()):
        bad = labels[~valid][0].item()
        allowed = f"[0, {num_classes})" + ("" if ignore_index is None else f" or {ignore_index}")
        raise inputs.fail(f"{name} holds label {bad}, outside {allowed}")


# ----------------------------------------------------------------------------- metric classes


class SilhouetteScores(SuiteMetric):
    """Foreground/background silhouette scores over the set, percent (module docstring).

    ``update(preds (B, H, W) bool, target (B, H, W) bool, ignore (B, H, W) bool or None)``.
    ``compute()``: ``{"accuracy", "iou_fg", "f1_fg", "f1_mean"}``.
    """

    default_name = "silhouette"
    higher_is_better = True
    tp: Tensor
    fp: Tensor
    fn: Tensor
    tn: Tensor

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        for state in ("tp", "fp", "fn", "tn"):
            self._add_sum_state(state, integer=True)

    def update(self, preds: Tensor, target: Tensor, ignore: Tensor | None = None) -> None:
        inputs = Inputs(self.where)
        inputs.check(preds, "preds", ("B", "H", "W"), kind="bool")
        inputs.check(target, "target", ("B", "H", "W"), kind="bool")
        mask = inputs.optional_mask(ignore, "ignore", ("B", "H", "W"))
        tp, fp, fn, tn = binary_counts(preds, target, mask)
        self.tp += tp.to(self.tp)
        self.fp += fp.to(self.fp)
        self.fn += fn.to(self.fn)
        self.tn += tn.to(self.tn)

    def key_units(self) -> dict[str, str]:
        return dict.fromkeys(("accuracy", "iou_fg", "f1_fg", "f1_mean"), "pct")

    def compute(self) -> dict[str, Tensor]:
        f1_fg = f1_from_counts(self.tp, self.fp, self.fn)
        f1_bg = f1_from_counts(self.tn, self.fn, self.fp)
        total = self.tp + self.fp + self.fn + self.tn
        return {
            "accuracy": 100.0 * safe_ratio(self.tp + self.tn, total),
            "iou_fg": 100.0 * safe_ratio(self.tp, self.tp + self.fp + self.fn),
            "f1_fg": 100.0 * f1_fg,
            "f1_mean": 100.0 * (f1_fg + f1_bg) / 2,
        }


class PartSegmentationScores(SuiteMetric):
    """Part segmentation scores from a confusion matrix over the set, percent (module docstring).

    Args:
        num_classes: C, background (class 0) included.
        ignore_index: target value whose pixels are dropped.
        class_names: a name per class for the per-class IoU keys (default ``class_<c>``).

    ``update(preds (B, H, W) int, target (B, H, W) int)``. ``compute()``: ``{"iou_<class>": ...,
    "mean_iou": mean over foreground classes, "f1_macro": mean F1 over all classes,
    "accuracy": correct / counted pixels}``.
    """

    default_name = "part_segm"
    higher_is_better = True
    confusion: Tensor

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        self.class_names = class_names_or_default(owner, num_classes, class_names)
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"{owner}: ignore_index {ignore_index} is one of the classes")
        super().__init__(name, **kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._add_sum_state("confusion", (num_classes, num_classes), integer=True)

    def update(self, preds: Tensor, target: Tensor) -> None:
        inputs = Inputs(self.where)
        inputs.check(preds, "preds", ("B", "H", "W"), kind="int")
        inputs.check(target, "target", ("B", "H", "W"), kind="int")
        check_labels(inputs, preds, "preds", self.num_classes)
        check_labels(inputs, target, "target", self.num_classes, self.ignore_index)
        counted = target != self.ignore_index
        self.confusion += confusion_matrix(preds, target, self.num_classes, counted).to(
            self.confusion
        )

    def key_units(self) -> dict[str, str]:
        keys = [f"iou_{name}" for name in self.class_names] + ["mean_iou", "f1_macro", "accuracy"]
        return dict.fromkeys(keys, "pct")

    def compute(self) -> dict[str, Tensor]:
        tp = self.confusion.diagonal()
        fp = self.confusion.sum(dim=0) - tp  # predicted c, target another class
        fn = self.confusion.sum(dim=1) - tp
        iou = 100.0 * safe_ratio(tp, tp + fp + fn)
        result = {f"iou_{name}": value for name, value in zip(self.class_names, iou, strict=True)}
        result["mean_iou"] = iou[1:].nanmean()
        result["f1_macro"] = 100.0 * f1_from_counts(tp, fp, fn).nanmean()
        result["accuracy"] = 100.0 * safe_ratio(tp.sum(), self.confusion.sum())
        return result
