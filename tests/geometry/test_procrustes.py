"""Similarity Procrustes: metrics.md's alignment checks and an independent NumPy Umeyama."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from geometry import apply_similarity, procrustes_align, similarity_procrustes

WORKED_EXAMPLE_GT = torch.tensor(
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64
)
ROTATION_Z_90 = torch.tensor(
    [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
)
MIRROR_X = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)


def umeyama_reference(
    source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama (1991), one sample, float64: (scale, R, t) with target ~ scale R source + t."""
    weights = np.ones(len(source)) if weights is None else np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()
    mean_source = weights @ source
    mean_target = weights @ target
    centred_source = source - mean_source
    centred_target = target - mean_target
    covariance = (centred_target * weights[:, None]).T @ centred_source  # Umeyama's Sigma_xy
    variance_source = np.sum(weights * np.sum(centred_source**2, axis=1))
    u, singular_values, vt = np.linalg.svd(covariance)
    correction = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        correction[2, 2] = -1.0
    rotation = u @ correction @ vt
    scale = np.trace(np.diag(singular_values) @ correction) / variance_source
    translation = mean_target - scale * rotation @ mean_source
    return scale, rotation, translation


def random_similarity(
    batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scales in [0.5, 2], uniformly random rotations and translations, float64."""
    scale = 0.5 + 1.5 * torch.rand(batch_size, generator=generator, dtype=torch.float64)
    quaternion = torch.randn(batch_size, 4, generator=generator, dtype=torch.float64)
    rotation = torch.from_numpy(Rotation.from_quat(quaternion.numpy()).as_matrix())
    translation = torch.randn(batch_size, 3, generator=generator, dtype=torch.float64)
    return scale, rotation, translation


def random_points(batch_size: int, num_points: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, num_points, 3, generator=generator, dtype=torch.float64)


def mean_joint_distance(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    return (first - second).norm(dim=-1).mean(dim=-1)


def test_identical_inputs_give_identity() -> None:
    points = random_points(3, 17, seed=0)
    scale, rotation, translation = similarity_procrustes(points, points)
    torch.testing.assert_close(scale, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(rotation, torch.eye(3, dtype=torch.float64).expand(3, 3, 3))
    torch.testing.assert_close(translation, torch.zeros(3, 3, dtype=torch.float64))
    torch.testing.assert_close(procrustes_align(points, points), points)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4])
@pytest.mark.parametrize("num_points", [3, 4, 17])
def test_similarity_is_recovered(batch_size: int, num_points: int) -> None:
    generator = torch.Generator().manual_seed(100 * batch_size + num_points)
    source = torch.randn(batch_size, num_points, 3, generator=generator, dtype=torch.float64)
    scale, rotation, translation = random_similarity(batch_size, generator)
    target = apply_similarity(source, scale, rotation, translation)
    found_scale, found_rotation, found_translation = similarity_procrustes(source, target)
    torch.testing.assert_close(found_scale, scale)
    torch.testing.assert_close(found_rotation, rotation)
    torch.testing.assert_close(found_translation, translation)
    torch.testing.assert_close(procrustes_align(source, target), target)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4])
def test_two_points_align_exactly(batch_size: int) -> None:
    # With 2 points the rotation about their line is free: only the aligned points are checked.
    generator = torch.Generator().manual_seed(batch_size)
    source = torch.randn(batch_size, 2, 3, generator=generator, dtype=torch.float64)
    scale, rotation, translation = random_similarity(batch_size, generator)
    target = apply_similarity(source, scale, rotation, translation)
    found_scale, found_rotation, _ = similarity_procrustes(source, target)
    torch.testing.assert_close(found_scale, scale)
    torch.testing.assert_close(torch.linalg.det(found_rotation), torch.ones_like(scale))
    torch.testing.assert_close(procrustes_align(source, target), target)


def test_worked_example_aligns_to_zero() -> None:
    gt = WORKED_EXAMPLE_GT[None]
    prediction = 2.0 * gt @ ROTATION_Z_90.T + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    aligned = procrustes_align(prediction, gt)
    assert mean_joint_distance(aligned, gt).item() == pytest.approx(0.0, abs=1e-12)
    # The other direction recovers the transform that made the prediction.
    scale, rotation, translation = similarity_procrustes(gt, prediction)
    assert scale.item() == pytest.approx(2.0)
    torch.testing.assert_close(rotation[0], ROTATION_Z_90)
    torch.testing.assert_close(translation[0], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_worked_example_mirror_is_not_aligned_away(dtype: torch.dtype) -> None:
    gt = WORKED_EXAMPLE_GT[None]
    mirrored = gt * MIRROR_X
    moved = 2.0 * mirrored @ ROTATION_Z_90.T + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    for prediction in (mirrored, moved):
        aligned = procrustes_align(prediction.to(dtype), gt.to(dtype))
        assert aligned.dtype == dtype
        error = mean_joint_distance(aligned.double(), gt).item()
        assert error == pytest.approx(0.550938, abs=1e-6)
        _, rotation, _ = similarity_procrustes(prediction.to(dtype), gt.to(dtype))
        assert torch.linalg.det(rotation.double()).item() == pytest.approx(1.0)


def test_rotation_is_always_proper() -> None:
    source = random_points(64, 5, seed=1)
    target = random_points(64, 5, seed=2) * MIRROR_X  # arbitrary, often best matched by a mirror
    _, rotation, _ = similarity_procrustes(source, target)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(64, dtype=torch.float64))
    identity = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    torch.testing.assert_close(rotation @ rotation.transpose(-1, -2), identity)


@pytest.mark.parametrize("num_points", [2, 3, 4, 17])
def test_batch_equals_per_sample(num_points: int) -> None:
    source = random_points(4, num_points, seed=3)
    target = random_points(4, num_points, seed=4)
    batched = procrustes_align(source, target)
    for index in range(4):
        single = procrustes_align(source[index : index + 1], target[index : index + 1])
        torch.testing.assert_close(batched[index : index + 1], single)
    leading = procrustes_align(source.reshape(2, 2, num_points, 3), target.reshape(2, 2, -1, 3))
    torch.testing.assert_close(leading.reshape(4, num_points, 3), batched)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4])
@pytest.mark.parametrize("num_points", [3, 4, 17])
def test_agrees_with_numpy_umeyama(batch_size: int, num_points: int) -> None:
    source = random_points(batch_size, num_points, seed=5 + num_points)
    target = random_points(batch_size, num_points, seed=6 + num_points) + 2.0
    scale, rotation, translation = similarity_procrustes(source, target)
    for index in range(batch_size):
        expected = umeyama_reference(source[index].numpy(), target[index].numpy())
        assert scale[index].item() == pytest.approx(expected[0], rel=1e-9)
        np.testing.assert_allclose(rotation[index].numpy(), expected[1], atol=1e-9)
        np.testing.assert_allclose(translation[index].numpy(), expected[2], atol=1e-9)


def test_weighted_agrees_with_numpy_umeyama() -> None:
    source = random_points(3, 17, seed=7)
    target = random_points(3, 17, seed=8)
    weights = torch.rand(3, 17, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    scale, rotation, translation = similarity_procrustes(source, target, weights)
    for index in range(3):
        expected = umeyama_reference(
            source[index].numpy(), target[index].numpy(), weights[index].numpy()
        )
        assert scale[index].item() == pytest.approx(expected[0], rel=1e-9)
        np.testing.assert_allclose(rotation[index].numpy(), expected[1], atol=1e-9)
        np.testing.assert_allclose(translation[index].numpy(), expected[2], atol=1e-9)


def test_zero_weight_points_are_ignored() -> None:
    source = random_points(3, 17, seed=10)
    target = random_points(3, 17, seed=11)
    weights = torch.ones(3, 17, dtype=torch.float64)
    weights[:, [2, 5, 11]] = 0.0
    weights[1, 16] = 0.0
    result = similarity_procrustes(source, target, weights)
    # Moving the ignored points anywhere changes nothing ...
    noise = 100.0 * random_points(3, 17, seed=12) * (weights == 0)[..., None]
    moved = similarity_procrustes(source + noise, target - noise, weights)
    for first, second in zip(result, moved, strict=True):
        torch.testing.assert_close(first, second)
    # ... and equals aligning the remaining points alone.
    for index in range(3):
        keep = weights[index] > 0
        alone = similarity_procrustes(source[index, keep][None], target[index, keep][None])
        for first, second in zip(result, alone, strict=True):
            torch.testing.assert_close(first[index : index + 1], second)


def test_uniform_weights_equal_no_weights() -> None:
    source = random_points(2, 6, seed=13)
    target = random_points(2, 6, seed=14)
    weighted = similarity_procrustes(source, target, torch.full((2, 6), 0.3, dtype=torch.float64))
    for first, second in zip(weighted, similarity_procrustes(source, target), strict=True):
        torch.testing.assert_close(first, second)


def test_float32_in_float32_out_and_close_to_float64() -> None:
    source = random_points(4, 17, seed=15)
    target = random_points(4, 17, seed=16)
    result32 = similarity_procrustes(source.float(), target.float())
    result64 = similarity_procrustes(source, target)
    for value32, value64 in zip(result32, result64, strict=True):
        assert value32.dtype == torch.float32
        torch.testing.assert_close(value32.double(), value64, atol=1e-5, rtol=1e-5)


def test_degenerate_source_gives_zero_scale_not_nan() -> None:
    target = random_points(2, 5, seed=17)
    source = torch.full((2, 5, 3), 0.1, dtype=torch.float64)
    source[1] = 0.0
    scale, rotation, translation = similarity_procrustes(source, target)
    torch.testing.assert_close(scale, torch.zeros(2, dtype=torch.float64), atol=0, rtol=0)
    torch.testing.assert_close(translation, target.mean(dim=1))
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(2, dtype=torch.float64))
    aligned = procrustes_align(source.float(), target.float())
    assert torch.isfinite(aligned).all()


def test_all_zero_weights_give_finite_result() -> None:
    source = random_points(1, 4, seed=18)
    scale, rotation, translation = similarity_procrustes(source, source, torch.zeros(1, 4))
    assert scale.item() == 0.0
    assert torch.isfinite(rotation).all() and torch.isfinite(translation).all()


def test_inputs_are_not_modified() -> None:
    source = random_points(2, 4, seed=19)
    target = random_points(2, 4, seed=20)
    weights = torch.ones(2, 4, dtype=torch.float64)
    copies = [tensor.clone() for tensor in (source, target, weights)]
    procrustes_align(source, target, weights)
    for tensor, copy in zip((source, target, weights), copies, strict=True):
        torch.testing.assert_close(tensor, copy, atol=0, rtol=0)


def test_gradients_are_finite() -> None:
    source = random_points(2, 17, seed=21).requires_grad_(True)
    target = random_points(2, 17, seed=22)
    mean_joint_distance(procrustes_align(source, target), target).sum().backward()
    assert source.grad is not None and torch.isfinite(source.grad).all()


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        similarity_procrustes(torch.zeros(2, 4, 3), torch.zeros(2, 5, 3))
    with pytest.raises(ValueError):
        similarity_procrustes(torch.zeros(2, 4, 2), torch.zeros(2, 4, 2))
    with pytest.raises(ValueError):
        similarity_procrustes(torch.zeros(2, 4, 3), torch.zeros(2, 4, 3), torch.ones(2, 3))


def test_mirror_value_is_independent_of_the_implementation() -> None:
    """The 0.550938 of metrics.md, recomputed with the NumPy reference."""
    gt = WORKED_EXAMPLE_GT.numpy()
    mirrored = gt * MIRROR_X.numpy()
    scale, rotation, translation = umeyama_reference(mirrored, gt)
    aligned = scale * mirrored @ rotation.T + translation
    assert np.linalg.norm(aligned - gt, axis=1).mean() == pytest.approx(0.550938, abs=1e-6)
    assert not math.isclose(np.linalg.det(rotation), -1.0)
