"""The suite's metrics: torchmetrics classes (tensors in, numbers out) and their pure functions.

Inputs are metres (or probabilities, labels, rotation matrices, pixels, as each class says);
results are in the unit their name says (``mpjpe_mm``, ``pck3d_pct``, ``mpjae_deg``). Every
metric has a ``name`` for logs and results files and ``results()`` to flatten dict values as
``<name>/<key>_<unit>`` (``metrics.base``). Definitions, variants and the paper tables that use
them: ``metrics/README.md`` and ../shared/metrics.md.
"""

from metrics.base import SuiteMetric, flatten_result, results_of
from metrics.collisions import CollisionScores, collision_volume
from metrics.detection import JointDetectionScores, detection_scores, loco_true_positives
from metrics.joints import (
    AUC3D,
    MPJPE,
    PAMPJPE,
    PCK3D,
    auc_from_pck,
    mpjpe_per_sample,
    pa_mpjpe_per_sample,
    pck_counts,
)
from metrics.keypoints2d import COCO_KEYPOINT_SIGMAS, KeypointAP, PCKh, coco_keypoint_stats
from metrics.matching import (
    argmin3d,
    fill_missed,
    greedy2d,
    hungarian,
    mupots_identity_matching,
)
from metrics.multiperson import MuPoTSPCK, PanopticMPJPE, rescale_bone_lengths
from metrics.ordering import DepthOrderAccuracy, depth_order_counts
from metrics.rotations import MPJAE, PAMPJAE
from metrics.segmentation import PartSegmentationScores, SilhouetteScores, confusion_matrix
from metrics.vertices import PVE, pve_per_sample
from metrics.volumes import PartVoxelIoU, VoxelIoU, voxel_iou_per_sample

__all__ = [
    "AUC3D",
    "COCO_KEYPOINT_SIGMAS",
    "MPJAE",
    "MPJPE",
    "PAMPJAE",
    "PAMPJPE",
    "PCK3D",
    "PVE",
    "CollisionScores",
    "DepthOrderAccuracy",
    "JointDetectionScores",
    "KeypointAP",
    "MuPoTSPCK",
    "PCKh",
    "PanopticMPJPE",
    "PartSegmentationScores",
    "PartVoxelIoU",
    "SilhouetteScores",
    "SuiteMetric",
    "VoxelIoU",
    "argmin3d",
    "auc_from_pck",
    "coco_keypoint_stats",
    "collision_volume",
    "confusion_matrix",
    "depth_order_counts",
    "detection_scores",
    "fill_missed",
    "flatten_result",
    "greedy2d",
    "hungarian",
    "loco_true_positives",
    "mpjpe_per_sample",
    "mupots_identity_matching",
    "pa_mpjpe_per_sample",
    "pck_counts",
    "pve_per_sample",
    "rescale_bone_lengths",
    "results_of",
    "voxel_iou_per_sample",
]
