"""Depth-order accuracy between people (CRMH table 5; metrics.md), percent.

No public implementation exists for CRMH's number, so the suite fixes the definition: over all
unordered pairs of valid (already matched) people of an image, the share whose predicted
root-depth order agrees with the ground truth, pooled over images.

- ``variant="sign"``: pairs whose ground-truth depth gap is at most ``min_gap_m`` are skipped
  (default 0: only exact ties); a pair is right when the predicted difference has the sign of
  the ground-truth one; a predicted tie is wrong.
- ``variant="pcrd"``: ROMP/BEV's three-class rule (percentage of correct relative depth): the
  ground-truth relation of a pair is "equal" when the gap is below 0.3 m, else "closer" or
  "farther"; the predicted one is "equal" below 0.2 m; a pair is right when the two classes
  agree. Every valid pair counts.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metrics._checks import Inputs, check_choice, check_positive
from metrics.base import SuiteMetric, safe_ratio

DEPTH_ORDER_VARIANTS = ("sign", "pcrd")
PCRD_TARGET_TOLERANCE_M = 0.3
PCRD_PRED_TOLERANCE_M = 0.2


def pair_differences(depths: Tensor) -> Tensor:
    """(B, P, P) differences ``depth[j] - depth[i]`` at [b, i, j]."""
    return depths[:, None, :] - depths[:, :, None]


def valid_pairs(valid: Tensor) -> Tensor:
    """(B, P, P) bool: i < j and both people valid (each unordered pair once)."""
    upper = torch.ones(valid.shape[1], valid.shape[1], dtype=torch.bool, device=valid.device).triu(
        1
    )
    return valid[:, :, None] & valid[:, None, :] & upper


def three_class_relation(differences: Tensor, tolerance: float) -> Tensor:
    """-1, 0 (``|difference| < tolerance``), +1 for each pair."""
    sign = torch.sign(differences)
    return torch.where(differences.abs() < tolerance, torch.zeros_like(sign), sign)


def depth_order_counts(
    preds: Tensor, target: Tensor, valid: Tensor, variant: str = "sign", min_gap: float = 0.0
) -> tuple[Tensor, Tensor]:
    """(correct pairs, counted pairs) of one batch of images (module docstring)."""
    pred_diff, target_diff = pair_differences(preds), pair_differences(target)
    pairs = valid_pairs(valid)
    if variant == "sign":
        counted = pairs & (target_diff.abs() > min_gap)
        correct = counted & (torch.sign(pred_diff) == torch.sign(target_diff))
    else:
        counted = pairs
        agree = three_class_relation(pred_diff, PCRD_PRED_TOLERANCE_M) == three_class_relation(
            target_diff, PCRD_TARGET_TOLERANCE_M
        )
        correct = counted & agree
    return correct.sum(), counted.sum()


class DepthOrderAccuracy(SuiteMetric):
    """Share of pairs of people in the right depth order, percent (module docstring).

    Args:
        min_gap_m: ground-truth gaps at most this are skipped ("sign" only).
        variant: "sign" or "pcrd".

    ``update(preds (B, P) root depths, target (B, P), valid (B, P) bool)``, metres, people
    already matched (person p of image b is the same in both).
    """

    default_name = "depth_order_pct"
    higher_is_better = True
    correct: Tensor
    total: Tensor

    def __init__(
        self, min_gap_m: float = 0.0, variant: str = "sign", name: str | None = None, **kwargs: Any
    ) -> None:
        owner = type(self).__name__
        check_choice(owner, "variant", variant, DEPTH_ORDER_VARIANTS)
        check_positive(owner, "min_gap_m", min_gap_m, allow_zero=True)
        if variant == "pcrd" and min_gap_m != 0.0:
            raise ValueError(f"{owner}: min_gap_m applies to variant='sign' only")
        super().__init__(name, **kwargs)
        self.min_gap_m = float(min_gap_m)
        self.variant = variant
        self._add_sum_state("correct", integer=True)
        self._add_sum_state("total", integer=True)

    def update(self, preds: Tensor, target: Tensor, valid: Tensor | None = None) -> None:
        inputs = Inputs(self.where)
        inputs.check(preds, "preds", ("B", "P"))
        inputs.check(target, "target", ("B", "P"))
        mask = inputs.optional_mask(valid, "valid", ("B", "P"))
        if mask is None:
            mask = torch.ones_like(preds, dtype=torch.bool)
        correct, total = depth_order_counts(
            preds.double(), target.double(), mask, self.variant, self.min_gap_m
        )
        self.correct += correct.to(self.correct)
        self.total += total.to(self.total)

    def compute(self) -> Tensor:
        return 100.0 * safe_ratio(self.correct, self.total)
