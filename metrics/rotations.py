"""Joint angle errors of the 3DPW challenge: MPJAE and PA-MPJAE (metrics.md), in degrees.

Inputs are *global* joint rotations (B, K, 3, 3), the products along the kinematic chain, for
the K joints the caller picks (the challenge uses SMPL joints 0, 1, 2, 4, 5, 16, 17, 18, 19:
``body.joint_sets.subset_indices("smpl_24", "pw3d_orientation")``). The error of a joint is the
geodesic angle between the predicted and ground-truth rotation (``geometry.geodesic_angle``,
accurate for small angles); per sample the mean over the K joints, then over samples.
PA-MPJAE first left-multiplies every predicted rotation by the rotation of that sample's
PA-MPJPE alignment (the similarity Procrustes of the predicted onto the ground-truth joints),
as the official evaluator does.
"""

from __future__ import annotations

import math

from torch import Tensor

from geometry import geodesic_angle, similarity_procrustes
from metrics._checks import Inputs
from metrics.joints import _PerSampleMean, masked_mean

DEGREES_PER_RADIAN = 180.0 / math.pi


def angle_errors_degrees(preds: Tensor, target: Tensor) -> Tensor:
    """Geodesic angles (B, K) in degrees between (B, K, 3, 3) rotation matrices."""
    return geodesic_angle(preds, target) * DEGREES_PER_RADIAN


def procrustes_rotation(preds_joints: Tensor, target_joints: Tensor) -> Tensor:
    """(B, 3, 3) rotation of each sample's PA-MPJPE alignment of the predicted joints."""
    _, rotation, _ = similarity_procrustes(preds_joints, target_joints)
    return rotation


class MPJAE(_PerSampleMean):
    """Mean per-joint angle error in degrees between global joint rotations (module docstring).

    ``update(preds (B, K, 3, 3), target (B, K, 3, 3))``.
    """

    default_name = "mpjae_deg"

    def update(self, preds: Tensor, target: Tensor) -> None:
        inputs = Inputs(self.where)
        inputs.check(preds, "preds", ("B", "K", 3, 3))
        inputs.check(target, "target", ("B", "K", 3, 3))
        self._accumulate(*masked_mean(angle_errors_degrees(preds.double(), target.double()), None))


class PAMPJAE(_PerSampleMean):
    """MPJAE after rotating the predictions by each sample's PA-MPJPE rotation (module docstring).

    ``update(preds_rot (B, K, 3, 3), target_rot (B, K, 3, 3), preds_joints (B, J, 3),
    target_joints (B, J, 3))``; the joints (metres) are those PA-MPJPE aligns (the challenge:
    24 SMPL joints, root-relative, which does not change the rotation).
    """

    default_name = "pa_mpjae_deg"

    def update(
        self, preds_rot: Tensor, target_rot: Tensor, preds_joints: Tensor, target_joints: Tensor
    ) -> None:
        inputs = Inputs(self.where)
        inputs.check(preds_rot, "preds_rot", ("B", "K", 3, 3))
        inputs.check(target_rot, "target_rot", ("B", "K", 3, 3))
        inputs.check(preds_joints, "preds_joints", ("B", "J", 3))
        inputs.check(target_joints, "target_joints", ("B", "J", 3))
        rotation = procrustes_rotation(preds_joints.double(), target_joints.double())
        aligned = rotation[:, None] @ preds_rot.double()  # (B, K, 3, 3)
        self._accumulate(*masked_mean(angle_errors_degrees(aligned, target_rot.double()), None))
