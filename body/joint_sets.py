"""Named joint sets, the canonical keypoint superset, and every mapping between them.

This is the one file of the suite that holds lists of joint indices.

**The canonical superset.** Batches carry keypoints in one canonical order (`CANONICAL_NAMES`).
Two datasets share an entry only when their joint has the same definition; otherwise each
gets its own entry named after its source (`lsp_head_top`, `h36m_head_top`, `jta_head_center`).
Every entry is computed from a body mesh in exactly one of these ways (`KeypointSource`):

- `smpl`: one of the body model's 24 kinematic joints;
- `smplx`: one of smplx's 21 landmark vertices (nose, eyes, ears, toes, heels, fingertips);
- `h36m`: a row of SPIN's `J_regressor_h36m.npy` (17 Human3.6M joints, SPIN order);
- `extra`: a row of SPIN's `J_regressor_extra.npy` (LSP hips, neck and head top, MPII pelvis
  and thorax, SPIN's H36M spine, jaw and head);
- `landmark`: a row of the body model's `extras/landmarks.json`;
- `mix`: a fixed weighted sum of the entries above (documented approximations).

Identifications follow SPIN (constants.py `JOINT_MAP`), the convention the field's training data
uses: LSP/COCO/MPII knees, ankles, shoulders, elbows and wrists are SMPL's joints; LSP, COCO and
MPII hips are the LSP hips of the extra regressor; OpenPose's neck, mid-hip and hips are SMPL's
neck, pelvis and hips; faces and feet are smplx's landmarks.

**Approximations** (no public regressor exists; each is labelled in `APPROXIMATIONS`): JTA's
head top, head centre, neck, clavicles and spine joints; Panoptic's body centre and head top;
all MuPoTS-3D joints (taken from the Human3.6M regressor, as CRMH does); LSP's head top.

**Anatomical sets.** Every set is anatomical: `left_*` is the subject's left. Datasets whose
files swap sides (SURREAL) are corrected once, in their reader. `bodynet_16` fills MPII's slots
with same-side SMPL joints (thorax = SMPL spine2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

SMPL_JOINTS = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip

# SMPL's kinematic tree (datasets.md 9.2): the parent of each joint, -1 for the root.
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# The SMPL/SURREAL names of the 24 body parts, in joint order (datasets.md 9.5);
# SURREAL's segmentation label k is part k - 1.
SMPL_PART_NAMES = (
    "hips",
    "leftUpLeg",
    "rightUpLeg",
    "spine",
    "leftLeg",
    "rightLeg",
    "spine1",
    "leftFoot",
    "rightFoot",
    "spine2",
    "leftToeBase",
    "rightToeBase",
    "neck",
    "leftShoulder",
    "rightShoulder",
    "head",
    "leftArm",
    "rightArm",
    "leftForeArm",
    "rightForeArm",
    "leftHand",
    "rightHand",
    "leftHandIndex1",
    "rightHandIndex1",
)

# smplx's VertexJointSelector order (joints 24..44 of smplx's SMPL output).
SMPLX_LANDMARKS = (
    "nose", "right_eye", "left_eye", "right_ear", "left_ear",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
    "left_thumb_tip", "left_index_tip", "left_middle_tip", "left_ring_tip", "left_pinky_tip",
    "right_thumb_tip", "right_index_tip", "right_middle_tip", "right_ring_tip", "right_pinky_tip",
)  # fmt: skip

# Rows of SPIN's J_regressor_h36m.npy (SPIN order, datasets.md 0.3: left leg first).
H36M_REGRESSOR_ROWS = (
    "h36m_pelvis", "h36m_left_hip", "h36m_left_knee", "h36m_left_ankle", "h36m_right_hip",
    "h36m_right_knee", "h36m_right_ankle", "h36m_spine", "h36m_thorax", "h36m_jaw",
    "h36m_head_top", "h36m_left_shoulder", "h36m_left_elbow", "h36m_left_wrist",
    "h36m_right_shoulder", "h36m_right_elbow", "h36m_right_wrist",
)  # fmt: skip

# Rows of SPIN's J_regressor_extra.npy (datasets.md 9.4; SPIN joints 45..53).
EXTRA_REGRESSOR_ROWS = (
    "lsp_right_hip", "lsp_left_hip", "lsp_neck", "lsp_head_top", "mpii_pelvis", "mpii_thorax",
    "spin_h36m_spine", "spin_h36m_jaw", "spin_h36m_head",
)  # fmt: skip

# Rows the suite reads from `<body model>/extras/landmarks.json` (by these names).
LANDMARK_ROWS = ("head_center",)

# Fixed mixtures: name -> ((entry, weight), ...). All are documented approximations.
MIXTURES: dict[str, tuple[tuple[str, float], ...]] = {
    "panoptic_body_center": (("lsp_left_hip", 0.5), ("lsp_right_hip", 0.5)),
    "panoptic_head_top": (("lsp_head_top", 1.0),),
    "jta_head_top": (("lsp_head_top", 1.0),),
    "jta_head_center": (("head_center", 1.0),),
    "jta_neck": (("neck", 1.0),),
    "jta_right_clavicle": (("right_collar", 1.0),),
    "jta_left_clavicle": (("left_collar", 1.0),),
    "jta_spine0": (("pelvis", 0.5), ("spine1", 0.5)),
    "jta_spine1": (("spine1", 1.0),),
    "jta_spine2": (("spine2", 1.0),),
    "jta_spine3": (("spine3", 1.0),),
    "jta_spine4": (("spine3", 0.5), ("neck", 0.5)),
    **{
        f"mupots_{name}": ((f"h36m_{source}", 1.0),)
        for name, source in (
            ("head_top", "head_top"), ("neck", "thorax"), ("right_shoulder", "right_shoulder"),
            ("right_elbow", "right_elbow"), ("right_wrist", "right_wrist"),
            ("left_shoulder", "left_shoulder"), ("left_elbow", "left_elbow"),
            ("left_wrist", "left_wrist"), ("right_hip", "right_hip"), ("right_knee", "right_knee"),
            ("right_ankle", "right_ankle"), ("left_hip", "left_hip"), ("left_knee", "left_knee"),
            ("left_ankle", "left_ankle"), ("pelvis", "pelvis"), ("spine", "spine"),
            ("head", "jaw"),
        )
    },
}  # fmt: skip

APPROXIMATIONS: dict[str, str] = {
    "lsp_head_top": "LSP's head top: SPIN's extra-regressor row (the mannequin's is a designed "
    "point 2 cm below the top of its head)",
    "panoptic_body_center": "Panoptic's BodyCenter: midpoint of the LSP hips",
    "panoptic_head_top": "Panoptic's HeadTop (15-joint files): SPIN's LSP head top",
    "jta_head_top": "JTA's head_top: SPIN's LSP head top",
    "jta_head_center": "JTA's head_center: landmarks.json head_center (centre of the head)",
    "jta_neck": "JTA's neck: SMPL's neck joint",
    "jta_right_clavicle": "JTA's clavicle: SMPL's collar joint",
    "jta_left_clavicle": "JTA's clavicle: SMPL's collar joint",
    "jta_spine0": "JTA's spine joints: points along SMPL's pelvis-spine1-spine2-spine3-neck chain",
    "jta_spine1": "JTA's spine joints: points along SMPL's spine chain",
    "jta_spine2": "JTA's spine joints: points along SMPL's spine chain",
    "jta_spine3": "JTA's spine joints: points along SMPL's spine chain",
    "jta_spine4": "JTA's spine joints: points along SMPL's spine chain",
    **{name: "MuPoTS-3D joints: the Human3.6M regressor's joints (as CRMH)" for name in MIXTURES
       if name.startswith("mupots_")},
}  # fmt: skip

BASE_NAMES = (
    SMPL_JOINTS + SMPLX_LANDMARKS + H36M_REGRESSOR_ROWS + EXTRA_REGRESSOR_ROWS + LANDMARK_ROWS
)
CANONICAL_NAMES: tuple[str, ...] = BASE_NAMES + tuple(MIXTURES)

_LSP_14 = (
    "right_ankle", "right_knee", "lsp_right_hip", "lsp_left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "lsp_neck", "lsp_head_top",
)  # fmt: skip

_OPENPOSE_18 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip

JOINT_SETS: dict[str, tuple[str, ...]] = {
    "smpl_24": SMPL_JOINTS,
    # SPIN's J24 ground-truth superset (datasets.md 0.2).
    "spin_24": (
        *_LSP_14,
        "mpii_pelvis", "mpii_thorax", "spin_h36m_spine", "spin_h36m_jaw", "spin_h36m_head",
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    ),
    "h36m_17": H36M_REGRESSOR_ROWS,
    "lsp_14": _LSP_14,
    "coco_17": (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
        "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "lsp_left_hip", "lsp_right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    # 3DPW's poses2d: OpenPose COCO-18 order.
    "openpose_18": _OPENPOSE_18,
    # OpenPose BODY_25 (EFT / SPIN 2D keypoints): MidHip is SMPL's pelvis.
    "openpose_25": (
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
        "left_elbow", "left_wrist", "pelvis", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
        "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe",
        "right_heel",
    ),
    "mpii_16": (
        "right_ankle", "right_knee", "lsp_right_hip", "lsp_left_hip", "left_knee", "left_ankle",
        "mpii_pelvis", "mpii_thorax", "lsp_neck", "lsp_head_top", "right_wrist", "right_elbow",
        "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    ),
    # BodyNet's 16 joints in MPII slot order, anatomical (datasets.md 1.6 without the swap).
    "bodynet_16": (
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "pelvis", "spine2", "neck", "head", "right_wrist", "right_elbow", "right_shoulder",
        "left_shoulder", "left_elbow", "left_wrist",
    ),
    # CMU Panoptic coco19 (datasets.md 5.2).
    "panoptic_19": (
        "neck", "nose", "panoptic_body_center", "left_shoulder", "left_elbow", "left_wrist",
        "left_hip", "left_knee", "left_ankle", "right_shoulder", "right_elbow", "right_wrist",
        "right_hip", "right_knee", "right_ankle", "left_eye", "left_ear", "right_eye",
        "right_ear",
    ),
    # Older Panoptic sequences (`joints15`).
    "panoptic_15": (
        "neck", "panoptic_head_top", "panoptic_body_center", "left_shoulder", "left_elbow",
        "left_wrist", "left_hip", "left_knee", "left_ankle", "right_shoulder", "right_elbow",
        "right_wrist", "right_hip", "right_knee", "right_ankle",
    ),
    # JTA's 22 joint types (datasets.md 6.3).
    "jta_22": (
        "jta_head_top", "jta_head_center", "jta_neck", "jta_right_clavicle", "right_shoulder",
        "right_elbow", "right_wrist", "jta_left_clavicle", "left_shoulder", "left_elbow",
        "left_wrist", "jta_spine0", "jta_spine1", "jta_spine2", "jta_spine3", "jta_spine4",
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    ),
    # LoCO's 14 of JTA's types [0, 2, 4, 5, 6, 8, 9, 10, 16, 17, 18, 19, 20, 21].
    "loco_14": (
        "jta_head_top", "jta_neck", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle",
    ),
    # MPI-INF-3DHP / MuPoTS-3D 17-joint test order (pelvis = index 14).
    "mupots_17": tuple(
        f"mupots_{n}"
        for n in (
            "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
            "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
            "left_knee", "left_ankle", "pelvis", "spine", "head",
        )
    ),
}  # fmt: skip

# The root joint used for root-relative errors in each set.
ROOT_JOINTS = {
    "smpl_24": "pelvis",
    "h36m_17": "h36m_pelvis",
    "mupots_17": "mupots_pelvis",
    "bodynet_16": "pelvis",
    "panoptic_19": "panoptic_body_center",
    "panoptic_15": "panoptic_body_center",
    "spin_24": "mpii_pelvis",
}

# Joint subsets that evaluation protocols score, by (joint set, subset name); entries are names of
# the set's joints, so the indices follow from `subset_indices`.
EVALUATION_SUBSETS: dict[tuple[str, str], tuple[str, ...]] = {
    # 3DPW challenge evaluator (evaluate.py SMPL_MAJOR_JOINTS): PCK and AUC joints.
    ("smpl_24", "pw3d_major"): (
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
        "right_wrist",
    ),
    # 3DPW challenge evaluator (SMPL_OR_JOINTS): the global rotations of MPJAE / PA-MPJAE.
    ("smpl_24", "pw3d_orientation"): (
        "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_shoulder",
        "right_shoulder", "left_elbow", "right_elbow",
    ),
    # MuPoTS-3D / MPI-INF-3DHP PCK and AUC joints (mpii_get_pck_auc_joint_groups.m): all but
    # pelvis, spine and head.
    ("mupots_17", "pck"): JOINT_SETS["mupots_17"][:14],
    # MuPoTS-3D identity matching joints (mpii_mupots_multiperson_eval.m, `matching_joints = 2:14`).
    ("mupots_17", "matching"): JOINT_SETS["mupots_17"][1:14],
}  # fmt: skip

# Kinematic parents for bone-length rescaling, by joint set: child -> parent (the root maps to
# itself). MuPoTS-3D: `o1` of mpii_get_joints('relevant').
SKELETON_PARENTS: dict[str, dict[str, str]] = {
    "mupots_17": {
        f"mupots_{child}": f"mupots_{parent}"
        for child, parent in (
            ("head_top", "neck"), ("neck", "spine"), ("right_shoulder", "neck"),
            ("right_elbow", "right_shoulder"), ("right_wrist", "right_elbow"),
            ("left_shoulder", "neck"), ("left_elbow", "left_shoulder"),
            ("left_wrist", "left_elbow"), ("right_hip", "pelvis"), ("right_knee", "right_hip"),
            ("right_ankle", "right_knee"), ("left_hip", "pelvis"), ("left_knee", "left_hip"),
            ("left_ankle", "left_knee"), ("pelvis", "pelvis"), ("spine", "pelvis"),
            ("head", "neck"),
        )
    },
}  # fmt: skip

# Order in which bones are rescaled (parents before children, root excluded). MuPoTS-3D:
# `safe_traversal_order(2:end)` of mpii_mupots_multiperson_eval.m.
SKELETON_TRAVERSAL: dict[str, tuple[str, ...]] = {
    "mupots_17": tuple(
        f"mupots_{name}"
        for name in (
            "spine", "neck", "head_top", "head", "right_shoulder", "right_elbow", "right_wrist",
            "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee",
            "right_ankle", "left_hip", "left_knee", "left_ankle",
        )
    ),
}  # fmt: skip


@dataclass(frozen=True)
class KeypointSource:
    """How a canonical entry is computed: `kind` (smpl, smplx, h36m, extra, landmark, mix)."""

    kind: str
    index: int


def keypoint_source(name: str) -> KeypointSource:
    """Where the canonical entry `name` comes from."""
    groups = (
        ("smpl", SMPL_JOINTS),
        ("smplx", SMPLX_LANDMARKS),
        ("h36m", H36M_REGRESSOR_ROWS),
        ("extra", EXTRA_REGRESSOR_ROWS),
        ("landmark", LANDMARK_ROWS),
        ("mix", tuple(MIXTURES)),
    )
    for kind, names in groups:
        if name in names:
            return KeypointSource(kind, names.index(name))
    raise KeyError(f"unknown keypoint {name!r}; see body.joint_sets.CANONICAL_NAMES")


def joint_names(joint_set: str) -> tuple[str, ...]:
    """The canonical entry names of a joint set, in the dataset's own order."""
    try:
        return JOINT_SETS[joint_set]
    except KeyError:
        raise KeyError(f"unknown joint set {joint_set!r}; known: {sorted(JOINT_SETS)}") from None


