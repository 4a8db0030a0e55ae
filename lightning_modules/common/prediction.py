"""The canonical prediction every method's `predict_step` returns (DESIGN.md "Methods").

Batch-first with a person axis: B images, P people each (1 for crop methods), `person_valid`
(B, P) marking real people. Camera-frame metres, OpenCV axes; `K` (B, 3, 3) is the camera the
3D outputs are expressed in (the crop's intrinsics for crop methods). SMPL fields are None for
methods without SMPL; `extras` holds method-specific tensors (PARE's attention maps, BodyNet's
occupancy) under documented names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Prediction:
    """keypoints3d (B, P, K, 3) canonical superset, camera frame (transl included); K (B, 3, 3);
    person_valid (B, P) bool; score (B, P); pose (B, P, 72) axis-angle, betas (B, P, 10),
    transl (B, P, 3) perspective translation for K, vertices (B, P, V, 3) camera frame."""

    keypoints3d: Tensor
    K: Tensor
    person_valid: Tensor
    score: Tensor
    pose: Tensor | None = None
    betas: Tensor | None = None
    transl: Tensor | None = None
    vertices: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
