"""Rigging the mannequin mesh: part labels, skinning weights, joint regressors, shape space.

All functions take the closed, symmetric mesh of `surface.py` (vertices (V,3), faces (F,3)) and
its mirror map (mirror[i] = index of the reflection of vertex i), and return arrays that respect
the symmetry exactly: mirrored vertices get mirrored parts, weights and regressor rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.optimize
import scipy.sparse

from body.joint_sets import SMPL_JOINTS, SMPL_PARENTS
from body.mannequin.design import Capsule, Primitive, mirror_index
from body.mannequin.surface import primitive_distance

NUM_JOINTS = 24
JOINT_MIRROR = np.array([mirror_index(j) for j in range(NUM_JOINTS)])


def part_labels(
    vertices: np.ndarray, primitives: Sequence[Primitive], side: np.ndarray
) -> np.ndarray:
    """(V,) SMPL part (0..23) of each vertex: the part of the primitive it is nearest to.

    Midline vertices (side 0) only consider midline parts, so labels stay symmetric.
    """
    distances = np.stack([primitive_distance(vertices, p) for p in primitives], axis=1)
    parts = np.array([p.part for p in primitives])
    midline_parts = JOINT_MIRROR[parts] == parts
    distances[np.ix_(side == 0, ~midline_parts)] = np.inf
    return parts[np.argmin(distances, axis=1)]


def vertex_adjacency(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    """Row-normalised (V,V) averaging operator over each vertex's one-ring."""
    rows = np.concatenate(
        [faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]]
    )
    cols = np.concatenate(
        [faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]]
    )
    adjacency = scipy.sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), (num_vertices,) * 2)
    adjacency = adjacency.tocsr()
    adjacency.data[:] = 1.0
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return scipy.sparse.diags(1.0 / degree) @ adjacency


def smooth(
    field: np.ndarray, averaging: scipy.sparse.csr_matrix, iterations: int, rate: float = 0.5
):
    """Laplacian smoothing of a per-vertex field (V,...) by repeated one-ring averaging."""
    flat = field.reshape(len(field), -1)
    for _ in range(iterations):
        flat = (1.0 - rate) * flat + rate * (averaging @ flat)
    return flat.reshape(field.shape)


def _kinematic_neighbours(part: int) -> list[int]:
    children = [j for j, parent in enumerate(SMPL_PARENTS) if parent == part]
    parent = SMPL_PARENTS[part]
    return [part, *children, *([parent] if parent >= 0 else [])]


def skinning_weights(labels: np.ndarray, averaging, iterations: int = 6) -> np.ndarray:
    """(V,24) smooth skinning weights that sum to 1 and follow the parts.

    One-hot part labels are smoothed over the mesh, then each vertex keeps only its own part,
    that part's parent and its children (no weight leaks between, say, the two thighs).
    """
    weights = np.eye(NUM_JOINTS)[labels]
    weights = smooth(weights, averaging, iterations)
    allowed = np.zeros((NUM_JOINTS, NUM_JOINTS), dtype=bool)
    for part in range(NUM_JOINTS):
        allowed[part, _kinematic_neighbours(part)] = True
    weights = weights * allowed[labels]
    return weights / weights.sum(axis=1, keepdims=True)


def _ring_vertices(vertices: np.ndarray, point: np.ndarray, axis: np.ndarray, reach: float):
    """Vertices in a thin slab through `point` perpendicular to `axis`, within `reach`."""
    axis = axis / np.linalg.norm(axis)
    offset = vertices - point
    along = np.abs(offset @ axis)
    distance = np.linalg.norm(offset, axis=1)
    for half_width in (0.012, 0.02, 0.03, 0.045):
        chosen = np.flatnonzero((along < half_width) & (distance < reach))
        if len(chosen) >= 12:
            return chosen
    raise ValueError(f"no ring of vertices around the point {point.round(3)}")


def regressor_row(vertices: np.ndarray, point: np.ndarray, axis: np.ndarray, reach: float = 0.16):
    """Sparse non-negative weights over a ring of vertices whose weighted mean is `point`.

    Solves min ||V^T w - point||^2 + ||1^T w - 1||^2 (both heavily weighted) + ||w - uniform||^2
    with w >= 0, so the row reproduces the point and spreads its weight smoothly.
    Returns (indices (K,), weights (K,)).
    """
    ring = _ring_vertices(vertices, point, axis, reach)
    k = len(ring)
    strong = 100.0
    system = np.vstack([strong * vertices[ring].T, strong * np.ones((1, k)), np.eye(k)])
    target = np.concatenate([strong * point, [strong], np.full(k, 1.0 / k)])
    weights, _ = scipy.optimize.nnls(system, target, maxiter=50 * k)
    keep = weights > 1e-6
    weights = weights[keep] / weights[keep].sum()
    return ring[keep], weights


def regressor(
    vertices: np.ndarray,
    points: np.ndarray,
    axes: np.ndarray,
    mirror: np.ndarray,
    point_mirror: np.ndarray,
) -> np.ndarray:
    """(P,V) dense regressor for points (P,3) with ring axes (P,3), mirror-symmetric.

    `point_mirror[p]` is the index of the point on the other side of the body (itself on the
    midline). Rows of left and midline points are solved; right rows are their mirror images,
    midline rows are symmetrised.
    """
    matrix = np.zeros((len(points), len(vertices)))
    for p, (point, axis) in enumerate(zip(points, axes, strict=True)):
        if point[0] < -1e-9:
            continue
        indices, weights = regressor_row(vertices, point, axis)
        matrix[p, indices] = weights
    for p in range(len(points)):
        q = point_mirror[p]
        if q != p and points[p][0] < -1e-9:
            matrix[p, mirror] = matrix[q]
        elif q == p:
            matrix[p] = 0.5 * (matrix[p] + matrix[p, mirror])
    return matrix


