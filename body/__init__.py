"""The body model (smplx's SMPL), the named joint sets and their mappings, the generated
mannequin body model, and conversion of real SMPL files."""

from body.joint_sets import CANONICAL_NAMES, JOINT_SETS, flip_permutation, flip_smpl_pose
from body.model import BodyModel, BodyModelFilesError, BodyOutput, ensure_body_model

__all__ = [
    "CANONICAL_NAMES",
    "JOINT_SETS",
    "BodyModel",
    "BodyModelFilesError",
    "BodyOutput",
    "ensure_body_model",
    "flip_permutation",
    "flip_smpl_pose",
]
