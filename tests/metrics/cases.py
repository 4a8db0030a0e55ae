"""One test case per metric: a factory, seeded random update batches, an empty update and the
independent reference of tests/metrics/references.py.

Shared by the reference, empty-input, NaN, pickling and 2-process DDP tests, so every metric
goes through all of them. Batches have varied sizes; ``reference(batches)`` computes the
expected ``results()`` of a metric updated with all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

import metrics
from tests.metrics import references as ref

Batch = dict[str, Any]


@dataclass
class Case:
    id: str
    make: Callable[[], metrics.SuiteMetric]
    batches: Callable[[np.random.Generator], list[Batch]]
    reference: Callable[[list[Batch]], dict[str, float]] | None  # None: tested elsewhere
    empty: Batch | None  # an update that adds no sample


def t(array: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=dtype)


def n(tensor: torch.Tensor) -> np.ndarray:
    return tensor.double().numpy() if tensor.is_floating_point() else tensor.numpy()


def cat(batches: list[Batch], key: str) -> np.ndarray:
    return np.concatenate([n(b[key]) for b in batches])


def joined(batches: list[Batch], key: str) -> list:
    return [item for b in batches for item in b[key]]


SIZES = (1, 3, 4, 2)


# ----------------------------------------------------------------------------- joints


def pose_batches(rng: np.random.Generator, joints: int = 14, noise: float = 0.06) -> list[Batch]:
    out = []
    for size in SIZES:
        target = rng.normal(0, 0.3, (size, joints, 3))
        preds = target + rng.normal(0, noise, target.shape) + rng.normal(0, 0.05, (size, 1, 3))
        visible = rng.random((size, joints)) < 0.8
        out.append({"preds": t(preds), "target": t(target), "visible": t(visible, torch.bool)})
    return out


def empty_poses(joints: int = 14) -> Batch:
    return {
        "preds": torch.zeros(0, joints, 3),
        "target": torch.zeros(0, joints, 3),
        "visible": torch.zeros(0, joints, dtype=torch.bool),
    }


def _poses(batches):
    return cat(batches, "preds"), cat(batches, "target"), cat(batches, "visible")


def mpjpe_case(root):
    name = "mpjpe_mm" if root == 0 else "mpjpe_abs_mm"
    return Case(
        f"MPJPE-root{root}",
        lambda: metrics.MPJPE(root_index=root, name=name),
        pose_batches,
        lambda b: {name: ref.mpjpe(*_poses(b), root=root)},
        empty_poses(),
    )


def pck_case(threshold, inclusive):
    return Case(
        f"PCK3D-{threshold}-{inclusive}",
        lambda: metrics.PCK3D(threshold_mm=threshold, inclusive=inclusive),
        lambda rng: pose_batches(rng, noise=0.08),
        lambda b: {"pck3d_pct": ref.pck(ref.joint_error_list(*_poses(b)), threshold, inclusive)},
        empty_poses(),
    )


def auc_case(max_threshold, count, inclusive, integration):
    return Case(
        f"AUC3D-{integration}",
        lambda: metrics.AUC3D(max_threshold, count, inclusive, integration=integration),
        lambda rng: pose_batches(rng, noise=0.08),
        lambda b: {
            "auc3d_pct": ref.auc(
                ref.joint_error_list(*_poses(b)), max_threshold, count, inclusive, integration
            )
        },
        empty_poses(),
    )


# ----------------------------------------------------------------------------- meshes, rotations


def vertex_batches(rng: np.random.Generator) -> list[Batch]:
    out = []
    for size in SIZES:
        target = rng.normal(0, 0.3, (size, 40, 3))
        preds = target + rng.normal(0, 0.03, target.shape) + rng.normal(0, 0.1, (size, 1, 3))
        out.append(
            {
                "preds": t(preds),
                "target": t(target),
                "preds_root": t(preds[:, 0] + rng.normal(0, 0.01, (size, 3))),
                "target_root": t(target[:, 0]),
            }
        )
    return out


def pve_case(align):
    default = {"none": "pve_mm", "pelvis": "pve_pelvis_mm", "procrustes": "pa_pve_mm"}[align]
    return Case(
        f"PVE-{align}",
        lambda: metrics.PVE(align=align),
        vertex_batches,
        lambda b: {
            default: ref.pve(
                cat(b, "preds"),
                cat(b, "target"),
                align,
                cat(b, "preds_root"),
                cat(b, "target_root"),
            )
        },
        {
            "preds": torch.zeros(0, 40, 3),
            "target": torch.zeros(0, 40, 3),
            "preds_root": torch.zeros(0, 3),
            "target_root": torch.zeros(0, 3),
        },
    )


def random_rotations(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    return Rotation.random(count, random_state=rng).as_matrix().reshape(*shape, 3, 3)


def perturb(rotations: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    noise = Rotation.from_rotvec(rng.normal(0, scale, (*rotations.shape[:-2], 3)).reshape(-1, 3))
    return (noise.as_matrix().reshape(rotations.shape) @ rotations).astype(np.float64)


def rotation_batches(rng: np.random.Generator) -> list[Batch]:
    out = []
    for size in SIZES:
        target_rot = random_rotations(rng, (size, 9))
        joints = rng.normal(0, 0.3, (size, 24, 3))
        spin = random_rotations(rng, (size,))
        preds_joints = np.einsum("bij,bkj->bki", spin, joints) * 1.1 + 0.2
        preds_rot = np.einsum("bij,bkjl->bkil", spin, perturb(target_rot, rng, 0.3))
        out.append(
            {
                "preds_rot": t(preds_rot, torch.float64),
                "target_rot": t(target_rot, torch.float64),
                "preds_joints": t(preds_joints),
                "target_joints": t(joints),
            }
        )
    return out


def mpjae_batches(rng):
    out = []
    for size in SIZES:
        target = random_rotations(rng, (size, 9))
        preds = perturb(target, rng, 0.3)
        out.append({"preds": t(preds, torch.float64), "target": t(target, torch.float64)})
    return out


# ----------------------------------------------------------------------------- volumes, 2D


def voxel_batches(rng):
    out = []
    for size in SIZES:
        target = rng.random((size, 6, 7, 8)) < 0.4
        noisy = np.clip(target * 0.4 + rng.random(target.shape) * 0.6, 0, 1)
        noisy[0] = 0.0 if size == 3 else noisy[0]  # an empty prediction now and then
        out.append({"preds": t(noisy), "target": t(target, torch.bool)})
    return out


def part_voxel_batches(rng):
    out = []
    for size in SIZES:
        target = rng.integers(0, 4, (size, 5, 6, 7))
        scores = rng.random((size, 4, 5, 6, 7)) + 0.5 * np.eye(4)[target].transpose(0, 4, 1, 2, 3)
        out.append({"preds": t(scores), "target": t(target, torch.int64)})
    return out


def mask_batches(rng):
    out = []
    for size in SIZES:
        target = rng.random((size, 9, 11)) < 0.5
        preds = np.where(rng.random(target.shape) < 0.8, target, ~target)
        ignore = rng.random(target.shape) < 0.1
        out.append(
            {
                "preds": t(preds, torch.bool),
                "target": t(target, torch.bool),
                "ignore": t(ignore, torch.bool),
            }
        )
    return out


def part_mask_batches(rng):
    out = []
    for size in SIZES:
        target = rng.integers(0, 5, (size, 9, 11))
        preds = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 5, target.shape))
        target = np.where(rng.random(target.shape) < 0.1, 255, target)
        out.append({"preds": t(preds, torch.int64), "target": t(target, torch.int64)})
    return out


def pckh_batches(rng):
    out = []
    for size in SIZES:
        target = rng.uniform(0, 64, (size, 16, 2))
        preds = target + rng.normal(0, 4, target.shape)
        out.append(
            {
                "preds": t(preds),
                "target": t(target),
                "visible": t(rng.random((size, 16)) < 0.85, torch.bool),
                "normaliser": t(rng.uniform(4, 10, size)),
            }
        )
    return out


def depth_batches(rng):
    out = []
    for size in SIZES:
        target = rng.uniform(2, 8, (size, 5)).round(1)  # ties in the ground truth now and then
        preds = target + rng.normal(0, 0.4, target.shape)
        preds[:, 1] = preds[:, 0]  # a predicted tie in every image
        out.append(
            {
                "preds": t(preds, torch.float64),
                "target": t(target, torch.float64),
                "valid": t(rng.random((size, 5)) < 0.8, torch.bool),
            }
        )
    return out


# ----------------------------------------------------------------------------- multi-person


def detection_joints(rng, count):
    """(count, 4) rows of (type, x, y, z) on a 0.2 m lattice, so that ties happen."""
    return np.concatenate([rng.integers(0, 3, (count, 1)), 0.2 * rng.integers(0, 8, (count, 3))], 1)


def detection_batches(rng):
    out = []
    for size in SIZES:
        preds = [t(detection_joints(rng, rng.integers(0, 8)), torch.float64) for _ in range(size)]
        target = [t(detection_joints(rng, rng.integers(0, 7)), torch.float64) for _ in range(size)]
        out.append({"preds": preds, "target": target})
    return out


def keypoint_people(rng, count, keypoints=17):
    centre = rng.uniform(50, 350, (count, 1, 2))
    points = centre + rng.normal(0, 30, (count, keypoints, 2))
    return points


def keypoint_batches(rng):
    out = []
    for size in SIZES:
        preds, target = [], []
        for _ in range(size):
            people = rng.integers(0, 4)
            truth = keypoint_people(rng, people)
            flags = rng.choice([0, 1, 2], (people, 17), p=[0.2, 0.2, 0.6])
            low, high = truth.min(axis=1), truth.max(axis=1)
            area = (high - low).prod(axis=1) * rng.uniform(0.4, 0.8, people)
            crowd = rng.random(people) < 0.1
            guess = truth + rng.normal(0, 6, truth.shape)
            guess = np.concatenate([guess, keypoint_people(rng, rng.integers(0, 2))])
            scores = rng.random(len(guess))
            target.append(
                {
                    "keypoints": t(np.concatenate([truth, flags[..., None]], -1)),
                    "area": t(area),
                    "bbox": t(np.concatenate([low, high - low], -1).reshape(-1, 4)),
                    "iscrowd": t(crowd, torch.bool),
                }
            )
            preds.append(
                {
                    "keypoints": t(np.concatenate([guess, np.ones((len(guess), 17, 1))], -1)),
                    "scores": t(scores),
                }
            )
        out.append({"preds": preds, "target": target})
    return out


def keypoint_reference(batches):
    """pycocotools' file-based path (JSON annotation and results files) as the reference."""
    preds, target = joined(batches, "preds"), joined(batches, "target")
    images, annotations, results = [], [], []
    for image_id, (pred, truth) in enumerate(zip(preds, target, strict=False)):
        images.append({"id": image_id + 1, "width": 400, "height": 400})
        for k in range(len(truth["area"])):
            kp = n(truth["keypoints"][k])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id + 1,
                    "category_id": 1,
                    "keypoints": kp.reshape(-1).tolist(),
                    "num_keypoints": int((kp[:, 2] > 0).sum()),
                    "area": float(truth["area"][k]),
                    "bbox": n(truth["bbox"][k]).tolist(),
                    "iscrowd": int(truth["iscrowd"][k]),
                }
            )
        for k in range(len(pred["scores"])):
            results.append(
                {
                    "image_id": image_id + 1,
                    "category_id": 1,
                    "keypoints": n(pred["keypoints"][k]).reshape(-1).tolist(),
                    "score": float(pred["scores"][k]),
                }
            )
    categories = [{"id": 1, "name": "person"}]
    dataset = {"images": images, "annotations": annotations, "categories": categories}
    stats = ref.pycocotools_keypoint_stats(dataset, results)
    return {
        "keypoint/ap_pct": 100 * stats[0],
        "keypoint/ap_pct@0.5": 100 * stats[1],
        "keypoint/ar_pct@0.5": 100 * stats[6],
    }