def root_index(joint_set: str) -> int:
    """Index in `joint_set` of its root joint (`ROOT_JOINTS`), for root-relative errors."""
    if joint_set not in ROOT_JOINTS:
        raise KeyError(
            f"joint set {joint_set!r} has no root joint; sets with one: {sorted(ROOT_JOINTS)}"
        )
    return joint_names(joint_set).index(ROOT_JOINTS[joint_set])


def subset_indices(joint_set: str, subset: str) -> list[int]:
    """Indices into `joint_set` of an evaluation subset (`EVALUATION_SUBSETS`)."""
    try:
        names = EVALUATION_SUBSETS[(joint_set, subset)]
    except KeyError:
        raise KeyError(
            f"no evaluation subset {subset!r} of {joint_set!r}; known: {sorted(EVALUATION_SUBSETS)}"
        ) from None
    return [joint_names(joint_set).index(name) for name in names]


def skeleton(joint_set: str) -> tuple[list[int], list[int]]:
    """(parents, traversal) as indices into `joint_set`, for bone-length rescaling.

    `parents[j]` is the kinematic parent of joint j (the root is its own parent); `traversal`
    lists the non-root joints so that every parent comes before its children.
    """
    if joint_set not in SKELETON_PARENTS:
        raise KeyError(f"no skeleton for {joint_set!r}; known: {sorted(SKELETON_PARENTS)}")
    names = joint_names(joint_set)
    parents = [names.index(SKELETON_PARENTS[joint_set][name]) for name in names]
    traversal = [names.index(name) for name in SKELETON_TRAVERSAL[joint_set]]
    return parents, traversal


