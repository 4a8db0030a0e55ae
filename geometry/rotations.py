"""Rotation representations: axis-angle, 3x3 matrices and the two 6D layouts in use.

Conversions between axis-angle and matrices, Gram-Schmidt and the geodesic distance come from
roma (a small, well-kept and tested PyTorch library); this module only fixes names, shapes and
the 6D layouts, so that every method converts the same way.

Conventions:
    - Rotation matrices act on column vectors: ``x_rotated = R @ x``.
    - Axis-angle (rotation vector) ``v = angle * unit_axis``, angle in radians; the right-hand
      rule gives the direction of rotation. SMPL's ``pose`` uses this representation.
    - 6D representations, two layouts (see datasets.md 9.4b):

      ``"columns"`` (SPIN, PARE, ``smpl_mean_params.npz``): the 6 numbers are a 3x2 matrix in
      row-major order whose two columns are the first two columns of R, i.e.
      ``[R00, R01, R10, R11, R20, R21]``.

      ``"rows"`` (pytorch3d, Zhou et al. 2019): the first two rows of R, i.e.
      ``[R00, R01, R02, R10, R11, R12]``.

      Decoding runs Gram-Schmidt on the two vectors, as SPIN and pytorch3d do (norms clamped
      from below at 1e-12, like their ``F.normalize``).

All functions are batched over any leading dimensions and never modify their inputs.
"""

from __future__ import annotations

import roma
from torch import Tensor

ROTATION_6D_LAYOUTS = ("columns", "rows")

_GRAM_SCHMIDT_EPS = 1e-12


def _check_layout(layout: str) -> None:
    if layout not in ROTATION_6D_LAYOUTS:
        raise ValueError(f"unknown 6D layout {layout!r}; valid layouts: {ROTATION_6D_LAYOUTS}")


def _check_trailing_shape(tensor: Tensor, shape: tuple[int, ...], name: str) -> None:
    if tuple(tensor.shape[-len(shape) :]) != shape:
        raise ValueError(
            f"{name} must have shape (..., {', '.join(map(str, shape))}), got {tuple(tensor.shape)}"
        )


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rotation vectors (..., 3), radians, to rotation matrices (..., 3, 3) (Rodrigues)."""
    _check_trailing_shape(axis_angle, (3,), "axis_angle")
    return roma.rotvec_to_rotmat(axis_angle)


def matrix_to_axis_angle(matrix: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) to rotation vectors (..., 3) with angle in [0, pi].

    At exactly pi the sign of the axis is arbitrary (both signs are the same rotation).
    """
    _check_trailing_shape(matrix, (3, 3), "matrix")
    return roma.rotmat_to_rotvec(matrix)


def rotation_6d_to_matrix(rot6d: Tensor, layout: str = "columns") -> Tensor:
    """6D rotations (..., 6) in the given layout to rotation matrices (..., 3, 3).

    The input need not be normalised: Gram-Schmidt orthonormalises the two 3-vectors (the
    first one keeps its direction). See the module docstring for the two layouts.
    """
    _check_layout(layout)
    _check_trailing_shape(rot6d, (6,), "rot6d")
    if layout == "columns":
        first_two_columns = rot6d.unflatten(-1, (3, 2))  # (..., 3, 2)
        return roma.special_gramschmidt(first_two_columns, epsilon=_GRAM_SCHMIDT_EPS)
    first_two_rows = rot6d.unflatten(-1, (2, 3))  # (..., 2, 3)
    transposed = roma.special_gramschmidt(
        first_two_rows.transpose(-1, -2), epsilon=_GRAM_SCHMIDT_EPS
    )  # (..., 3, 3), columns are the rows of R
    return transposed.transpose(-1, -2)


def matrix_to_rotation_6d(matrix: Tensor, layout: str = "columns") -> Tensor:
    """Rotation matrices (..., 3, 3) to 6D rotations (..., 6) in the given layout."""
    _check_layout(layout)
    _check_trailing_shape(matrix, (3, 3), "matrix")
    if layout == "columns":
        return matrix[..., :, :2].flatten(-2).clone()  # [R00, R01, R10, R11, R20, R21]
    return matrix[..., :2, :].flatten(-2).clone()  # [R00, R01, R02, R10, R11, R12]


def axis_angle_to_rotation_6d(axis_angle: Tensor, layout: str = "columns") -> Tensor:
    """Rotation vectors (..., 3), radians, to 6D rotations (..., 6) in the given layout."""
    _check_layout(layout)
    return matrix_to_rotation_6d(axis_angle_to_matrix(axis_angle), layout=layout)


def rotation_6d_to_axis_angle(rot6d: Tensor, layout: str = "columns") -> Tensor:
    """6D rotations (..., 6) in the given layout to rotation vectors (..., 3), angle in [0, pi]."""
    return matrix_to_axis_angle(rotation_6d_to_matrix(rot6d, layout=layout))


def geodesic_angle(rotation_1: Tensor, rotation_2: Tensor) -> Tensor:
    """Angle in radians, in [0, pi], of the rotation taking ``rotation_1`` to ``rotation_2``.

    Args:
        rotation_1, rotation_2: rotation matrices (..., 3, 3), broadcastable against each other.

    Returns:
        (...) angles in radians. Computed as ``2 asin(|R2 - R1|_F / (2 sqrt 2))`` with the asin
        argument clamped to at most 1, which is accurate for small angles (unlike the
        trace/acos formula) and never NaN for slightly non-orthonormal inputs.
    """
    _check_trailing_shape(rotation_1, (3, 3), "rotation_1")
    _check_trailing_shape(rotation_2, (3, 3), "rotation_2")
    return roma.rotmat_geodesic_distance(rotation_1, rotation_2)


def chordal_mean(rotations: Tensor, dim: int = 0) -> Tensor:
    """The chordal L2 mean of rotation matrices along `dim`: the rotation nearest (Frobenius)
    to their arithmetic mean, by roma's special Procrustes (SVD, determinant +1).

    Args:
        rotations: (..., N, ..., 3, 3) with the N rotations to average on axis `dim` (which
            must not be one of the last two).
    """
    _check_trailing_shape(rotations, (3, 3), "rotations")
    if dim % rotations.ndim >= rotations.ndim - 2:
        raise ValueError(f"dim {dim} must not be a matrix axis of shape {tuple(rotations.shape)}")
    return roma.special_procrustes(rotations.mean(dim=dim))
