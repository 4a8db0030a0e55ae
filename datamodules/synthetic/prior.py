"""The pose and shape prior of the synthetic world.

Poses are blends of a small library of key poses (standing, walking, running, sitting,
crouching, reaching, waving, arms out) plus Gaussian noise, clipped to anatomical joint limits;
video formats move smoothly from one sampled pose to the next. Shapes draw the 10 shape
components from N(0, 1), with one component pushed to an extreme (|beta| in 2.5..3.5) for a
fraction of people. Everything is in SMPL's rest frame (y up, facing +z, the subject's left at
+x); `upright_orientation` turns a person to stand upright in the camera frame (y down).

Rotation conventions of the rest frame (checked on the mannequin): a negative x rotation of a
hip swings the thigh forward, a positive x rotation of a knee bends it, a negative z rotation of
the left shoulder (positive for the right) lowers the arm.
"""

from __future__ import annotations

import numpy as np

from body.joint_sets import SMPL_FLIP_PERMUTATION, SMPL_JOINTS

NUM_JOINTS = 24


def _pose(rotations: dict[str, tuple[float, float, float]]) -> np.ndarray:
    pose = np.zeros((NUM_JOINTS, 3))
    for name, axis_angle in rotations.items():
        pose[SMPL_JOINTS.index(name)] = axis_angle
    return pose


_ARMS_DOWN = {
    "left_shoulder": (0.0, 0.0, -1.2),
    "right_shoulder": (0.0, 0.0, 1.2),
    "left_elbow": (0.0, -0.15, 0.0),
    "right_elbow": (0.0, 0.15, 0.0),
}
KEY_POSES: dict[str, np.ndarray] = {
    "standing": _pose(_ARMS_DOWN),
    "arms_out": _pose({"left_shoulder": (0, 0, -0.2), "right_shoulder": (0, 0, 0.2)}),
    "walking": _pose(
        {
            **_ARMS_DOWN,
            "left_hip": (-0.5, 0, 0),
            "right_hip": (0.35, 0, 0),
            "right_knee": (0.5, 0, 0),
            "left_knee": (0.15, 0, 0),
            "left_shoulder": (0.45, 0, -1.2),
            "right_shoulder": (-0.45, 0, 1.2),
        }
    ),
    "running": _pose(
        {
            "left_hip": (-1.0, 0, 0),
            "right_hip": (0.5, 0, 0),
            "left_knee": (0.9, 0, 0),
            "right_knee": (1.4, 0, 0),
            "spine1": (0.2, 0, 0),
            "left_shoulder": (0.9, 0, -1.1),
            "right_shoulder": (-0.7, 0, 1.1),
            "left_elbow": (0, -1.5, 0),
            "right_elbow": (0, 1.5, 0),
        }
    ),
    "sitting": _pose(
        {
            **_ARMS_DOWN,
            "left_hip": (-1.5, 0, 0.05),
            "right_hip": (-1.5, 0, -0.05),
            "left_knee": (1.5, 0, 0),
            "right_knee": (1.5, 0, 0),
            "left_elbow": (0, -0.9, 0),
            "right_elbow": (0, 0.9, 0),
        }
    ),
    "crouching": _pose(
        {
            **_ARMS_DOWN,
            "spine1": (0.4, 0, 0),
            "left_hip": (-2.0, 0, 0.15),
            "right_hip": (-2.0, 0, -0.15),
            "left_knee": (2.2, 0, 0),
            "right_knee": (2.2, 0, 0),
            "left_ankle": (-0.3, 0, 0),
            "right_ankle": (-0.3, 0, 0),
            "left_elbow": (0, -1.2, 0),
            "right_elbow": (0, 1.2, 0),
        }
    ),
    "reaching": _pose(
        {
            "right_shoulder": (-1.3, 0, 0.3),
            "left_shoulder": (0.0, 0, -1.2),
            "spine2": (0.25, 0, 0),
            "right_elbow": (0, 0.2, 0),
        }
    ),
    "waving": _pose(
        {
            "left_shoulder": (0, 0, -1.2),
            "right_shoulder": (0, 0, -0.4),
            "right_elbow": (0, 1.6, 0),
            "head": (0.1, 0.3, 0),
        }
    ),
}

# Per-joint limits on the axis-angle components (radians), rest frame; a loose box around
# anatomical ranges (flexion about x, abduction about z, twist about y).
_LIMITS = {
    "pelvis": ((-np.pi, np.pi),) * 3,
    "left_hip": ((-2.4, 0.8), (-0.7, 0.7), (-0.3, 1.0)),
    "left_knee": ((0.0, 2.5), (-0.15, 0.15), (-0.15, 0.15)),
    "left_ankle": ((-0.7, 0.6), (-0.3, 0.3), (-0.3, 0.3)),
    "left_foot": ((-0.3, 0.3), (-0.1, 0.1), (-0.1, 0.1)),
    "spine1": ((-0.4, 1.0), (-0.5, 0.5), (-0.4, 0.4)),
    "spine2": ((-0.3, 0.5), (-0.4, 0.4), (-0.3, 0.3)),
    "spine3": ((-0.3, 0.4), (-0.3, 0.3), (-0.3, 0.3)),
    "neck": ((-0.5, 0.6), (-0.7, 0.7), (-0.4, 0.4)),
    "head": ((-0.4, 0.5), (-0.6, 0.6), (-0.3, 0.3)),
    "left_collar": ((-0.3, 0.3), (-0.3, 0.3), (-0.4, 0.2)),
    "left_shoulder": ((-1.8, 1.2), (-1.0, 1.0), (-1.6, 0.8)),
    "left_elbow": ((-0.3, 0.3), (-2.4, 0.0), (-0.3, 0.3)),
    "left_wrist": ((-0.6, 0.6), (-0.5, 0.5), (-0.8, 0.8)),
    "left_hand": ((-0.3, 0.3), (-0.2, 0.2), (-0.4, 0.4)),
}