def canonical_indices(joint_set: str) -> list[int]:
    """Positions of a set's joints in the canonical superset: `superset[:, idx]` gives the set."""
    return [CANONICAL_NAMES.index(name) for name in joint_names(joint_set)]


def mapping(source_set: str, target_set: str) -> tuple[list[int], list[int]]:
    """Index pairs (source_idx, target_idx) of the joints two sets share (same definition)."""
    source = joint_names(source_set)
    pairs = [(source.index(n), t) for t, n in enumerate(joint_names(target_set)) if n in source]
    return [s for s, _ in pairs], [t for _, t in pairs]


def convert(keypoints: Tensor, source_set: str, target_set: str) -> tuple[Tensor, Tensor]:
    """Re-order keypoints (..., J_source, C) into `target_set`.

    Returns (keypoints (..., J_target, C), available (J_target,) bool): joints the source set
    does not have are zeros and marked unavailable, never guessed.
    """
    source_idx, target_idx = mapping(source_set, target_set)
    shape = (*keypoints.shape[:-2], len(joint_names(target_set)), keypoints.shape[-1])
    result = keypoints.new_zeros(shape)
    result[..., target_idx, :] = keypoints[..., source_idx, :]
    available = torch.zeros(shape[-2], dtype=torch.bool, device=keypoints.device)
    available[target_idx] = True
    return result, available


