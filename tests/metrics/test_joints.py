"""MPJPE, PA-MPJPE, 3DPCK and AUC: metrics.md's worked values, properties and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import metrics
from metrics.joints import mpjpe_per_sample, pa_mpjpe_per_sample
from tests.metrics import references as ref

# metrics.md's worked example, read as metres: results are 1000 x its numbers, in mm.
GROUND_TRUTH = torch.tensor(
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64
)
ROTATION_Z_90 = torch.tensor(
    [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
)
TRANSFORMED = 2.0 * GROUND_TRUTH @ ROTATION_Z_90.T + torch.tensor(
    [1.0, 2.0, 3.0], dtype=torch.float64
)
MIRRORED = GROUND_TRUTH * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)


def value(metric: metrics.SuiteMetric, *args) -> float:
    metric.update(*args)
    return float(metric.compute())


def random_similarity(seed: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    scale = torch.as_tensor(rng.uniform(0.5, 2.0, batch))
    rotation = torch.as_tensor(Rotation.random(batch, random_state=rng).as_matrix())
    return scale, rotation, torch.as_tensor(rng.normal(0, 1, (batch, 3)))


def transform(points, scale, rotation, translation) -> torch.Tensor:
    return scale[:, None, None] * points @ rotation.transpose(1, 2) + translation[:, None]


def test_worked_example() -> None:
    preds, target = TRANSFORMED[None], GROUND_TRUTH[None]
    assert value(metrics.MPJPE(root_index=None), preds, target) == pytest.approx(4846.856, abs=1e-3)
    assert value(metrics.MPJPE(root_index=0), preds, target) == pytest.approx(2427.051, abs=1e-3)
    assert value(metrics.PAMPJPE(), preds, target) == pytest.approx(0.0, abs=1e-7)
    assert value(metrics.PAMPJPE(), MIRRORED[None], target) == pytest.approx(550.938, abs=1e-3)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4])
@pytest.mark.parametrize("num_joints", [2, 3, 14])
def test_per_sample_values_do_not_depend_on_batch_size_or_joint_count(
    batch_size, num_joints
) -> None:
    """The copied transposition heuristic breaks batches of 2-3 and poses of 2-3 joints."""
    rng = np.random.default_rng(batch_size * 10 + num_joints)
    target = torch.as_tensor(rng.normal(0, 0.4, (batch_size, num_joints, 3)))
    preds = target + torch.as_tensor(rng.normal(0, 0.1, target.shape))
    errors, valid = pa_mpjpe_per_sample(preds, target)
    assert bool(valid.all())
    for b in range(batch_size):
        alone, _ = pa_mpjpe_per_sample(preds[b : b + 1], target[b : b + 1])
        assert float(errors[b]) == pytest.approx(float(alone[0]), abs=1e-12)
        expected = ref.pa_mpjpe(preds[b : b + 1].numpy(), target[b : b + 1].numpy()) / 1000
        assert float(errors[b]) == pytest.approx(expected, abs=1e-9)
    scale, rotation, translation = random_similarity(num_joints, batch_size)
    exact, _ = pa_mpjpe_per_sample(transform(target, scale, rotation, translation), target)
    assert float(exact.abs().max()) < 1e-9


def test_two_joint_poses_always_align_exactly() -> None:
    """A similarity maps any 2 points onto any 2: PA-MPJPE of a 2-joint pose is 0."""
    rng = np.random.default_rng(5)
    preds, target = (torch.as_tensor(rng.normal(0, 1, (4, 2, 3))) for _ in range(2))
    assert value(metrics.PAMPJPE(), preds, target) == pytest.approx(0.0, abs=1e-6)


def test_pa_mpjpe_is_invariant_to_a_similarity_of_the_prediction() -> None:
    rng = np.random.default_rng(11)
    target = torch.as_tensor(rng.normal(0, 0.4, (4, 14, 3)))
    preds = target + torch.as_tensor(rng.normal(0, 0.05, target.shape))
    visible = torch.as_tensor(rng.random((4, 14)) < 0.8)
    moved = transform(preds, *random_similarity(12, 4))
    assert value(metrics.PAMPJPE(), moved, target, visible) == pytest.approx(
        value(metrics.PAMPJPE(), preds, target, visible), rel=1e-9
    )


def test_mpjpe_is_not_invariant_to_rotation() -> None:
    rng = np.random.default_rng(13)
    target = torch.as_tensor(rng.normal(0, 0.4, (3, 14, 3)))
    preds = target + torch.as_tensor(rng.normal(0, 0.02, target.shape))
    _, rotation, _ = random_similarity(14, 3)
    rotated = preds @ rotation.transpose(1, 2)
    assert value(metrics.MPJPE(), rotated, target) > 5 * value(metrics.MPJPE(), preds, target)


def test_root_is_subtracted_even_when_not_evaluated() -> None:
    """3DPW/H36M: 14 LSP joints rooted at the H36M pelvis, which is not among them."""
    target = torch.zeros(1, 3, 3, dtype=torch.float64)
    target[0, 1, 0], target[0, 2, 1] = 1.0, 1.0
    preds = target.clone()
    preds[0, 0] += torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)  # only the root is off
    visible = torch.tensor([[False, True, True]])
    # Each evaluated joint is then 0.1 m off after root alignment.
    assert value(metrics.MPJPE(root_index=0), preds, target, visible) == pytest.approx(100.0)
    assert value(metrics.MPJPE(root_index=None), preds, target, visible) == pytest.approx(0.0)


def test_pa_mpjpe_fits_on_visible_joints_only() -> None:
    rng = np.random.default_rng(17)
    target = torch.as_tensor(rng.normal(0, 0.4, (2, 10, 3)))
    preds = transform(target, *random_similarity(18, 2))
    preds[:, 7:] += 5.0  # garbage on hidden joints must not change the fit
    visible = torch.ones(2, 10, dtype=torch.bool)
    visible[:, 7:] = False
    assert value(metrics.PAMPJPE(), preds, target, visible) == pytest.approx(0.0, abs=1e-6)


def errors_along_x(errors_mm: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample whose joints have exactly these errors (root-relative, root error 0)."""
    target = torch.zeros(1, len(errors_mm), 3, dtype=torch.float64)
    preds = target.clone()
    preds[0, :, 0] = torch.tensor(errors_mm, dtype=torch.float64) / 1000
    return preds, target