def joint_axes(joints: np.ndarray) -> np.ndarray:
    """(24,3) direction of the bone leaving each joint (towards its child, else from its parent)."""
    axes = np.zeros_like(joints)
    for joint in range(NUM_JOINTS):
        children = [c for c, parent in enumerate(SMPL_PARENTS) if parent == joint]
        if len(children) > 1:  # the pelvis and spine3 branch three ways: use the spine direction
            axes[joint] = (0.0, 1.0, 0.0)
        elif children:
            axes[joint] = joints[children[0]] - joints[joint]
        else:
            axes[joint] = joints[joint] - joints[SMPL_PARENTS[joint]]
    return axes


def radial_offsets(vertices: np.ndarray, labels: np.ndarray, primitives: Sequence[Primitive]):
    """(V,3) offset of each vertex from the axis of the nearest primitive of its own part."""
    offsets = np.zeros_like(vertices)
    for part in np.unique(labels):
        members = np.flatnonzero(labels == part)
        own = [p for p in primitives if p.part == part]
        distances = np.stack([primitive_distance(vertices[members], p) for p in own], axis=1)
        nearest = np.argmin(distances, axis=1)
        for index, primitive in enumerate(own):
            chosen = members[nearest == index]
            offsets[chosen] = vertices[chosen] - _axis_point(vertices[chosen], primitive)
    return offsets


def _axis_point(points: np.ndarray, primitive: Primitive) -> np.ndarray:
    if isinstance(primitive, Capsule):
        start = np.asarray(primitive.start)
        axis = np.asarray(primitive.end) - start
        h = np.clip((points - start) @ axis / (axis @ axis), 0.0, 1.0)
        return start + h[:, None] * axis
    center = np.asarray(primitive.center)
    return np.column_stack(
        [np.full(len(points), center[0]), points[:, 1], np.full(len(points), center[2])]
    )


def _in_parts(labels: np.ndarray, *names: str) -> np.ndarray:
    """(V,) 1.0 where a vertex's part is one of the named SMPL parts (by joint name)."""
    return np.isin(labels, [SMPL_JOINTS.index(n) for n in names]).astype(float)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def shape_components(
    vertices: np.ndarray, labels: np.ndarray, radial: np.ndarray, joints: np.ndarray
) -> list[Callable[[], np.ndarray]]:
    """The ten shape components as displacement fields (V,3) for beta = +1 (metres).

    Each is a smooth function of the rest position; signs are chosen so that +1 means taller,
    heavier, longer-legged and so on (see the names in SHAPE_COMPONENT_NAMES).
    """
    x, y, z = vertices.T
    side = np.sign(x)
    torso = _in_parts(labels, "pelvis", "spine1", "spine2", "spine3")
    limbs = _in_parts(
        labels,
        *[
            f"{side}_{joint}"
            for side in ("left", "right")
            for joint in ("hip", "knee", "shoulder", "elbow")
        ],
    )
    head = _in_parts(labels, "head")
    joint = dict(zip(SMPL_JOINTS, joints, strict=True))
    crotch_y = joint["left_hip"][1] - 0.05
    shoulder_x = joint["left_shoulder"][0] - 0.02
    below_waist = _sigmoid((joint["spine1"][1] - y) / 0.03)
    upper_body = _sigmoid((y - joint["spine2"][1]) / 0.04)
    head_center = np.array([0.0, joint["head"][1] + 0.05, 0.01])

    def field(dx=0.0, dy=0.0, dz=0.0) -> np.ndarray:
        return np.column_stack(np.broadcast_arrays(dx, dy, dz, x)[:3]).astype(float)

    def ramp(u: np.ndarray, softness: float = 0.02) -> np.ndarray:
        """Smooth max(u, 0)."""
        return softness * np.logaddexp(0.0, u / softness)

    return [
        lambda: 0.04 * vertices,  # 0: overall size and height
        lambda: 0.09 * radial * (0.5 + torso)[:, None],  # 1: weight / girth
        lambda: field(dy=-0.06 * ramp(crotch_y - y)),  # 2: leg length
        lambda: field(dx=0.07 * side * ramp(np.abs(x) - shoulder_x)),  # 3: arm length
        lambda: field(
            dx=0.07 * side * np.minimum(np.abs(x), shoulder_x) * upper_body
        ),  # 4: shoulders
        lambda: field(dx=0.1 * side * np.minimum(np.abs(x), 0.12) * below_waist),  # 5: hips
        lambda: field(
            dz=0.25 * torso * ramp(z, 0.01) * np.exp(-(((y + 0.12) / 0.12) ** 2))
        ),  # 6: belly
        lambda: 0.06 * (vertices - head_center) * head[:, None],  # 7: head size
        lambda: field(dz=0.06 * torso * z * np.exp(-(((y - 0.1) / 0.1) ** 2))),  # 8: chest depth
        lambda: 0.1 * radial * limbs[:, None],  # 9: limb thickness
    ]


SHAPE_COMPONENT_NAMES = (
    "size",
    "girth",
    "leg_length",
    "arm_length",
    "shoulder_width",
    "hip_width",
    "belly",
    "head_size",
    "chest_depth",
    "limb_thickness",
)


def shapedirs(vertices, labels, radial, joints, averaging, mirror) -> np.ndarray:
    """(V,3,10) smoothed, exactly symmetric shape displacement basis."""
    components = shape_components(vertices, labels, radial, joints)
    basis = np.stack([make() for make in components], axis=-1)  # (V,3,10)
    basis = smooth(basis, averaging, iterations=8)
    mirrored = basis[mirror] * np.array([-1.0, 1.0, 1.0])[None, :, None]
    return 0.5 * (basis + mirrored)