def _limit_table() -> np.ndarray:
    """(24, 3, 2) lower and upper limits; right joints mirror the left (y and z negate)."""
    table = np.zeros((NUM_JOINTS, 3, 2))
    for index, name in enumerate(SMPL_JOINTS):
        if name in _LIMITS:
            table[index] = _LIMITS[name]
    for index, name in enumerate(SMPL_JOINTS):
        if name.startswith("right_"):
            left = table[SMPL_FLIP_PERMUTATION[index]]
            table[index, 0] = left[0]
            table[index, 1:] = -left[1:, ::-1]
    return table


JOINT_LIMITS = _limit_table()


def clip_to_limits(body_pose: np.ndarray) -> np.ndarray:
    """Clip (..., 24, 3) axis-angle components to `JOINT_LIMITS` (the root is left free)."""
    clipped = np.clip(body_pose, JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1])
    clipped[..., 0, :] = body_pose[..., 0, :]
    return clipped


def sample_body_pose(rng: np.random.Generator, noise: float = 0.25) -> np.ndarray:
    """(24, 3) articulated pose (root zero): a blend of two key poses plus noise, within limits.

    A random half of the samples is mirrored left to right, so the library has no side bias.
    """
    names = list(KEY_POSES)
    first, second = rng.choice(len(names), size=2)
    weight = rng.uniform(0.0, 1.0)
    pose = weight * KEY_POSES[names[first]] + (1.0 - weight) * KEY_POSES[names[second]]
    span = JOINT_LIMITS[..., 1] - JOINT_LIMITS[..., 0]
    pose = pose + rng.normal(0.0, noise, size=pose.shape) * np.minimum(span, 1.5) / 2.0
    if rng.uniform() < 0.5:
        pose = pose[SMPL_FLIP_PERMUTATION] * np.array([1.0, -1.0, -1.0])
    pose[0] = 0.0
    return clip_to_limits(pose)


def sample_betas(rng: np.random.Generator, extreme_fraction: float = 0.15) -> np.ndarray:
    """(10,) shape components from N(0, 1); with probability `extreme_fraction` one is extreme."""
    betas = rng.normal(0.0, 1.0, size=10)
    if rng.uniform() < extreme_fraction:
        component = rng.integers(10)
        betas[component] = rng.choice([-1.0, 1.0]) * rng.uniform(2.5, 3.5)
    return np.clip(betas, -3.5, 3.5)


def sample_gender(rng: np.random.Generator, genders: tuple[str, ...]) -> str:
    return str(genders[rng.integers(len(genders))])


def upright_orientation(yaw: float, tilt: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(3, 3) root rotation from the rest frame (y up) to a camera frame (y down, z forward):
    the body stands upright, turned by `yaw` about the vertical (0 faces the camera), leaning by
    `tilt` (about the camera's x and z axes)."""
    flip = np.diag([1.0, -1.0, -1.0])  # rest frame facing +z -> upright, facing the camera
    turn = _rotation(np.array([0.0, 1.0, 0.0]), yaw)
    lean = _rotation(np.array([1.0, 0.0, 0.0]), tilt[0]) @ _rotation(
        np.array([0.0, 0.0, 1.0]), tilt[1]
    )
    return lean @ turn @ flip


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    x, y, z = axis / np.linalg.norm(axis)
    skew = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * skew + (1.0 - np.cos(angle)) * skew @ skew


def matrix_to_axis_angle(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) -> (3,) axis-angle (NumPy; the torch version lives in geometry.rotations)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(rotation).as_rotvec()


def sample_pose_sequence(
    rng: np.random.Generator, num_frames: int, yaw: float | None = None, still: bool = False
) -> np.ndarray:
    """(T, 72) camera-frame poses moving smoothly between two sampled poses.

    The root stands upright with a random yaw (drifting by up to 0.6 rad over the sequence) and
    a small lean; articulation interpolates with a smoothstep between two prior samples and
    adds a slow sinusoidal sway. `still=True` gives T copies of one pose (single images).
    """
    yaw0 = rng.uniform(-np.pi, np.pi) if yaw is None else yaw
    yaw_drift = 0.0 if still else rng.uniform(-0.6, 0.6)
    tilt = rng.normal(0.0, 0.08, size=2)
    start, end = sample_body_pose(rng), sample_body_pose(rng)
    if still:
        end = start
    times = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    ease = times * times * (3.0 - 2.0 * times)
    sway = 0.08 * np.sin(2.0 * np.pi * rng.uniform(0.5, 1.5) * times + rng.uniform(0, 2 * np.pi))
    poses = np.zeros((num_frames, NUM_JOINTS, 3))
    for frame, (blend, offset) in enumerate(zip(ease, sway, strict=True)):
        body = (1.0 - blend) * start + blend * end + (0.0 if still else offset)
        body = clip_to_limits(body)
        root = upright_orientation(yaw0 + yaw_drift * times[frame], tuple(tilt))
        body[0] = matrix_to_axis_angle(root)
        poses[frame] = body
    return poses.reshape(num_frames, 72)