def test_pck_inclusivity_and_auc_worked_values() -> None:
    preds, target = errors_along_x([0.0, 50.0, 100.0, 150.0, 200.0])
    assert value(metrics.PCK3D(150.0), preds, target) == pytest.approx(60.0)
    assert value(metrics.PCK3D(150.0, inclusive=True), preds, target) == pytest.approx(80.0)
    assert value(metrics.PCK3D(50.0, inclusive=True), preds, target) == pytest.approx(40.0)
    assert value(metrics.PCK3D(50.0), preds, target) == pytest.approx(20.0)
    assert value(metrics.AUC3D(), preds, target) == pytest.approx(38.709678, abs=1e-6)


def test_identical_poses() -> None:
    rng = np.random.default_rng(19)
    pose = torch.as_tensor(rng.normal(0, 0.4, (3, 14, 3)))
    assert value(metrics.PCK3D(), pose, pose) == 100.0
    assert value(metrics.AUC3D(), pose, pose) == pytest.approx(100.0 * 30 / 31)  # 96.77
    assert value(metrics.AUC3D(), pose, pose) == pytest.approx(96.77, abs=0.005)
    assert value(metrics.MPJPE(), pose, pose) == 0.0
    assert value(metrics.PAMPJPE(), pose, pose) == pytest.approx(0.0, abs=1e-9)


def test_3dpw_challenge_auc_integrates_like_the_official_evaluator() -> None:
    """The challenge integrates np.interp over normalised thresholds 0..199 (scipy quad)."""
    from scipy import integrate

    rng = np.random.default_rng(23)
    errors = rng.uniform(0, 250, 60).tolist()
    preds, target = errors_along_x([0.0, *errors])
    grid = np.arange(0.0, 200.0)
    curve = [np.mean(np.array([*errors, 0.0]) <= g) for g in grid]
    knots = grid / grid.max()
    official = integrate.quad(
        lambda x: np.interp(x, knots, curve), 0, 1, points=knots[1:-1], limit=400
    )[0]
    auc = metrics.AUC3D(199.0, 200, inclusive=True, integration="trapezoid")
    assert value(auc, preds, target) == pytest.approx(100 * official, abs=1e-4)