def to_canonical(keypoints: Tensor, joint_set: str) -> tuple[Tensor, Tensor]:
    """Scatter a set's keypoints (..., J, C) into the canonical superset (..., K, C)."""
    index = canonical_indices(joint_set)
    shape = (*keypoints.shape[:-2], len(CANONICAL_NAMES), keypoints.shape[-1])
    result = keypoints.new_zeros(shape)
    result[..., index, :] = keypoints
    available = torch.zeros(len(CANONICAL_NAMES), dtype=torch.bool, device=keypoints.device)
    available[index] = True
    return result, available


def from_canonical(keypoints: Tensor, joint_set: str) -> Tensor:
    """Select a set's keypoints (..., J, C) from canonical keypoints (..., K, C)."""
    return keypoints[..., canonical_indices(joint_set), :]


def mixture_matrix() -> np.ndarray:
    """(K, B) matrix that maps the base entries (`BASE_NAMES`) to the canonical superset."""
    matrix = np.zeros((len(CANONICAL_NAMES), len(BASE_NAMES)))
    matrix[np.arange(len(BASE_NAMES)), np.arange(len(BASE_NAMES))] = 1.0
    for row, parts in enumerate(MIXTURES.values(), start=len(BASE_NAMES)):
        for name, weight in parts:
            matrix[row, BASE_NAMES.index(name)] += weight
    return matrix