def mupots_batches(rng):
    out = []
    for size in SIZES:
        batch = {"preds_2d": [], "preds_3d": [], "target_2d": [], "target_3d": [], "sequence": []}
        for _ in range(size):
            people = rng.integers(0, 4)
            target_3d = rng.normal(0, 0.25, (people, 17, 3)) + np.array([0, 0, 4.0])
            target_2d = rng.uniform(100, 1800, (people, 1, 2)) + rng.normal(0, 60, (people, 17, 2))
            order = rng.permutation(people)[: rng.integers(0, people + 1)]
            preds_3d = target_3d[order] + rng.normal(0, 0.09, (len(order), 17, 3))
            preds_2d = target_2d[order] + rng.normal(0, 25, (len(order), 17, 2))
            if len(order):
                preds_2d[0, 3] = 0.0  # a joint the prediction does not have
            batch["preds_2d"].append(t(preds_2d))
            batch["preds_3d"].append(t(preds_3d))
            batch["target_2d"].append(t(target_2d))
            batch["target_3d"].append(t(target_3d))
            batch["sequence"].append(int(rng.integers(1, 4)))
        out.append(batch)
    return out


def mupots_reference(batches):
    images = zip(
        *[[n(x) if isinstance(x, torch.Tensor) else x for x in joined(batches, k)] for k in
          ("preds_2d", "preds_3d", "target_2d", "target_3d", "sequence")], strict=False
    )  # fmt: skip
    result = ref.mupots_pck(list(images))
    return {f"mupots_pck3d/{k}_pct": v for k, v in result.items()}