def test_pck_pools_joints_over_samples() -> None:
    preds, target = errors_along_x([0.0, 100.0, 200.0, 300.0])
    visible = torch.tensor([[True, True, True, True]])
    metric = metrics.PCK3D()
    metric.update(preds, target, visible)  # 2 of 4 correct
    metric.update(*errors_along_x([0.0, 10.0]))  # 2 of 2 correct
    assert float(metric.compute()) == pytest.approx(100 * 4 / 6)  # not the mean of 50 and 100


def test_nothing_visible_gives_nan_without_dividing_by_zero() -> None:
    pose = torch.zeros(2, 5, 3)
    hidden = torch.zeros(2, 5, dtype=torch.bool)
    for metric in (metrics.MPJPE(), metrics.PAMPJPE(), metrics.PCK3D(), metrics.AUC3D()):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            metric.update(pose, pose, hidden)
            assert math.isnan(float(metric.compute()))
    errors, valid = mpjpe_per_sample(pose, pose, hidden)
    assert not bool(valid.any()) and bool(torch.isfinite(errors).all())


def test_default_and_custom_names() -> None:
    assert metrics.MPJPE().name == "mpjpe_mm"
    assert metrics.MPJPE(root_index=None, name="mpjpe_abs_mm").name == "mpjpe_abs_mm"
    assert metrics.PAMPJPE().name == "pa_mpjpe_mm"
    assert metrics.PCK3D().name == "pck3d_pct"
    assert metrics.AUC3D().name == "auc3d_pct"
    pose = torch.zeros(1, 3, 3)
    metric = metrics.PCK3D(name="pck3d_50_pct")
    metric.update(pose, pose)
    assert metric.results() == {"pck3d_50_pct": 100.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (torch.zeros(2, 14, 2), torch.zeros(2, 14, 3)),
            r"preds must have shape \(B, J, 3\), got \(2, 14, 2\)",
        ),
        (
            (torch.zeros(2, 14, 3), torch.zeros(2, 17, 3)),
            r"target must have shape \(B, J, 3\).*J = 14 from preds",
        ),
        ((torch.zeros(2, 14, 3), torch.zeros(3, 14, 3)), r"target .*B = 2 from preds"),
        (
            (torch.zeros(2, 14, 3), torch.zeros(2, 14, 3), torch.ones(2, 14)),
            r"visible must be a bool tensor",
        ),
        (
            (torch.zeros(2, 14, 3), torch.zeros(2, 14, 3), torch.ones(2, 13, dtype=torch.bool)),
            r"visible must have shape \(B, J\)",
        ),
        (
            (torch.zeros(2, 14, 3, dtype=torch.int64), torch.zeros(2, 14, 3)),
            r"preds must be a floating-point tensor",
        ),
        (
            (np.zeros((2, 14, 3)), torch.zeros(2, 14, 3)),
            r"preds must be a torch.Tensor, got ndarray",
        ),
    ],
)
def test_bad_input_names_the_argument(args, message) -> None:
    for metric in (metrics.MPJPE(), metrics.PAMPJPE(), metrics.PCK3D(), metrics.AUC3D()):
        with pytest.raises(ValueError, match=message):
            metric.update(*args)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="root_index must be an int or None"):
        metrics.MPJPE(root_index=1.5)
    with pytest.raises(ValueError, match=r"root_index = 20 is out of range for 14 joints"):
        metrics.MPJPE(root_index=20).update(torch.zeros(1, 14, 3), torch.zeros(1, 14, 3))
    with pytest.raises(ValueError, match="integration must be one of"):
        metrics.AUC3D(integration="simpson")
    with pytest.raises(ValueError, match="num_thresholds must be > 0"):
        metrics.AUC3D(num_thresholds=0)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        metrics.MPJPE(name="val/mpjpe")
