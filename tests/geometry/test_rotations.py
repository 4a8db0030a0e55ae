"""Rotation conversions against scipy and against the 6D layouts' written definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from geometry import (
    axis_angle_to_matrix,
    axis_angle_to_rotation_6d,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_axis_angle,
    rotation_6d_to_matrix,
)

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def random_axis_angle(shape: tuple[int, ...], max_angle: float, seed: int) -> np.ndarray:
    """Rotation vectors (*shape, 3) with uniform random axes and angles in [0, max_angle]."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(*shape, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = rng.uniform(0.0, max_angle, size=(*shape, 1))
    return axes * angles


def known_rotation() -> torch.Tensor:
    """A float64 rotation matrix far from symmetric (R != R^T)."""
    matrix = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix()
    assert not np.allclose(matrix, matrix.T, atol=0.1)
    return torch.from_numpy(matrix)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_axis_angle_to_matrix_matches_scipy(dtype: torch.dtype) -> None:
    axis_angle = random_axis_angle((4, 5), max_angle=math.pi - 1e-3, seed=0)
    expected = Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix().reshape(4, 5, 3, 3)
    matrix = axis_angle_to_matrix(torch.from_numpy(axis_angle).to(dtype))
    assert matrix.shape == (4, 5, 3, 3) and matrix.dtype == dtype
    np.testing.assert_allclose(matrix.double().numpy(), expected, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matrix_to_axis_angle_matches_scipy_and_round_trips(dtype: torch.dtype) -> None:
    axis_angle = random_axis_angle((64,), max_angle=math.pi - 1e-3, seed=1)
    axis_angle[0] = 0.0  # identity
    axis_angle[1] = [1e-8, 0.0, 0.0]  # tiny angle
    axis_angle[2] = [0.0, 0.0, math.pi - 1e-3]  # close to the pi ambiguity
    matrices = Rotation.from_rotvec(axis_angle).as_matrix()
    recovered = matrix_to_axis_angle(torch.from_numpy(matrices).to(dtype))
    assert recovered.shape == (64, 3) and recovered.dtype == dtype
    # Near pi the axis is ill-conditioned in float32 (sin(angle / 2) over a small cosine).
    atol = 1e-3 if dtype == torch.float32 else 1e-8
    np.testing.assert_allclose(recovered.double().numpy(), axis_angle, atol=atol)
    np.testing.assert_allclose(
        recovered.double().numpy(), Rotation.from_matrix(matrices).as_rotvec(), atol=atol
    )
    round_trip = axis_angle_to_matrix(recovered)
    np.testing.assert_allclose(round_trip.double().numpy(), matrices, atol=TOLERANCE[dtype] * 10)


def test_matrix_to_axis_angle_angle_is_at_most_pi() -> None:
    # Angles above pi come back as the equivalent rotation about the opposite axis.
    axis_angle = torch.tensor([[0.0, 0.0, 1.5 * math.pi], [0.0, 4.0, 0.0]], dtype=torch.float64)
    recovered = matrix_to_axis_angle(axis_angle_to_matrix(axis_angle))
    expected = torch.tensor([[0.0, 0.0, -0.5 * math.pi], [0.0, 4.0 - 2 * math.pi, 0.0]])
    torch.testing.assert_close(recovered, expected.double())
    assert (recovered.norm(dim=-1) <= math.pi).all()


def test_6d_layouts_follow_their_definitions_element_by_element() -> None:
    matrix = known_rotation()
    r = matrix.numpy()
    columns = matrix_to_rotation_6d(matrix, layout="columns").numpy()
    rows = matrix_to_rotation_6d(matrix, layout="rows").numpy()
    # "columns" (SPIN/PARE): 3x2 matrix of the first two columns of R, row-major.
    expected_columns = [r[0, 0], r[0, 1], r[1, 0], r[1, 1], r[2, 0], r[2, 1]]
    # "rows" (pytorch3d): the first two rows of R.
    expected_rows = [r[0, 0], r[0, 1], r[0, 2], r[1, 0], r[1, 1], r[1, 2]]
    np.testing.assert_array_equal(columns, expected_columns)
    np.testing.assert_array_equal(rows, expected_rows)
    assert not np.allclose(columns, rows, atol=1e-3)
    for layout, values in (("columns", expected_columns), ("rows", expected_rows)):
        rebuilt = rotation_6d_to_matrix(torch.tensor(values, dtype=torch.float64), layout=layout)
        torch.testing.assert_close(rebuilt, matrix)


def test_6d_default_layout_is_columns() -> None:
    matrix = known_rotation()
    torch.testing.assert_close(
        matrix_to_rotation_6d(matrix), matrix_to_rotation_6d(matrix, layout="columns")
    )
    rows = matrix_to_rotation_6d(matrix, layout="rows")
    assert not torch.allclose(rotation_6d_to_matrix(rows), matrix, atol=1e-3)


def test_6d_decoding_orthonormalises_the_right_vectors() -> None:
    """Gram-Schmidt keeps the first vector's direction: columns for "columns", rows for "rows"."""
    matrix = known_rotation()
    first_column, second_column = matrix[:, 0], matrix[:, 1]
    skewed_columns = torch.stack((2.0 * first_column, 3.0 * second_column + 0.5 * first_column))
    columns_6d = skewed_columns.T.flatten()  # 3x2 row-major
    torch.testing.assert_close(rotation_6d_to_matrix(columns_6d, layout="columns"), matrix)

    first_row, second_row = matrix[0], matrix[1]
    rows_6d = torch.cat((0.5 * first_row, 4.0 * second_row - 0.7 * first_row))
    torch.testing.assert_close(rotation_6d_to_matrix(rows_6d, layout="rows"), matrix)


@pytest.mark.parametrize("layout", ["columns", "rows"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_6d_round_trip(layout: str, dtype: torch.dtype) -> None:
    axis_angle = torch.from_numpy(random_axis_angle((3, 7), math.pi - 1e-3, seed=2)).to(dtype)
    matrix = axis_angle_to_matrix(axis_angle)
    rot6d = matrix_to_rotation_6d(matrix, layout=layout)
    assert rot6d.shape == (3, 7, 6) and rot6d.dtype == dtype
    rebuilt = rotation_6d_to_matrix(rot6d, layout=layout)
    torch.testing.assert_close(rebuilt, matrix, atol=TOLERANCE[dtype] * 10, rtol=0)
    torch.testing.assert_close(axis_angle_to_rotation_6d(axis_angle, layout=layout), rot6d)
    torch.testing.assert_close(
        rotation_6d_to_axis_angle(rot6d, layout=layout),
        axis_angle,
        atol=1e-3 if dtype == torch.float32 else 1e-8,
        rtol=0,
    )


def test_6d_output_is_a_rotation_for_arbitrary_input() -> None:
    generator = torch.Generator().manual_seed(3)
    rot6d = torch.randn(100, 6, generator=generator, dtype=torch.float64)
    for layout in ("columns", "rows"):
        matrix = rotation_6d_to_matrix(rot6d, layout=layout)
        identity = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
        torch.testing.assert_close(matrix @ matrix.transpose(-1, -2), identity)
        torch.testing.assert_close(torch.linalg.det(matrix), torch.ones(100, dtype=torch.float64))


@pytest.mark.parametrize(
    "function",
    [
        rotation_6d_to_matrix,
        matrix_to_rotation_6d,
        axis_angle_to_rotation_6d,
        rotation_6d_to_axis_angle,
    ],
)
def test_unknown_6d_layout_raises(function) -> None:
    inputs = {
        rotation_6d_to_matrix: torch.zeros(6),
        matrix_to_rotation_6d: torch.eye(3),
        axis_angle_to_rotation_6d: torch.zeros(3),
        rotation_6d_to_axis_angle: torch.zeros(6),
    }
    with pytest.raises(ValueError, match=r"columns.*rows"):
        function(inputs[function], layout="pytorch3d")


def test_wrong_shapes_raise() -> None:
    with pytest.raises(ValueError):
        axis_angle_to_matrix(torch.zeros(4, 6))
    with pytest.raises(ValueError):
        rotation_6d_to_matrix(torch.zeros(4, 9))


def test_geodesic_angle_matches_scipy() -> None:
    first = random_axis_angle((50,), math.pi, seed=4)
    second = random_axis_angle((50,), math.pi, seed=5)
    first_matrix = torch.from_numpy(Rotation.from_rotvec(first).as_matrix())
    second_matrix = torch.from_numpy(Rotation.from_rotvec(second).as_matrix())
    relative = Rotation.from_rotvec(first).inv() * Rotation.from_rotvec(second)
    angle = geodesic_angle(first_matrix, second_matrix)
    assert angle.shape == (50,)
    np.testing.assert_allclose(angle.numpy(), relative.magnitude(), atol=1e-9)


def test_geodesic_angle_small_large_and_identical() -> None:
    base = known_rotation()
    for angle in (1e-7, 0.25, math.pi - 1e-6):
        turn = axis_angle_to_matrix(torch.tensor([0.0, angle, 0.0], dtype=torch.float64))
        result = geodesic_angle(base, base @ turn)
        assert result.item() == pytest.approx(angle, rel=1e-6)
    assert geodesic_angle(base, base).item() == 0.0
    # Slightly non-orthonormal inputs at pi still give a number, not NaN.
    flip = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)) * (1 + 1e-9)
    assert geodesic_angle(torch.eye(3, dtype=torch.float64), flip).item() == pytest.approx(math.pi)


def test_geodesic_angle_broadcasts() -> None:
    axis_angle = random_axis_angle((2, 5), 3.0, seed=6)
    matrices = axis_angle_to_matrix(torch.from_numpy(axis_angle))
    angle = geodesic_angle(matrices, torch.eye(3, dtype=torch.float64))
    assert angle.shape == (2, 5)
    np.testing.assert_allclose(angle.numpy(), np.linalg.norm(axis_angle, axis=-1), atol=1e-9)


def test_inputs_are_not_modified() -> None:
    axis_angle = torch.from_numpy(random_axis_angle((8,), 3.0, seed=7))
    original = axis_angle.clone()
    matrix = axis_angle_to_matrix(axis_angle)
    matrix_copy = matrix.clone()
    for layout in ("columns", "rows"):
        rot6d = matrix_to_rotation_6d(matrix, layout=layout)
        rot6d_copy = rot6d.clone()
        rotation_6d_to_matrix(rot6d, layout=layout)
        torch.testing.assert_close(rot6d, rot6d_copy, atol=0, rtol=0)
    matrix_to_axis_angle(matrix)
    torch.testing.assert_close(axis_angle, original, atol=0, rtol=0)
    torch.testing.assert_close(matrix, matrix_copy, atol=0, rtol=0)
