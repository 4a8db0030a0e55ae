"""Groupings of the 24 SMPL body parts into coarser classes (datasets.md 1.5).

Part labels in canonical samples are 0 for background and k + 1 for SMPL part k of
`body.joint_sets.SMPL_PART_NAMES` (anatomical sides). A grouping maps each of the 24 parts to a
class 1..C (0 stays background), defined here by part names so the tables are readable and
checked, not typed as numbers:

- `bodynet_15`: BodyNet's 2D segmentation classes (option `segmIx`): background + 14 parts
  (head, torso, and upper arm, forearm, hand, thigh, shin, foot on each side);
- `bodynet_7`: BodyNet's 3D part voxels (paper 3.1, appendix B.3): background + head, torso,
  right arm, left arm, right leg, left leg.
"""

from __future__ import annotations

import torch
from torch import Tensor

from body.joint_sets import SMPL_PART_NAMES

_BODYNET_15 = (
    ("head", ("head",)),
    ("torso", ("hips", "spine", "spine1", "spine2", "neck", "leftShoulder", "rightShoulder")),
    ("right_upper_arm", ("rightArm",)),
    ("right_forearm", ("rightForeArm",)),
    ("right_hand", ("rightHand", "rightHandIndex1")),
    ("left_upper_arm", ("leftArm",)),
    ("left_forearm", ("leftForeArm",)),
    ("left_hand", ("leftHand", "leftHandIndex1")),
    ("right_thigh", ("rightUpLeg",)),
    ("right_shin", ("rightLeg",)),
    ("right_foot", ("rightFoot", "rightToeBase")),
    ("left_thigh", ("leftUpLeg",)),
    ("left_shin", ("leftLeg",)),
    ("left_foot", ("leftFoot", "leftToeBase")),
)
_BODYNET_7 = (
    ("head", ("head",)),
    ("torso", ("hips", "spine", "spine1", "spine2", "neck", "leftShoulder", "rightShoulder")),
    ("right_arm", ("rightArm", "rightForeArm", "rightHand", "rightHandIndex1")),
    ("left_arm", ("leftArm", "leftForeArm", "leftHand", "leftHandIndex1")),
    ("right_leg", ("rightUpLeg", "rightLeg", "rightFoot", "rightToeBase")),
    ("left_leg", ("leftUpLeg", "leftLeg", "leftFoot", "leftToeBase")),
)
GROUPINGS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "bodynet_15": _BODYNET_15,
    "bodynet_7": _BODYNET_7,
}


def class_names(grouping: str) -> tuple[str, ...]:
    """("background", then the grouping's classes in label order)."""
    return ("background", *(name for name, _ in _groups(grouping)))


def lookup_table(grouping: str) -> Tensor:
    """(25,) int64: the class of each canonical part label (index 0 = background -> 0)."""
    table = torch.full((len(SMPL_PART_NAMES) + 1,), -1, dtype=torch.int64)
    table[0] = 0
    for label, (_, parts) in enumerate(_groups(grouping), start=1):
        for part in parts:
            table[SMPL_PART_NAMES.index(part) + 1] = label
    missing = [SMPL_PART_NAMES[i - 1] for i in range(1, len(table)) if table[i] < 0]
    if missing:  # a definition error: every part belongs to exactly one class
        raise AssertionError(f"grouping {grouping} leaves out the parts {missing}")
    return table


def group_parts(labels: Tensor, grouping: str) -> Tensor:
    """Part labels 0..24 (any shape) -> class labels 0..C of `grouping`, int64."""
    if labels.dtype.is_floating_point:
        raise TypeError(f"part labels must be integers, got {labels.dtype}")
    if labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high > len(SMPL_PART_NAMES):
            raise ValueError(f"part labels must lie in [0, 24], got [{low}, {high}]")
    return lookup_table(grouping).to(labels.device)[labels.long()]


def _groups(grouping: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if grouping not in GROUPINGS:
        raise KeyError(f"unknown part grouping {grouping!r}; groupings: {sorted(GROUPINGS)}")
    return GROUPINGS[grouping]
