"""The native-resolution scene record every reader emits (DESIGN.md "The canonical sample").

A `SceneRecord` is one image with the people in it, exactly as its dataset annotates them but in
the suite's conventions: pixels with integer coordinates at pixel centres, camera-frame metres
(OpenCV axes), SMPL parameters in the camera frame (the posed mesh plus `transl` lies where the
camera sees it), gender codes of DESIGN.md (0 neutral, 1 male, 2 female, -1 unknown), and
keypoints in the canonical superset of `body.joint_sets` (an entry the dataset lacks has
confidence 0). `joint_set` names the dataset's native set, which `inspect-data` shows.

Availability flags are never guessed: a reader sets `has_*` only for what its files contain.
Per-person flags live in `PersonRecord.flags`, image-level ones in `SceneRecord.flags`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from body import joint_sets

NUM_CANONICAL = len(joint_sets.CANONICAL_NAMES)
PERSON_FLAGS = (
    "has_keypoints2d",
    "has_keypoints3d",
    "keypoints3d_root_relative",
    "has_smpl",
    "has_gender",
)
IMAGE_FLAGS = ("has_camera", "has_part_segm", "has_mask", "has_instance_map")
GENDER_CODES = {"neutral": 0, "male": 1, "female": 2, "unknown": -1}
GENDER_NAMES = {code: name for name, code in GENDER_CODES.items()}


@dataclass
class PersonRecord:
    """One annotated person of a scene record.

    keypoints2d: (K, 3) canonical superset, original-image pixels x, y and confidence.
    keypoints3d: (K, 4) canonical superset, camera-frame metres and confidence (zeros if absent).
    box: (4,) x0, y0, x1, y1 in original-image pixels (tight box of the person).
    pose, betas, transl: (72,), (10,), (3,) SMPL in the camera frame, or None.
    gender: DESIGN.md code.
    flags: every name of `PERSON_FLAGS`.
    track_id: identity within a sequence where the dataset has one (else the person index).
    """

    keypoints2d: np.ndarray
    keypoints3d: np.ndarray
    box: np.ndarray
    pose: np.ndarray | None = None
    betas: np.ndarray | None = None
    transl: np.ndarray | None = None
    gender: int = -1
    flags: dict[str, bool] = field(default_factory=dict)
    track_id: int = 0


@dataclass
class SceneRecord:
    """One image at native resolution with every annotation the dataset has for it.

    image: (H, W, 3) uint8 RGB, or None when the record was read without pixels.
    K: (3, 3) float64 intrinsics of the original image (`flags["has_camera"]` says if real).
    part_segm: (H, W) uint8, 0 background, 1..24 SMPL parts (of whichever person is visible).
    mask: (H, W) bool union of the people's silhouettes.
    instance_map: (H, W) uint8, 0 background, k + 1 for person k (nearer person wins).
    ignore_mask: (H, W) bool regions losses skip (crowds), or None.
    extra_maps: dataset-specific (H, W) maps that crops carry along (`depth` float32 metres
        with +inf background, UP-3D's `parts31` / `parts6` uint8), warped with nearest
        sampling.
    meta: anything a reader wants to keep (sequence, frame, subject, camera id).
    """

    dataset: str
    split: str
    index: int
    sample_id: str
    image_path: Path
    image_size: tuple[int, int]
    K: np.ndarray
    joint_set: str
    people: list[PersonRecord]
    flags: dict[str, bool]
    image: np.ndarray | None = None
    part_segm: np.ndarray | None = None
    mask: np.ndarray | None = None
    instance_map: np.ndarray | None = None
    ignore_mask: np.ndarray | None = None
    extra_maps: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def canonical_keypoints(keypoints: np.ndarray, joint_set: str) -> np.ndarray:
    """Scatter a native set's keypoints (J, C) into the canonical superset (K, C); zeros
    elsewhere."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    names = joint_sets.joint_names(joint_set)
    if keypoints.shape[0] != len(names):
        raise ValueError(f"{joint_set} has {len(names)} joints; got {keypoints.shape[0]} rows")
    result = np.zeros((NUM_CANONICAL, keypoints.shape[1]))
    result[joint_sets.canonical_indices(joint_set)] = keypoints
    return result


def native_keypoints(keypoints: np.ndarray, joint_set: str) -> np.ndarray:
    """Select a native set's rows (J, C) from canonical keypoints (K, C)."""
    return np.asarray(keypoints)[joint_sets.canonical_indices(joint_set)]


def keypoint_box(keypoints2d: np.ndarray) -> np.ndarray:
    """(4,) tight box x0, y0, x1, y1 of the confident keypoints of (K, 3); NaN if none."""
    visible = keypoints2d[:, 2] > 0
    if not visible.any():
        return np.full(4, np.nan)
    points = keypoints2d[visible, :2]
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def joint_box(keypoints2d: np.ndarray, margin: float) -> np.ndarray:
    """(4,) box of the confident (K, 3) keypoints, widened by `margin` x its larger side on
    every side (joints lie inside the body: head top, hands and feet reach past them)."""
    box = keypoint_box(keypoints2d)
    pad = margin * max(box[2] - box[0], box[3] - box[1])
    return box + np.array([-pad, -pad, pad, pad])


def mask_box(mask: np.ndarray) -> np.ndarray:
    """(4,) box x0, y0, x1, y1 covering the True pixels of (H, W) (pixel edges); NaN if empty."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.full(4, np.nan)
    return np.array([cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5])


def person_flags(**values: bool) -> dict[str, bool]:
    """Every per-person flag, False unless given; refuses unknown names."""
    unknown = set(values) - set(PERSON_FLAGS)
    if unknown:
        raise KeyError(f"unknown person flags {sorted(unknown)}; valid: {PERSON_FLAGS}")
    return {name: bool(values.get(name, False)) for name in PERSON_FLAGS}


def image_flags(**values: bool) -> dict[str, bool]:
    """Every image-level flag, False unless given; refuses unknown names."""
    unknown = set(values) - set(IMAGE_FLAGS)
    if unknown:
        raise KeyError(f"unknown image flags {sorted(unknown)}; valid: {IMAGE_FLAGS}")
    return {name: bool(values.get(name, False)) for name in IMAGE_FLAGS}
