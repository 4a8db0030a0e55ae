"""PVE alignments, MPJAE and PA-MPJAE: known values and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import metrics


def value(metric: metrics.SuiteMetric, *args) -> float:
    metric.update(*args)
    return float(metric.compute())


def rotations(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    matrices = Rotation.random(int(np.prod(shape)), random_state=rng).as_matrix()
    return torch.as_tensor(matrices).reshape(*shape, 3, 3)


def test_pve_alignments_on_a_translated_and_rotated_mesh() -> None:
    rng = np.random.default_rng(0)
    target = torch.as_tensor(rng.normal(0, 0.3, (2, 30, 3)))
    shift = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)
    preds = target + shift  # the whole mesh is 0.229 m off
    roots = target[:, 0]
    assert value(metrics.PVE(), preds, target) == pytest.approx(1000 * float(shift.norm()))
    assert value(metrics.PVE("pelvis"), preds, target, roots + shift, roots) == pytest.approx(
        0.0, abs=1e-9
    )
    rotated = 1.3 * target @ rotations(1, (2,)).transpose(1, 2) + shift
    assert value(metrics.PVE("procrustes"), rotated, target) == pytest.approx(0.0, abs=1e-6)
    assert value(metrics.PVE("none"), rotated, target) > 100.0


def test_pve_names_follow_the_alignment() -> None:
    assert metrics.PVE().name == "pve_mm"
    assert metrics.PVE("pelvis").name == "pve_pelvis_mm"
    assert metrics.PVE("procrustes").name == "pa_pve_mm"
    assert metrics.PVE("none", name="surface_error_mm").name == "surface_error_mm"


def test_pve_pelvis_needs_the_roots() -> None:
    mesh = torch.zeros(1, 10, 3)
    with pytest.raises(ValueError, match='align="pelvis" needs preds_root and target_root'):
        metrics.PVE("pelvis").update(mesh, mesh)
    with pytest.raises(ValueError, match=r"preds_root must have shape \(B, 3\)"):
        metrics.PVE("pelvis").update(mesh, mesh, torch.zeros(2, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="align must be one of"):
        metrics.PVE("root")


@pytest.mark.parametrize("angle_deg", [1e-4, 0.5, 30.0, 179.0])
def test_mpjae_of_a_known_rotation(angle_deg) -> None:
    target = rotations(2, (3, 9))
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    offset = torch.as_tensor(Rotation.from_rotvec(math.radians(angle_deg) * axis).as_matrix())
    preds = offset @ target  # every joint off by the same angle
    assert value(metrics.MPJAE(), preds, target) == pytest.approx(angle_deg, rel=1e-6, abs=1e-9)
    assert value(metrics.MPJAE(), target, target) == pytest.approx(0.0, abs=1e-6)


def test_pa_mpjae_removes_the_global_rotation_of_the_alignment() -> None:
    """Rotating a whole prediction (joints and global rotations) changes MPJAE, not PA-MPJAE."""
    rng = np.random.default_rng(3)
    joints = torch.as_tensor(rng.normal(0, 0.3, (4, 24, 3)))
    target_rot = rotations(4, (4, 9))
    local_error = torch.as_tensor(
        Rotation.from_rotvec(rng.normal(0, 0.1, (36, 3))).as_matrix()
    ).reshape(4, 9, 3, 3)
    preds_rot = local_error @ target_rot
    spin = rotations(5, (4,))
    spun_rot = spin[:, None] @ preds_rot
    spun_joints = 0.8 * joints @ spin.transpose(1, 2) + 0.3
    plain = value(metrics.MPJAE(), preds_rot, target_rot)
    assert value(metrics.PAMPJAE(), spun_rot, target_rot, spun_joints, joints) == pytest.approx(
        plain, rel=1e-9
    )
    assert value(metrics.MPJAE(), spun_rot, target_rot) > plain + 10.0


def test_rotation_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match=r"preds must have shape \(B, K, 3, 3\)"):
        metrics.MPJAE().update(torch.zeros(2, 9, 9), torch.zeros(2, 9, 3, 3))
    with pytest.raises(ValueError, match=r"preds_joints must have shape \(B, J, 3\).*B = 2"):
        metrics.PAMPJAE().update(
            torch.zeros(2, 9, 3, 3),
            torch.zeros(2, 9, 3, 3),
            torch.zeros(3, 24, 3),
            torch.zeros(3, 24, 3),
        )
