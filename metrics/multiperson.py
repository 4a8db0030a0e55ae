"""Multi-person 3D pose benchmarks: MuPoTS-3D 3DPCK (All / Matched) and CRMH's Panoptic MPJPE.

**MuPoTS-3D** (``mpii_mupots_multiperson_eval.m`` and ``mpii_evaluate_multiperson_errors.m``):
per image, predictions are matched to the annotated people by ``mupots_identity_matching`` on
2D keypoints; a matched prediction is made root-relative (pelvis), its bones are rescaled to
the ground-truth bone lengths along the skeleton (``rescale_bone_lengths``, parents first,
each bone keeping its predicted direction), and a joint is correct when its 3D error is below
150 mm (strict) on the 14 PCK joints. "All" counts every annotated person (an unmatched one
scores 0 on all its joints), "Matched" only the matched ones. PCK pools joints and people of
one sequence; the reported number is the mean over the sequences (TS1..TS20). Inputs use the
``mupots_17`` order; the 3D ground truth is the caller's choice (the official script uses
``univ_annot3``).

**CMU Panoptic, CRMH protocol** (CRMH's ``PanopticEvalHandler``): per image, ``argmin3d``
matching on root-relative poses; the error of a matched person is the mean over all J joints of
the joint error times its visibility, so invisible joints count as zero error but stay in the
denominator; people are averaged within each sequence group (Haggling, Mafia, Ultimatum,
Pizza) and the table's mean is the mean of the group means. Ground-truth people of an image
with no prediction are skipped (CRMH does not penalise misses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from body.joint_sets import root_index, skeleton, subset_indices
from metrics._checks import Inputs, check_positive, check_root_index
from metrics.base import SuiteMetric, safe_ratio
from metrics.joints import MM_PER_M, joint_errors, root_relative
from metrics.matching import argmin3d, mupots_identity_matching

MUPOTS_NUM_SEQUENCES = 20
PANOPTIC_GROUPS = ("haggling", "mafia", "ultimatum", "pizza")


def rescale_bone_lengths(
    preds: Tensor, target: Tensor, parents: Sequence[int], traversal: Sequence[int]
) -> Tensor:
    """Predicted poses (..., J, 3) with every bone rescaled to the ground-truth bone length.

    For each joint of ``traversal`` (parents before children) the predicted bone vector, taken
    from the original prediction, is scaled to the length of the ground-truth bone and attached
    to the already rescaled parent (``mpii_map_to_gt_bone_lengths.m``). A zero-length predicted
    bone stays zero.
    """
    rescaled = preds.clone()
    for joint in traversal:
        parent = parents[joint]
        bone = preds[..., joint, :] - preds[..., parent, :]
        target_length = torch.linalg.vector_norm(
            target[..., joint, :] - target[..., parent, :], dim=-1
        )
        length = torch.linalg.vector_norm(bone, dim=-1).clamp_min(1e-12)
        rescaled[..., joint, :] = (
            rescaled[..., parent, :] + bone * (target_length / length)[..., None]
        )
    return rescaled


def mupots_person_errors(
    preds_2d: Tensor, preds_3d: Tensor, target_2d: Tensor, target_3d: Tensor
) -> tuple[Tensor, Tensor]:
    """Per annotated person of one image: root-relative, bone-rescaled 3D errors (M, 17) of the
    matched prediction (input unit), and matched (M,) bool (rows of unmatched people are 0)."""
    matches = mupots_identity_matching(preds_2d, target_2d)
    matched = matches >= 0
    errors = torch.zeros(target_3d.shape[:2], dtype=torch.float64, device=target_3d.device)
    if matched.any():
        root = root_index("mupots_17")
        parents, traversal = skeleton("mupots_17")
        target_rel = root_relative(target_3d[matched].double(), root)
        pred_rel = root_relative(preds_3d[matches[matched]].double(), root)
        errors[matched] = joint_errors(
            rescale_bone_lengths(pred_rel, target_rel, parents, traversal), target_rel
        )
    return errors, matched


class MuPoTSPCK(SuiteMetric):
    """MuPoTS-3D 3DPCK, All and Matched, percent: mean over sequences (module docstring).

    Args:
        threshold_mm: PCK threshold (strict ``<``).
        num_sequences: sequences are numbered 1..num_sequences (TS1..TS20).

    ``update(preds_2d, preds_3d, target_2d, target_3d, sequence)``: one entry per image in the
    four lists, ``preds_2d`` (N, 17, 2) pixels and ``preds_3d`` (N, 17, 3) metres for the N
    predictions, ``target_2d`` (M, 17, 2) and ``target_3d`` (M, 17, 3) for the M annotated
    people, all in ``mupots_17`` order; ``sequence`` the TS number of each image.
    ``compute()``: ``{"pck_all", "pck_matched"}``.
    """

    default_name = "mupots_pck3d"
    higher_is_better = True
    correct: Tensor
    matched_joints: Tensor
    annotated_joints: Tensor

    def __init__(
        self,
        threshold_mm: float = 150.0,
        num_sequences: int = MUPOTS_NUM_SEQUENCES,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_positive(type(self).__name__, "threshold_mm", threshold_mm)
        check_positive(type(self).__name__, "num_sequences", num_sequences)
        super().__init__(name, **kwargs)
        self.threshold_mm = float(threshold_mm)
        self.num_sequences = int(num_sequences)
        self.pck_joints = subset_indices("mupots_17", "pck")
        self._add_sum_state("correct", (num_sequences,), integer=True)
        self._add_sum_state("matched_joints", (num_sequences,), integer=True)
        self._add_sum_state("annotated_joints", (num_sequences,), integer=True)

    def update(
        self,
        preds_2d: Sequence[Tensor],
        preds_3d: Sequence[Tensor],
        target_2d: Sequence[Tensor],
        target_3d: Sequence[Tensor],
        sequence: Sequence[int] | Tensor,
    ) -> None:
        sequences = [int(s) for s in sequence]
        lengths = {len(preds_2d), len(preds_3d), len(target_2d), len(target_3d), len(sequences)}
        if len(lengths) != 1:
            raise ValueError(f"{self.where}: the five arguments must list the same images")
        for index, images in enumerate(zip(preds_2d, preds_3d, target_2d, target_3d, strict=True)):
            self._update_image(index, *images, sequences[index])

    def _update_image(
        self,
        index: int,
        preds_2d: Tensor,
        preds_3d: Tensor,
        target_2d: Tensor,
        target_3d: Tensor,
        seq: int,
    ) -> None:
        inputs = Inputs(f"{self.where}: image {index}")
        inputs.check(preds_2d, "preds_2d", ("N", 17, 2))
        inputs.check(preds_3d, "preds_3d", ("N", 17, 3))
        inputs.check(target_2d, "target_2d", ("M", 17, 2))
        inputs.check(target_3d, "target_3d", ("M", 17, 3))
        if not 1 <= seq <= self.num_sequences:
            raise inputs.fail(f"sequence {seq} is outside 1..{self.num_sequences}")
        errors, matched = mupots_person_errors(
            preds_2d, preds_3d * MM_PER_M, target_2d, target_3d * MM_PER_M
        )
        correct = (errors[:, self.pck_joints] < self.threshold_mm) & matched[:, None]
        per_person = len(self.pck_joints)
        self.correct[seq - 1] += correct.sum().to(self.correct)
        self.matched_joints[seq - 1] += matched.sum().to(self.correct) * per_person
        self.annotated_joints[seq - 1] += len(target_3d) * per_person

    def key_units(self) -> dict[str, str]:
        return {"pck_all": "pct", "pck_matched": "pct"}

    def compute(self) -> dict[str, Tensor]:
        return {
            "pck_all": 100.0 * safe_ratio(self.correct, self.annotated_joints).nanmean(),
            "pck_matched": 100.0 * safe_ratio(self.correct, self.matched_joints).nanmean(),
        }


class PanopticMPJPE(SuiteMetric):
    """CMU Panoptic MPJPE in mm under CRMH's protocol, per sequence group and their mean.

    Args:
        groups: the sequence groups, in table order.
        root_index: joint made the origin of every pose before matching and errors (0: the
            H36M pelvis of ``h36m_17``).

    ``update(preds, target, visible, group)``: one entry per image, ``preds`` (N, J, 3) and
    ``target`` (M, J, 3) metres, ``visible`` (M, J) bool, ``group`` the group name (or index)
    of each image. ``compute()``: ``{<group>: mm, ..., "mean": mean of the group means}``.
    """

    default_name = "panoptic_mpjpe"
    higher_is_better = False
    error_sum: Tensor
    num_people: Tensor

    def __init__(
        self,
        groups: Sequence[str] = PANOPTIC_GROUPS,
        root_index: int = 0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_root_index(type(self).__name__, root_index)
        if root_index is None:
            raise ValueError(
                "PanopticMPJPE: root_index is required (CRMH's errors are root-relative)"
            )
        groups = tuple(groups)
        if not groups or len(set(groups)) != len(groups) or "mean" in groups:
            raise ValueError(
                f"PanopticMPJPE: groups must be distinct names other than 'mean', got {groups}"
            )
        super().__init__(name, **kwargs)
        self.groups = groups
        self.root_index = root_index
        self._add_sum_state("error_sum", (len(groups),))
        self._add_sum_state("num_people", (len(groups),), integer=True)

    def update(
        self,
        preds: Sequence[Tensor],
        target: Sequence[Tensor],
        visible: Sequence[Tensor],
        group: Sequence[str | int],
    ) -> None:
        if len({len(preds), len(target), len(visible), len(group)}) != 1:
            raise ValueError(
                f"{self.where}: preds, target, visible and group must list the same images"
            )
        for index, (pred, truth, mask, name) in enumerate(
            zip(preds, target, visible, group, strict=True)
        ):
            inputs = Inputs(f"{self.where}: image {index}")
            inputs.check(pred, "preds", ("N", "J", 3))
            inputs.check(truth, "target", ("M", "J", 3))
            inputs.check(mask, "visible", ("M", "J"), kind="bool")
            slot = self._group_slot(inputs, name)
            root = inputs.index(self.root_index, "root_index", truth.shape[1])
            assert root is not None
            errors = panoptic_person_errors(
                pred.double() * MM_PER_M, truth.double() * MM_PER_M, mask, root
            )
            if errors is not None:
                self.error_sum[slot] += errors.sum().to(self.error_sum)
                self.num_people[slot] += len(errors)

    def _group_slot(self, inputs: Inputs, group: str | int) -> int:
        if isinstance(group, str) and group in self.groups:
            return self.groups.index(group)
        if isinstance(group, int) and not isinstance(group, bool) and 0 <= group < len(self.groups):
            return group
        raise inputs.fail(f"unknown group {group!r}; groups: {self.groups}")

    def key_units(self) -> dict[str, str]:
        return dict.fromkeys((*self.groups, "mean"), "mm")

    def compute(self) -> dict[str, Tensor]:
        means = safe_ratio(self.error_sum, self.num_people)
        result = dict(zip(self.groups, means, strict=True))
        result["mean"] = means.nanmean()
        return result


def panoptic_person_errors(
    preds: Tensor, target: Tensor, visible: Tensor, root: int
) -> Tensor | None:
    """CRMH's per-person Panoptic error (M,) of one image, None when there is no prediction."""
    if len(preds) == 0 or len(target) == 0:
        return None
    matches = argmin3d(preds, target, visible, root)
    errors = joint_errors(root_relative(preds[matches], root), root_relative(target, root))
    return (errors * visible).mean(dim=1)
