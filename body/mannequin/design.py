"""The mannequin's anatomy: rest-pose skeleton and the primitives its surface is made of.

Everything here is in SMPL's rest frame and units: metres, T-pose, y up, facing +z, the
subject's left at +x. Only the left side and the midline are written down; the right side is
the mirror image (x -> -x), so the body is exactly bilaterally symmetric.

The surface is the zero level set of a smooth union of signed distance primitives (tapered
capsules and ellipsoids), one set per body part. Each primitive belongs to the SMPL joint that
drives it (its "part"), which is how vertices later get their part label and skinning weights.
The numbers are hand-tuned proportions of a 1.70 m adult; they are not taken from SMPL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from body.joint_sets import SMPL_FLIP_PERMUTATION, SMPL_JOINTS


def mirror_index(index: int) -> int:
    """The joint (or part) on the other side of the body."""
    return SMPL_FLIP_PERMUTATION[index]


@dataclass(frozen=True)
class Capsule:
    """A tapered capsule from `start` to `end` with radii `r_start`, `r_end` (metres)."""

    part: int
    start: tuple[float, float, float]
    end: tuple[float, float, float]
    r_start: float
    r_end: float


@dataclass(frozen=True)
class Ellipsoid:
    """An axis-aligned ellipsoid with semi-axes `radii` (x, y, z) in metres."""

    part: int
    center: tuple[float, float, float]
    radii: tuple[float, float, float]


Primitive = Capsule | Ellipsoid


# Rest-pose joint positions of the neutral mannequin (left side and midline).
_JOINTS_LEFT: dict[str, tuple[float, float, float]] = {
    "pelvis": (0.0, -0.225, 0.0),
    "left_hip": (0.078, -0.305, -0.005),
    "spine1": (0.0, -0.115, -0.02),
    "left_knee": (0.092, -0.715, 0.0),
    "spine2": (0.0, 0.015, -0.015),
    "left_ankle": (0.085, -1.095, -0.04),
    "spine3": (0.0, 0.07, -0.01),
    "left_foot": (0.1, -1.152, 0.085),
    "neck": (0.0, 0.285, -0.025),
    "left_collar": (0.07, 0.195, -0.015),
    "head": (0.0, 0.365, 0.0),
    "left_shoulder": (0.18, 0.215, -0.025),
    "left_elbow": (0.44, 0.2, -0.035),
    "left_wrist": (0.69, 0.205, -0.035),
    "left_hand": (0.775, 0.2, -0.035),
}


def rest_joints() -> np.ndarray:
    """(24, 3) rest-pose joint positions of the neutral mannequin, metres, SMPL order."""
    joints = np.zeros((24, 3))
    for index, name in enumerate(SMPL_JOINTS):
        if name in _JOINTS_LEFT:
            joints[index] = _JOINTS_LEFT[name]
    for index, name in enumerate(SMPL_JOINTS):
        if name.startswith("right_"):
            joints[index] = joints[mirror_index(index)] * (-1.0, 1.0, 1.0)
    return joints


def _joint(name: str) -> tuple[float, float, float]:
    return _JOINTS_LEFT[name]


def _offset(name: str, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0):
    x, y, z = _joint(name)
    return (x + dx, y + dy, z + dz)


def _part(name: str) -> int:
    return SMPL_JOINTS.index(name)


def left_and_midline_primitives() -> list[Primitive]:
    """The primitives of the midline and the left side (x >= 0) of the neutral body."""
    return [
        # Torso, bottom to top.
        Ellipsoid(_part("pelvis"), (0.0, -0.25, -0.012), (0.165, 0.12, 0.112)),
        Ellipsoid(_part("spine1"), (0.0, -0.11, -0.002), (0.148, 0.12, 0.106)),
        Ellipsoid(_part("spine2"), (0.0, 0.02, 0.002), (0.155, 0.115, 0.112)),
        Ellipsoid(_part("spine3"), (0.0, 0.135, -0.01), (0.168, 0.11, 0.105)),
        Capsule(
            _part("left_collar"),
            (0.03, 0.2, -0.025),
            _offset("left_shoulder", 0.0, 0.0),
            0.052,
            0.05,
        ),
        # Neck and head.
        Capsule(_part("neck"), (0.0, 0.22, -0.025), _offset("head", 0.0, 0.0, 0.0), 0.052, 0.05),
        Ellipsoid(_part("head"), (0.0, 0.425, 0.012), (0.077, 0.098, 0.094)),
        Ellipsoid(_part("head"), (0.0, 0.37, 0.045), (0.055, 0.05, 0.06)),  # jaw
        Ellipsoid(_part("head"), (0.0, 0.405, 0.104), (0.013, 0.022, 0.022)),  # nose
        Ellipsoid(_part("head"), (0.077, 0.415, 0.0), (0.012, 0.026, 0.017)),  # left ear
        # Left arm (palm facing down, thumb forward, as in SMPL's T-pose).
        Capsule(_part("left_shoulder"), _joint("left_shoulder"), _joint("left_elbow"), 0.05, 0.038),
        Capsule(_part("left_elbow"), _joint("left_elbow"), _joint("left_wrist"), 0.038, 0.028),
        Ellipsoid(_part("left_wrist"), _offset("left_wrist", 0.045, -0.003), (0.05, 0.019, 0.041)),
        Ellipsoid(_part("left_hand"), _offset("left_hand", 0.04, -0.004), (0.05, 0.014, 0.039)),
        Capsule(
            _part("left_hand"),
            _offset("left_wrist", 0.03, -0.006, 0.03),
            _offset("left_wrist", 0.085, -0.01, 0.068),
            0.014,
            0.011,
        ),  # thumb
        # Left leg.
        Capsule(
            _part("left_hip"), _offset("left_hip", 0.008, 0.0), _joint("left_knee"), 0.088, 0.055
        ),
        Capsule(_part("left_knee"), _joint("left_knee"), _joint("left_ankle"), 0.053, 0.035),
        Capsule(
            _part("left_ankle"),
            _offset("left_ankle", 0.0, -0.052, -0.025),
            _offset("left_foot", 0.0, 0.0, -0.005),
            0.033,
            0.034,
        ),
        Capsule(
            _part("left_foot"),
            _offset("left_foot", 0.0, -0.004, 0.0),
            _offset("left_foot", 0.005, -0.008, 0.06),
            0.03,
            0.022,
        ),
    ]


def all_primitives() -> list[Primitive]:
    """Every primitive of the neutral body: the left side, the midline and the mirrored right."""
    result: list[Primitive] = []
    for primitive in left_and_midline_primitives():
        result.append(primitive)
        mirrored = _mirror(primitive)
        if mirrored is not None:
            result.append(mirrored)
    return result


def _mirror(primitive: Primitive) -> Primitive | None:
    """The right-side copy of a left-side primitive; None for midline primitives."""
    flip = np.array([-1.0, 1.0, 1.0])
    if isinstance(primitive, Ellipsoid):
        if primitive.center[0] == 0.0:
            return None
        center = tuple(np.asarray(primitive.center) * flip)
        return Ellipsoid(mirror_index(primitive.part), center, primitive.radii)
    if primitive.start[0] == 0.0 and primitive.end[0] == 0.0:
        return None
    start = tuple(np.asarray(primitive.start) * flip)
    end = tuple(np.asarray(primitive.end) * flip)
    return Capsule(mirror_index(primitive.part), start, end, primitive.r_start, primitive.r_end)


# smplx picks its 21 extra keypoints by fixed vertex numbers (`vertex_ids['smplh']`). The
# mannequin puts a vertex at each of these numbers, chosen as the vertex nearest to the
# landmark's place on the body below. Right-side landmarks are the mirror images of the left.
SMPLX_LANDMARK_VERTEX_IDS: dict[str, int] = {
    "nose": 332,
    "reye": 6260,
    "leye": 2800,
    "rear": 4071,
    "lear": 583,
    "LBigToe": 3216,
    "LSmallToe": 3226,
    "LHeel": 3387,
    "RBigToe": 6617,
    "RSmallToe": 6624,
    "RHeel": 6787,
    "lthumb": 2746,
    "lindex": 2319,
    "lmiddle": 2445,
    "lring": 2556,
    "lpinky": 2673,
    "rthumb": 6191,
    "rindex": 5782,
    "rmiddle": 5905,
    "rring": 6016,
    "rpinky": 6133,
}

# Where each left-side or midline landmark sits (the nearest surface vertex is taken).
# The hand is a mitten with a thumb: the four fingertips are spread along its distal edge,
# index finger towards the thumb (+z, since palms face down in SMPL's T-pose).
SMPLX_LANDMARK_PLACES: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, 0.405, 0.13),
    "leye": (0.032, 0.445, 0.1),
    "lear": (0.09, 0.415, 0.0),
    "LBigToe": (0.085, -1.165, 0.17),
    "LSmallToe": (0.13, -1.165, 0.15),
    "LHeel": (0.085, -1.175, -0.105),
    "lthumb": (0.785, 0.188, 0.045),
    "lindex": (0.86, 0.194, -0.008),
    "lmiddle": (0.868, 0.194, -0.03),
    "lring": (0.862, 0.194, -0.052),
    "lpinky": (0.848, 0.194, -0.07),
}

# The mirror-image partner of each left landmark.
SMPLX_LANDMARK_MIRROR = {
    "leye": "reye",
    "lear": "rear",
    "LBigToe": "RBigToe",
    "LSmallToe": "RSmallToe",
    "LHeel": "RHeel",
    "lthumb": "rthumb",
    "lindex": "rindex",
    "lmiddle": "rmiddle",
    "lring": "rring",
    "lpinky": "rpinky",
}

# SPIN's J_regressor_h36m.npy rows (SPIN order, datasets.md 0.3): name, place, ring axis.
# Human3.6M's marker-based joints differ from SMPL's: the pelvis sits lower, the hips wider.
H36M_REGRESSOR_DESIGN: tuple[
    tuple[str, tuple[float, float, float], tuple[float, float, float]], ...
] = (
    ("pelvis", (0.0, -0.27, 0.0), (0.0, 1.0, 0.0)),
    ("left_hip", (0.105, -0.315, 0.0), (0.01, -1.0, 0.0)),
    ("left_knee", (0.092, -0.715, 0.005), (0.0, -1.0, -0.1)),
    ("left_ankle", (0.085, -1.1, -0.045), (0.0, -1.0, 0.0)),
    ("right_hip", (-0.105, -0.315, 0.0), (-0.01, -1.0, 0.0)),
    ("right_knee", (-0.092, -0.715, 0.005), (0.0, -1.0, -0.1)),
    ("right_ankle", (-0.085, -1.1, -0.045), (0.0, -1.0, 0.0)),
    ("spine", (0.0, -0.02, -0.03), (0.0, 1.0, 0.0)),
    ("thorax", (0.0, 0.225, -0.02), (0.0, 1.0, 0.0)),
    ("jaw", (0.0, 0.385, 0.045), (0.0, 1.0, 0.0)),
    ("head_top", (0.0, 0.5, 0.01), (0.0, 1.0, 0.0)),
    ("left_shoulder", (0.175, 0.215, -0.025), (1.0, 0.0, 0.0)),
    ("left_elbow", (0.44, 0.2, -0.035), (1.0, 0.0, 0.0)),
    ("left_wrist", (0.69, 0.205, -0.035), (1.0, 0.0, 0.0)),
    ("right_shoulder", (-0.175, 0.215, -0.025), (-1.0, 0.0, 0.0)),
    ("right_elbow", (-0.44, 0.2, -0.035), (-1.0, 0.0, 0.0)),
    ("right_wrist", (-0.69, 0.205, -0.035), (-1.0, 0.0, 0.0)),
)

# SPIN's J_regressor_extra.npy rows (datasets.md 9.4, SPIN joints 45..53).
EXTRA_REGRESSOR_DESIGN: tuple[
    tuple[str, tuple[float, float, float], tuple[float, float, float]], ...
] = (
    ("lsp_right_hip", (-0.1, -0.33, 0.0), (-0.01, -1.0, 0.0)),
    ("lsp_left_hip", (0.1, -0.33, 0.0), (0.01, -1.0, 0.0)),
    ("lsp_neck", (0.0, 0.25, -0.02), (0.0, 1.0, 0.0)),
    ("lsp_head_top", (0.0, 0.505, 0.01), (0.0, 1.0, 0.0)),
    ("mpii_pelvis", (0.0, -0.3, 0.0), (0.0, 1.0, 0.0)),
    ("mpii_thorax", (0.0, 0.21, -0.02), (0.0, 1.0, 0.0)),
    ("h36m_spine", (0.0, -0.02, -0.03), (0.0, 1.0, 0.0)),
    ("h36m_jaw", (0.0, 0.385, 0.045), (0.0, 1.0, 0.0)),
    ("h36m_head", (0.0, 0.5, 0.01), (0.0, 1.0, 0.0)),
)

# Keypoints that neither SMPL's joints, SPIN's regressors nor smplx's landmarks give, written
# to extras/landmarks.json as vertex-weight rows (name, place, ring axis).
LANDMARK_DESIGN: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("head_center", (0.0, 0.43, 0.01), (0.0, 1.0, 0.0)),
)
