"""Per-vertex error (PVE, also "V2V" or "MPVPE"; BodyNet's "surface error"), metrics.md.

The mean Euclidean distance over all mesh vertices, per sample, then over samples. The
alignment must be named because codebases differ: PARE and SPIN compare meshes without
translation in the body model's own frame (``"none"``); others subtract the pelvis
(``"pelvis"``, roots given by the caller, since the pelvis is a regressed joint, not a vertex);
PA-PVE aligns each predicted mesh by similarity Procrustes over all vertices (``"procrustes"``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from geometry import procrustes_align
from metrics._checks import Inputs, check_choice
from metrics.joints import MM_PER_M, _PerSampleMean, joint_errors, masked_mean

PVE_ALIGNMENTS = ("none", "pelvis", "procrustes")
_DEFAULT_NAMES = {"none": "pve_mm", "pelvis": "pve_pelvis_mm", "procrustes": "pa_pve_mm"}


def pve_per_sample(
    preds: Tensor,
    target: Tensor,
    align: str = "none",
    preds_root: Tensor | None = None,
    target_root: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean vertex error (B,) in the input unit, after the named alignment (module docstring),
    and valid (B,) bool (False for meshes without vertices).

    Args:
        preds, target: (B, V, 3) vertices in the same order.
        align: "none", "pelvis" (subtract ``preds_root`` / ``target_root`` (B, 3)) or
            "procrustes".
    """
    if align == "pelvis":
        if preds_root is None or target_root is None:
            raise ValueError('pve_per_sample: align="pelvis" needs preds_root and target_root')
        preds = preds - preds_root[:, None]
        target = target - target_root[:, None]
    elif align == "procrustes":
        preds = procrustes_align(preds, target)
    return masked_mean(joint_errors(preds, target), None)


class PVE(_PerSampleMean):
    """Per-vertex error in mm with a named alignment (module docstring).

    Args:
        align: "none" (default name ``pve_mm``), "pelvis" (``pve_pelvis_mm``) or "procrustes"
            (``pa_pve_mm``).
        name: overrides the default name.

    ``update(preds (B, V, 3), target (B, V, 3), preds_root (B, 3) = None, target_root (B, 3) =
    None)``, metres; the roots are required for "pelvis" and ignored otherwise.
    """

    default_name = "pve_mm"

    def __init__(self, align: str = "none", name: str | None = None, **kwargs: Any) -> None:
        check_choice(type(self).__name__, "align", align, PVE_ALIGNMENTS)
        super().__init__(name or _DEFAULT_NAMES[align], **kwargs)
        self.align = align

    def update(
        self,
        preds: Tensor,
        target: Tensor,
        preds_root: Tensor | None = None,
        target_root: Tensor | None = None,
    ) -> None:
        inputs = Inputs(self.where)
        inputs.check(preds, "preds", ("B", "V", 3))
        inputs.check(target, "target", ("B", "V", 3))
        roots: list[Tensor | None] = [None, None]
        if self.align == "pelvis":
            if preds_root is None or target_root is None:
                raise inputs.fail('align="pelvis" needs preds_root and target_root (B, 3)')
            inputs.check(preds_root, "preds_root", ("B", 3))
            inputs.check(target_root, "target_root", ("B", 3))
            roots = [preds_root.double() * MM_PER_M, target_root.double() * MM_PER_M]
        self._accumulate(
            *pve_per_sample(
                preds.double() * MM_PER_M, target.double() * MM_PER_M, self.align, *roots
            )
        )