GROUPS = ("haggling", "mafia", "ultimatum", "pizza")


def panoptic_batches(rng):
    out = []
    for size in SIZES:
        batch = {"preds": [], "target": [], "visible": [], "group": []}
        for _ in range(size):
            people = rng.integers(1, 4)
            target = rng.normal(0, 0.3, (people, 17, 3)) + rng.uniform(-2, 2, (people, 1, 3))
            extra = rng.integers(0, 2)
            preds = np.concatenate(
                [target + rng.normal(0, 0.05, target.shape), rng.normal(0, 0.3, (extra, 17, 3))]
            )
            preds = preds[rng.permutation(len(preds))][: rng.integers(0, len(preds) + 1)]
            batch["preds"].append(t(preds))
            batch["target"].append(t(target))
            batch["visible"].append(t(rng.random((people, 17)) < 0.85, torch.bool))
            batch["group"].append(GROUPS[rng.integers(0, 3)])  # pizza stays empty: NaN
        out.append(batch)
    return out


def panoptic_reference(batches):
    images = zip(
        *[
            [n(x) if isinstance(x, torch.Tensor) else x for x in joined(batches, k)]
            for k in ("preds", "target", "visible", "group")
        ],
        strict=False,
    )
    result = ref.panoptic_mpjpe(list(images), GROUPS)
    return {f"panoptic_mpjpe/{k}_mm": v for k, v in result.items()}