def _flipped_name(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if a in name:
            return name.replace(a, b)
    return name


def flip_permutation(joint_set: str) -> list[int]:
    """Index permutation that swaps left and right joints of a set (for horizontal flips)."""
    names = joint_names(joint_set)
    return [names.index(_flipped_name(name)) for name in names]


def canonical_flip_permutation() -> list[int]:
    """Permutation of the canonical superset that swaps left and right entries."""
    return [CANONICAL_NAMES.index(_flipped_name(name)) for name in CANONICAL_NAMES]


# SPIN's SMPL flip permutation (datasets.md 9.2), derived from the names above.
SMPL_FLIP_PERMUTATION = [SMPL_JOINTS.index(_flipped_name(n)) for n in SMPL_JOINTS]


def flip_smpl_pose(pose: Tensor) -> Tensor:
    """Axis-angle SMPL pose (..., 72) of the mirror-image body (mirror about the x = 0 plane).

    Left and right joints swap and each rotation's y and z components change sign.
    """
    per_joint = pose.reshape(*pose.shape[:-1], 24, 3)[..., SMPL_FLIP_PERMUTATION, :]
    sign = torch.tensor([1.0, -1.0, -1.0], dtype=pose.dtype, device=pose.device)
    return (per_joint * sign).reshape(pose.shape)


def _anatomical_name(name: str) -> str:
    """Name without its source prefix (`h36m_left_knee` -> `left_knee`, `lsp_neck` -> `neck`)."""
    for prefix in ("spin_h36m_", "h36m_", "lsp_", "mpii_", "jta_", "mupots_", "panoptic_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


# Anatomical stand-ins that evaluation protocols use between sets that share no definition.
_EVALUATION_ALIASES = {("h36m_17", "neck"): "h36m_thorax"}


def evaluation_indices(source_set: str, target_set: str) -> list[int]:
    """Indices into `source_set` of the joints anatomically closest to each `target_set` joint.

    For protocols that evaluate one set's regressor on another set's joints, e.g. HMR/SPIN's
    `H36M_TO_J14 = evaluation_indices("h36m_17", "lsp_14")` (neck -> H36M thorax).
    Raises KeyError when a target joint has no counterpart.
    """
    source = [_anatomical_name(n) for n in joint_names(source_set)]
    result = []
    for name in joint_names(target_set):
        anatomical = _anatomical_name(name)
        alias = _EVALUATION_ALIASES.get((source_set, anatomical))
        if alias is not None:
            result.append(joint_names(source_set).index(alias))
        elif anatomical in source:
            result.append(source.index(anatomical))
        else:
            raise KeyError(f"{target_set} joint {name!r} has no counterpart in {source_set}")
    return result


_DRAWING_BONES = (
    *(
        (a.replace("SIDE", side), b.replace("SIDE", side))
        for side in ("left", "right")
        for a, b in (
            ("SIDE_ankle", "SIDE_knee"),
            ("SIDE_knee", "SIDE_hip"),
            ("SIDE_hip", "SIDE_shoulder"),
            ("SIDE_shoulder", "SIDE_elbow"),
            ("SIDE_elbow", "SIDE_wrist"),
            ("neck", "SIDE_shoulder"),
            ("pelvis", "SIDE_hip"),
            ("SIDE_ankle", "SIDE_foot"),
            ("SIDE_wrist", "SIDE_hand"),
        )
    ),
    ("neck", "head"),
    ("neck", "head_top"),
    ("head", "head_top"),
    ("neck", "nose"),
)


def drawing_edges(joint_set: str) -> list[tuple[int, int]]:
    """Bones to draw for a set's skeleton (pairs of indices), by anatomical names."""
    names = [_anatomical_name(name) for name in joint_names(joint_set)]
    return [
        (names.index(a), names.index(b)) for a, b in _DRAWING_BONES if a in names and b in names
    ]