def sphere(centre, radius, subdivisions=1):
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return torch.as_tensor(mesh.vertices + np.asarray(centre)), torch.as_tensor(mesh.faces)


def collision_batches(rng):
    """Each batch is one image (CollisionScores updates per image) of two or three spheres."""
    out = []
    for people in (2, 1, 3):
        gaps = rng.uniform(0.25, 0.7, people)  # radius 0.25: gaps below 0.5 collide
        spheres = [sphere([gaps[: k + 1].sum(), 0.0, 0.1 * k], 0.25) for k in range(people)]
        out.append({"vertices": [s[0] for s in spheres], "faces": spheres[0][1]})
    return out


CASES: list[Case] = [
    mpjpe_case(0),
    mpjpe_case(None),
    Case(
        "PAMPJPE",
        metrics.PAMPJPE,
        pose_batches,
        lambda b: {"pa_mpjpe_mm": ref.pa_mpjpe(*_poses(b))},
        empty_poses(),
    ),
    pck_case(150.0, False),
    pck_case(50.0, True),
    auc_case(150.0, 31, False, "mean"),
    auc_case(199.0, 200, True, "trapezoid"),
    pve_case("none"),
    pve_case("pelvis"),
    pve_case("procrustes"),
    Case(
        "MPJAE",
        metrics.MPJAE,
        mpjae_batches,
        lambda b: {"mpjae_deg": ref.mpjae(cat(b, "preds"), cat(b, "target"))},
        {"preds": torch.zeros(0, 9, 3, 3), "target": torch.zeros(0, 9, 3, 3)},
    ),
    Case(
        "PAMPJAE",
        metrics.PAMPJAE,
        rotation_batches,
        lambda b: {
            "pa_mpjae_deg": ref.pa_mpjae(
                cat(b, "preds_rot"),
                cat(b, "target_rot"),
                cat(b, "preds_joints"),
                cat(b, "target_joints"),
            )
        },
        {
            "preds_rot": torch.zeros(0, 9, 3, 3),
            "target_rot": torch.zeros(0, 9, 3, 3),
            "preds_joints": torch.zeros(0, 24, 3),
            "target_joints": torch.zeros(0, 24, 3),
        },
    ),
    Case(
        "VoxelIoU",
        metrics.VoxelIoU,
        voxel_batches,
        lambda b: {"voxel_iou_pct": ref.voxel_iou(cat(b, "preds"), cat(b, "target"))},
        {"preds": torch.zeros(0, 6, 7, 8), "target": torch.zeros(0, 6, 7, 8, dtype=torch.bool)},
    ),
    Case(
        "PartVoxelIoU",
        lambda: metrics.PartVoxelIoU(num_classes=4),
        part_voxel_batches,
        lambda b: {
            f"part_voxel_iou/{k}_pct": v
            for k, v in ref.part_voxel_iou(cat(b, "preds"), cat(b, "target")).items()
        },
        {"preds": torch.zeros(0, 4, 5, 6, 7), "target": torch.zeros(0, 5, 6, 7, dtype=torch.int64)},
    ),
    Case(
        "SilhouetteScores",
        metrics.SilhouetteScores,
        mask_batches,
        lambda b: {
            f"silhouette/{k}_pct": v
            for k, v in ref.silhouette(cat(b, "preds"), cat(b, "target"), cat(b, "ignore")).items()
        },
        {
            "preds": torch.zeros(0, 9, 11, dtype=torch.bool),
            "target": torch.zeros(0, 9, 11, dtype=torch.bool),
            "ignore": None,
        },
    ),
    Case(
        "PartSegmentationScores",
        lambda: metrics.PartSegmentationScores(num_classes=5),
        part_mask_batches,
        lambda b: {
            f"part_segm/{k}_pct": v
            for k, v in ref.part_segmentation(cat(b, "preds"), cat(b, "target"), 5).items()
        },
        {
            "preds": torch.zeros(0, 9, 11, dtype=torch.int64),
            "target": torch.zeros(0, 9, 11, dtype=torch.int64),
        },
    ),
    Case(
        "PCKh",
        metrics.PCKh,
        pckh_batches,
        lambda b: {
            "pckh_pct": ref.pckh(
                cat(b, "preds"), cat(b, "target"), cat(b, "visible"), cat(b, "normaliser")
            )
        },
        {
            "preds": torch.zeros(0, 16, 2),
            "target": torch.zeros(0, 16, 2),
            "visible": torch.zeros(0, 16, dtype=torch.bool),
            "normaliser": torch.zeros(0),
        },
    ),
    Case(
        "DepthOrder-sign",
        lambda: metrics.DepthOrderAccuracy(min_gap_m=0.05),
        depth_batches,
        lambda b: {
            "depth_order_pct": ref.depth_order(
                cat(b, "preds"), cat(b, "target"), cat(b, "valid"), "sign", 0.05
            )
        },
        {
            "preds": torch.zeros(0, 5),
            "target": torch.zeros(0, 5),
            "valid": torch.zeros(0, 5, dtype=torch.bool),
        },
    ),
    Case(
        "DepthOrder-pcrd",
        lambda: metrics.DepthOrderAccuracy(variant="pcrd"),
        depth_batches,
        lambda b: {
            "depth_order_pct": ref.depth_order(
                cat(b, "preds"), cat(b, "target"), cat(b, "valid"), "pcrd"
            )
        },
        {
            "preds": torch.zeros(1, 5),
            "target": torch.zeros(1, 5),
            "valid": torch.zeros(1, 5, dtype=torch.bool),
        },
    ),
    Case(
        "JointDetectionScores",
        metrics.JointDetectionScores,
        detection_batches,
        lambda b: {
            f"joint_detection/{k.replace('@', '_pct@')}": v
            for k, v in ref.joint_detection(
                joined(b, "preds"), joined(b, "target"), (0.4, 0.8, 1.2)
            ).items()
        },
        {"preds": [], "target": []},
    ),
    Case(
        "KeypointAP",
        metrics.KeypointAP,
        keypoint_batches,
        keypoint_reference,
        {"preds": [], "target": []},
    ),
    Case(
        "MuPoTSPCK",
        lambda: metrics.MuPoTSPCK(num_sequences=3),
        mupots_batches,
        mupots_reference,
        {"preds_2d": [], "preds_3d": [], "target_2d": [], "target_3d": [], "sequence": []},
    ),
    Case(
        "PanopticMPJPE",
        metrics.PanopticMPJPE,
        panoptic_batches,
        panoptic_reference,
        {"preds": [], "target": [], "visible": [], "group": []},
    ),
    Case(
        "CollisionScores",
        lambda: metrics.CollisionScores(grid=16),
        collision_batches,
        None,  # analytic volumes in test_multiperson.py
        None,  # an image without people is an image: tested in test_multiperson.py
    ),
]

CASE_IDS = [case.id for case in CASES]


def run(case: Case, batches: list[Batch]) -> dict[str, float]:
    metric = case.make()
    for batch in batches:
        metric.update(**batch)
    return metric.results()
