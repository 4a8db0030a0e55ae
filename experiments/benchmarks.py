"""The benchmark registry: benchmark id -> dataset split, protocol, metrics, fields it needs.

A benchmark composes a named split of one dataset (the datamodules expose only named splits)
with an evaluation protocol (how predictions and ground truth become metric inputs, in the
pure functions below) and the metrics it reports under their names (DESIGN.md "Experiments,
evaluation, results"; ../shared/metrics.md). `python -m experiments eval` (experiments/
evaluate.py) runs one; the metric keys of a results file are `metrics.results_of` of
`Benchmark.metrics()`.

Protocols:

- `spin_14` (SPIN / PARE on 3DPW and Human3.6M): predicted and ground-truth meshes without
  translation, in the camera-frame orientation, go through the 17-joint Human3.6M regressor;
  the root is the H36M pelvis (regressor joint 0) and the errors are taken on the 14 LSP
  joints (`evaluation_indices("h36m_17", "lsp_14")`, SPIN's `H36M_TO_J14`): the 17 joints
  are passed with a mask of those 14, so the root is subtracted although it is not evaluated.
  Ground truth uses the body model of the sample's gender (1 male, 2 female; 0 and -1 the
  neutral one), predictions the neutral one. PVE compares the two meshes as they are
  (`align="none"`). Samples without SMPL ground truth are skipped.
- `part_segm`: the predicted part labels (`extras["part_segm"]`, (B, 1, h, w) int64 at the
  network's feature resolution, 0 background and 1..24 the SMPL parts) upsampled by nearest
  neighbour to the crop size against the crop sample's `part_segm` (S x S), 25 classes. Samples
  without part labels (`has_part_segm` False) are skipped.

- `bodynet_volume` (BodyNet, SURREAL, the middle frame of each validation clip; paper tables
  1, A.1, A.3): `voxel_iou_pct` (`metrics.VoxelIoU`, the predicted `occupancy` at 0.5 against
  the experiment's `bodynet_voxels` target at the network's resolution); `mpjpe_mm` on the
  `bodynet_16` joints, root-relative, with the root's depth known (appendix C.1: the
  prediction is placed at the true root depth); `pckh_bodynet_pct`, PCKh@0.5 with BodyNet's
  SURREAL normaliser (crop side / 10, i.e. heatmap side / 10 in heatmap pixels, counted with
  `<=`; metrics.md) on the 2D heatmaps' argmax against the visible `bodynet_16` keypoints;
  `part_segm/...` (`bodynet_15` classes at the heatmap resolution against `bodynet_segm`,
  mean IoU over the 14 foreground parts as in appendix C.1). Each metric is updated only by
  the samples that have its ground truth.
- `bodynet_parts` (paper table 4): `part_voxel_iou/...`, the argmax of the `part_occupancy`
  class probabilities against `bodynet_part_voxels` (`bodynet_7`), per class over the set,
  and the merged foreground.
- `bodynet_surface` (paper tables 1 to 3): `voxel_iou_pct` as above and the SMPL surface error
  `pve_mm` (PVE `none`, meshes without translation as in `spin_14`: the neutral body fitted to
  the prediction, `experiments/fitting.py`, against the gendered ground truth). Benchmarks
  with `fit` set go through that fitting step first (`surreal_bodynet_fit`: the fit to the
  voxels, section 3.4; the alternatives of section 4.2 and Table 2 lines 2-3, surface error
  only: `surreal_smplifypp`, SMPLify++ fitted to the network's silhouette and 2D / 3D joints,
  and `surreal_betas_fit`, the regressed betas posed on the predicted 3D joints); `subset`
  selects BodyNet's s10 / s20 (suffixes `_s10`, `_s20`): the `fraction` of the split's samples
  whose true shape lies farthest from the mean shape (mean vertex distance between the body
  with its betas and with zero betas, same pose and gender; `shape_extremes`).

- `bodynet_silhouette` (paper table 3, UP-3D): `silhouette/...` (`metrics.SilhouetteScores`:
  accuracy, foreground IoU, `f1_fg`, `f1_mean`, counts over the set) at the original image
  resolution: the front view of the predicted occupancy (max over depth, (R, R) over the crop)
  resampled bilinearly into the image through the inverse of the crop's warp
  (`meta["crop_matrix"]`), 0 outside the crop, thresholded at 0.5, against the image's person
  mask (`meta["image_mask"]`; the benchmark asks the DataModule for it with `image_masks`;
  UP-3D: upi-s1h's manual LSP segmentation), samples without a mask skipped; and `pve_mm` of
  the fitted body as in `bodynet_surface`, against UP-3D's SMPLify fit (neutral). T1 is the
  LSP-sourced test images (`up3d_t1`: split `lsp_test`, 639 in the release; that this is the
  paper's T1 is unverified, datasets.md 2.4); T2 (Tan et al.'s 139 images) has no known list.

What a protocol reads of a method's output is an `Estimate`: one person per crop, with the
SMPL parameters and the extras the method has; the training-mean baseline is an `Estimate`
too (pose and betas only) and goes through the same functions.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

import metrics
from body.joint_sets import SMPL_PART_NAMES, canonical_indices, evaluation_indices, root_index
from body.part_groups import class_names
from datamodules.base import BodyModels
from experiments.config import ConfigError
from lightning_modules.bodynet.targets import JOINT_SET as BODYNET_JOINT_SET
from lightning_modules.bodynet.targets import decode_heatmaps2d
from lightning_modules.common.prediction import Prediction

H36M_ROOT = root_index("h36m_17")
H36M_TO_LSP14 = evaluation_indices("h36m_17", "lsp_14")
PART_CLASS_NAMES = ("background", *SMPL_PART_NAMES)  # label 0 background, k part k - 1
BODYNET_JOINTS = canonical_indices(BODYNET_JOINT_SET)
BODYNET_ROOT = root_index(BODYNET_JOINT_SET)
PCKH_BODYNET_DIVISOR = 10.0  # normaliser = crop side / 10 (BodyNet's SURREAL evaluator)


class UnknownBenchmarkError(ConfigError):
    """A benchmark id that is not in the registry (a command-line mistake: exit status 2)."""


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark.

    Attributes:
        id: the registry key (`pw3d_test`), also the results file's name.
        dataset, split: the dataset id and its named split the samples come from.
        protocol: how predictions are scored (`SCORERS`; module docstring).
        joint_set: the joint set errors are taken on (None for non-joint benchmarks).
        metrics: a factory of fresh metric instances, named as results files store them.
        needs: the prediction fields the protocol reads (`pose`, `betas`, `extras.<name>`).
        description: one line for listings and results.
        fit: the SMPL fitting objective predictions go through before scoring
            (`experiments.fitting.OBJECTIVES`: BodyNet's surface error), None for none.
        subset: a function (dataset, body models) -> the sample positions scored, or None for
            every sample of the split.
        image_masks: the protocol reads the original-resolution person masks
            (`meta["image_mask"]`, `datamodules.datasets.CropDataset`).
    """

    id: str
    dataset: str
    split: str
    protocol: str
    joint_set: str | None
    metrics: Callable[[], list[metrics.SuiteMetric]]
    needs: tuple[str, ...]
    description: str
    fit: str | None = None
    subset: Callable[[Any, BodyModels], list[int]] | None = None
    image_masks: bool = False


def _spin_14_metrics() -> list[metrics.SuiteMetric]:
    return [metrics.MPJPE(root_index=H36M_ROOT), metrics.PAMPJPE(), metrics.PVE(align="none")]


def _part_metrics() -> list[metrics.SuiteMetric]:
    return [metrics.PartSegmentationScores(len(PART_CLASS_NAMES), class_names=PART_CLASS_NAMES)]


def _bodynet_volume_metrics() -> list[metrics.SuiteMetric]:
    return [
        metrics.VoxelIoU(),
        metrics.MPJPE(root_index=BODYNET_ROOT),
        metrics.PCKh(inclusive=True, name="pckh_bodynet_pct"),
        metrics.PartSegmentationScores(15, class_names=class_names("bodynet_15")),
    ]


def _bodynet_part_metrics() -> list[metrics.SuiteMetric]:
    return [metrics.PartVoxelIoU(7, class_names=class_names("bodynet_7"))]


def _bodynet_surface_metrics() -> list[metrics.SuiteMetric]:
    return [metrics.VoxelIoU(), metrics.PVE(align="none")]


def shape_extremes(fraction: float) -> Callable[[Any, BodyModels], list[int]]:
    """BodyNet's s10 / s20 selection (module docstring) as a `Benchmark.subset`."""

    def select(dataset: Any, models: BodyModels) -> list[int]:
        distances = mean_shape_distances(dataset, models)
        ranked = sorted(distances, key=lambda index: -distances[index])
        return sorted(ranked[: math.ceil(fraction * len(ranked))])

    return select


def mean_shape_distances(dataset: Any, models: BodyModels) -> dict[int, float]:
    """{sample position: mean vertex distance (m) between its true body and the same pose with
    zero betas} over the samples with SMPL, from `dataset.smpl_annotation` (no pixels read)."""
    annotations = [(i, dataset.smpl_annotation(i)) for i in range(len(dataset))]
    kept = [(i, a) for i, a in annotations if a["has_smpl"]]
    if not kept:
        return {}
    pose = torch.as_tensor(np.stack([a["pose"] for _, a in kept]))
    betas = torch.as_tensor(np.stack([a["betas"] for _, a in kept]))
    gender = torch.tensor([int(a["gender"]) for _, a in kept])
    true, _ = posed_bodies(models, pose, betas, gender)
    mean, _ = posed_bodies(models, pose, torch.zeros_like(betas), gender)
    distances = (true - mean).norm(dim=-1).mean(dim=-1)
    return {i: float(d) for (i, _), d in zip(kept, distances, strict=True)}


def _bodynet_silhouette_metrics() -> list[metrics.SuiteMetric]:
    return [metrics.SilhouetteScores(), metrics.PVE(align="none")]


def _surface_error_metrics() -> list[metrics.SuiteMetric]:
    return [metrics.PVE(align="none")]


# fitting objective -> (benchmark id stem, metrics, needs, what is fitted)
FIT_BENCHMARKS: dict[str, tuple[str, Callable[[], list[metrics.SuiteMetric]], tuple, str]] = {
    "occupancy": (
        "surreal_bodynet_fit", _bodynet_surface_metrics,
        ("keypoints3d", "extras.occupancy", "extras.root_depth"),
        "voxel IoU and the SMPL surface error (PVE, mm) of the neutral body fitted to the "
        "predicted voxels and 3D joints",
    ),
    "inputs": (
        "surreal_smplifypp", _surface_error_metrics,
        ("keypoints3d", "extras.segm", "extras.heatmaps2d", "extras.root_depth"),
        "SMPL surface error (PVE, mm) of SMPLify++: the neutral body fitted to the predicted "
        "silhouette and 2D / 3D joints",
    ),
    "joints": (
        "surreal_betas_fit", _surface_error_metrics, ("keypoints3d", "betas"),
        "SMPL surface error (PVE, mm) of the regressed betas posed on the predicted 3D joints",
    ),
}  # fmt: skip


SHAPE_SUBSETS = (
    ("", None, ""),
    ("_s20", 0.2, ", s20 (the 20 % farthest from the mean shape)"),
    ("_s10", 0.1, ", s10 (the 10 % farthest from the mean shape)"),
)


def _bodynet_benchmark(
    objective: str, suffix: str, fraction: float | None, label: str
) -> Benchmark:
    stem, metric_factory, needs, what = FIT_BENCHMARKS[objective]
    return Benchmark(
        id=f"{stem}{suffix}",
        dataset="surreal",
        split="val_bodynet",
        protocol="bodynet_surface",
        joint_set=BODYNET_JOINT_SET,
        metrics=metric_factory,
        needs=needs,
        description=f"SURREAL BodyNet test set{label}: {what}, gendered ground truth",
        fit=objective,
        subset=None if fraction is None else shape_extremes(fraction),
    )


BENCHMARKS: dict[str, Benchmark] = {
    b.id: b
    for b in (
        Benchmark(
            id="pw3d_test",
            dataset="pw3d",
            split="test_spin",
            protocol="spin_14",
            joint_set="lsp_14",
            metrics=_spin_14_metrics,
            needs=("pose", "betas"),
            description="3DPW test (SPIN/PARE protocol): MPJPE, PA-MPJPE on 14 LSP joints "
            "from the H36M regressor, PVE; gendered ground truth",
        ),
        Benchmark(
            id="pw3d_occ",
            dataset="pw3d",
            split="occ",
            protocol="spin_14",
            joint_set="lsp_14",
            metrics=_spin_14_metrics,
            needs=("pose", "betas"),
            description="3DPW-OCC (PARE table 2): the pw3d_test protocol on the occlusion "
            "sequences",
        ),
        Benchmark(
            id="pw3d_test_parts",
            dataset="pw3d",
            split="test_spin",
            protocol="part_segm",
            joint_set=None,
            metrics=_part_metrics,
            needs=("extras.part_segm",),
            description="3DPW test: part segmentation (24 parts + background) of the crop, "
            "mean IoU over the parts",
        ),
        Benchmark(
            id="surreal_bodynet",
            dataset="surreal",
            split="val_bodynet",
            protocol="bodynet_volume",
            joint_set=BODYNET_JOINT_SET,
            metrics=_bodynet_volume_metrics,
            needs=("keypoints3d", "extras.occupancy", "extras.heatmaps2d", "extras.segm"),
            description="SURREAL BodyNet test set (middle frame of each validation clip): "
            "voxel IoU, 3D pose error (bodynet_16, root depth known), PCKh@0.5 (BodyNet's "
            "normaliser), 14-part segmentation IoU",
        ),
        Benchmark(
            id="surreal_bodynet_parts",
            dataset="surreal",
            split="val_bodynet",
            protocol="bodynet_parts",
            joint_set=None,
            metrics=_bodynet_part_metrics,
            needs=("extras.part_occupancy",),
            description="SURREAL BodyNet test set: 3D body-part voxel IoU (6 parts + "
            "background, merged foreground)",
        ),
        *(
            _bodynet_benchmark(objective, suffix, fraction, label)
            for objective in FIT_BENCHMARKS
            for suffix, fraction, label in SHAPE_SUBSETS
        ),
        Benchmark(
            id="up3d_t1",
            dataset="up3d",
            split="lsp_test",
            protocol="bodynet_silhouette",
            joint_set=BODYNET_JOINT_SET,
            metrics=_bodynet_silhouette_metrics,
            needs=("keypoints3d", "extras.occupancy", "extras.root_depth"),
            description="UP-3D T1 (the LSP-sourced test images): silhouette accuracy, IoU and "
            "F1 of the projected voxels at image resolution against the manual masks; SMPL "
            "surface error (PVE, mm) of the neutral body fitted to the voxels",
            fit="occupancy",
            image_masks=True,
        ),
    )
}


def get_benchmark(benchmark_id: str) -> Benchmark:
    """The registered benchmark `benchmark_id`; UnknownBenchmarkError naming the valid ids."""
    if benchmark_id in BENCHMARKS:
        return BENCHMARKS[benchmark_id]
    message = f"Unknown benchmark '{benchmark_id}'."
    close = difflib.get_close_matches(benchmark_id, list(BENCHMARKS), n=1)
    if close:
        message += f" Did you mean '{close[0]}'?"
    raise UnknownBenchmarkError(f"{message} Benchmarks: {', '.join(sorted(BENCHMARKS))}.")


# ----------------------------------------------------------------------------- estimates


@dataclass
class Estimate:
    """One person per crop, what the protocols read.

    pose: (B, 72) axis-angle or (B, 24, 3, 3) rotation matrices, camera-frame orientation;
    betas: (B, 10); keypoints3d: (B, K, 3) canonical joints (methods that predict joints);
    extras: method-specific tensors (B, ...) without the person axis. Fields a
    source does not have are None or absent.
    """

    pose: Tensor | None = None
    betas: Tensor | None = None
    extras: Mapping[str, Tensor] = field(default_factory=dict)
    keypoints3d: Tensor | None = None  # (B, K, 3) canonical superset, camera frame, metres

    def lacks(self, needs: Sequence[str]) -> list[str]:
        """The fields of `needs` this estimate does not have."""
        fields = ("pose", "betas", "keypoints3d")
        have = {name for name in fields if getattr(self, name) is not None}
        have |= {f"extras.{name}" for name in self.extras}
        return [name for name in needs if name not in have]


def estimate_from_prediction(prediction: Prediction) -> Estimate:
    """The `Estimate` of a crop method's prediction (person axis P = 1 dropped)."""
    if prediction.person_valid.shape[1] != 1:
        raise ValueError(
            f"crop benchmarks score one person per crop; the prediction has "
            f"{prediction.person_valid.shape[1]} per image"
        )
    return Estimate(
        pose=None if prediction.pose is None else prediction.pose[:, 0],
        betas=None if prediction.betas is None else prediction.betas[:, 0],
        extras={name: value[:, 0] for name, value in prediction.extras.items()},
        keypoints3d=None if prediction.keypoints3d is None else prediction.keypoints3d[:, 0],
    )


# ----------------------------------------------------------------------------- protocol spin_14


@dataclass
class MeshComparison:
    """Metric inputs of the `spin_14` protocol, metres, no translation, float64.

    pred_joints, target_joints: (N, 17, 3) H36M-regressor joints; visible: (N, 17) bool, True
    on the 14 LSP joints; pred_vertices, target_vertices: (N, V, 3). N counts the samples with
    SMPL ground truth.
    """

    pred_joints: Tensor
    target_joints: Tensor
    visible: Tensor
    pred_vertices: Tensor
    target_vertices: Tensor


def posed_bodies(
    models: BodyModels, pose: Tensor, betas: Tensor, gender: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(vertices (B, V, 3), H36M-regressor joints (B, 17, 3)) float64, without translation.

    `pose` (B, 72) axis-angle or (B, 24, 3, 3), `betas` (B, 10); `gender` (B,) int codes pick
    each sample's body model (1 male, 2 female, 0 or -1 neutral); None: neutral for all.
    """
    pose, betas = pose.double(), betas.double()
    codes = [0] * len(pose) if gender is None else [int(code) for code in gender.tolist()]
    order: list[int] = []
    vertices, joints = [], []
    for code in sorted(set(codes)):
        rows = [i for i, c in enumerate(codes) if c == code]
        index = torch.tensor(rows, device=pose.device)
        body = models.get(code, torch.float64)(pose[index], betas[index], joint_set="h36m_17")
        order += rows
        vertices.append(body.vertices)
        joints.append(body.keypoints)
    inverse = torch.argsort(torch.tensor(order, device=pose.device))  # back to batch order
    return torch.cat(vertices)[inverse], torch.cat(joints)[inverse]


def compare_meshes(estimate: Estimate, batch: Mapping, models: BodyModels) -> MeshComparison | None:
    """The `spin_14` inputs of the batch's samples with SMPL ground truth (None if none has)."""
    assert estimate.pose is not None and estimate.betas is not None
    keep = batch["has_smpl"].bool()
    if not keep.any():
        return None
    pred_vertices, pred_joints = posed_bodies(models, estimate.pose[keep], estimate.betas[keep])
    target_vertices, target_joints = posed_bodies(
        models, batch["pose"][keep], batch["betas"][keep], batch["gender"][keep]
    )
    visible = torch.zeros(pred_joints.shape[:2], dtype=torch.bool, device=pred_joints.device)
    visible[:, H36M_TO_LSP14] = True
    return MeshComparison(pred_joints, target_joints, visible, pred_vertices, target_vertices)


def score_spin_14(
    benchmark_metrics: Sequence[metrics.SuiteMetric],
    estimate: Estimate,
    batch: Mapping,
    models: BodyModels,
) -> None:
    """Update MPJPE / PA-MPJPE (joints) and PVE (vertices) with one batch (module docstring)."""
    compared = compare_meshes(estimate, batch, models)
    if compared is None:
        return
    for metric in benchmark_metrics:
        if isinstance(metric, metrics.PVE):
            metric.update(compared.pred_vertices, compared.target_vertices)
        elif isinstance(metric, metrics.MPJPE | metrics.PAMPJPE):
            metric.update(compared.pred_joints, compared.target_joints, compared.visible)
        else:
            raise TypeError(f"protocol spin_14 cannot score {type(metric).__name__}")


# ----------------------------------------------------------------------------- protocol part_segm


def upsample_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, h, w) int labels -> (B, H, W) by nearest neighbour (pixel-centre aligned)."""
    resized = F.interpolate(labels[:, None].double(), size=size, mode="nearest-exact")
    return resized[:, 0].round().long()


def score_part_segm(
    benchmark_metrics: Sequence[metrics.SuiteMetric],
    estimate: Estimate,
    batch: Mapping,
    models: BodyModels,
) -> None:
    """Update the part segmentation scores with one batch (module docstring)."""
    keep = batch["has_part_segm"].bool()
    if not keep.any():
        return
    target = batch["part_segm"][keep].long()
    labels = upsample_labels(estimate.extras["part_segm"][keep], tuple(target.shape[-2:]))
    for metric in benchmark_metrics:
        metric.update(labels, target)


# ----------------------------------------------------------------------------- BodyNet protocols


def _update_voxel_iou(metric: metrics.SuiteMetric, estimate: Estimate, batch: Mapping) -> None:
    keep = batch["has_bodynet_voxels"].bool()
    if "occupancy" in estimate.extras and keep.any():
        metric.update(estimate.extras["occupancy"][keep], batch["bodynet_voxels"][keep].bool())


def _update_pose3d(metric: metrics.SuiteMetric, estimate: Estimate, batch: Mapping) -> None:
    truth = batch["keypoints3d"][:, BODYNET_JOINTS]
    keep = batch["has_keypoints3d"].bool() & (truth[:, BODYNET_ROOT, 3] > 0)
    if estimate.keypoints3d is not None and keep.any():
        pred = estimate.keypoints3d[keep][:, BODYNET_JOINTS]
        metric.update(pred, truth[keep, :, :3], truth[keep, :, 3] > 0)


def _update_pckh(metric: metrics.SuiteMetric, estimate: Estimate, batch: Mapping) -> None:
    if "heatmaps2d" not in estimate.extras:
        return
    side = batch["image"].shape[-1]
    pred = decode_heatmaps2d(estimate.extras["heatmaps2d"], side)
    truth = batch["keypoints2d"][:, BODYNET_JOINTS]
    normaliser = torch.full((len(pred),), side / PCKH_BODYNET_DIVISOR, device=pred.device)
    metric.update(pred, truth[..., :2], truth[..., 2] > 0, normaliser)


def _update_segm(metric: metrics.SuiteMetric, estimate: Estimate, batch: Mapping) -> None:
    keep = batch["has_part_segm"].bool()
    if "segm" in estimate.extras and keep.any():
        metric.update(estimate.extras["segm"][keep], batch["bodynet_segm"][keep])


BODYNET_VOLUME_UPDATES = {
    metrics.VoxelIoU: _update_voxel_iou,
    metrics.MPJPE: _update_pose3d,
    metrics.PCKh: _update_pckh,
    metrics.PartSegmentationScores: _update_segm,
}


def score_bodynet_volume(
    benchmark_metrics: Sequence[metrics.SuiteMetric],
    estimate: Estimate,
    batch: Mapping,
    models: BodyModels,
) -> None:
    """Update BodyNet's volume, pose and segmentation metrics (module docstring); an input the
    estimate lacks (a baseline's) leaves its metric untouched."""
    for metric in benchmark_metrics:
        BODYNET_VOLUME_UPDATES[type(metric)](metric, estimate, batch)


def score_bodynet_parts(
    benchmark_metrics: Sequence[metrics.SuiteMetric],
    estimate: Estimate,
    batch: Mapping,
    models: BodyModels,
) -> None:
    """Update the 3D part IoU (module docstring)."""
    keep = batch["has_bodynet_voxels"].bool()
    if "part_occupancy" not in estimate.extras or not keep.any():
        return
    for metric in benchmark_metrics:
        metric.update(estimate.extras["part_occupancy"][keep], batch["bodynet_part_voxels"][keep])


def score_bodynet_surface(
    benchmark_metrics: Sequence[metrics.SuiteMetric],
    estimate: Estimate,
    batch: Mapping,
    models: BodyModels,
) -> None:
    """Update the voxel IoU and, for a fitted estimate, the surface error (module docstring)."""
    compared = None if estimate.pose is None else compare_meshes(estimate, batch, models)
    for metric in benchmark_metrics:
        if isinstance(metric, metrics.VoxelIoU):
            _update_voxel_iou(metric, estimate, batch)
        elif compared is not None:
            metric.update(compared.pred_vertices, compared.target_vertices)


def image_silhouette(
    front: Tensor, crop_matrix: Any, crop_size: int, image_size: tuple[int, int]
) -> Tensor:
    """(H, W) bool: a crop's front-view occupancy (R, R) probabilities in the original image
    (module docstring, `bodynet_silhouette`). `crop_matrix` (3, 3) maps image pixels to crop
    pixels; grid cell i of R spans crop pixels [i S / R - 0.5, (i + 1) S / R - 0.5]."""
    height, width = image_size
    matrix = torch.as_tensor(np.asarray(crop_matrix), dtype=torch.float64)
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )  # fmt: skip
    pixels = torch.stack((cols, rows, torch.ones_like(rows)), dim=-1) @ matrix.T
    normalised = (pixels[..., :2] + 0.5) / crop_size * 2.0 - 1.0  # align_corners=False
    grid = normalised[None].to(device=front.device, dtype=torch.float32)
    sampled = F.grid_sample(front.float()[None, None], grid, align_corners=False)
    return sampled[0, 0] >= 0.5


def score_bodynet_silhouette(
    benchmark_metrics: Sequence[metrics.SuiteMetric],
    estimate: Estimate,
    batch: Mapping,
    models: BodyModels,
) -> None:
    """Update the image-resolution silhouette scores and the surface error (module docstring)."""
    silhouettes = [m for m in benchmark_metrics if isinstance(m, metrics.SilhouetteScores)]
    if silhouettes and "occupancy" in estimate.extras:
        crop_size = int(batch["image"].shape[-1])
        fronts = estimate.extras["occupancy"].amax(dim=1)  # (B, R, R): max over depth
        for front, meta in zip(fronts, batch["meta"], strict=True):
            if meta.get("image_mask") is None:
                continue
            truth = torch.as_tensor(meta["image_mask"], device=front.device).bool()
            height, width = truth.shape
            predicted = image_silhouette(front, meta["crop_matrix"], crop_size, (height, width))
            for metric in silhouettes:
                metric.update(predicted[None], truth[None])
    rest = [m for m in benchmark_metrics if not isinstance(m, metrics.SilhouetteScores)]
    score_bodynet_surface(rest, estimate, batch, models)


Scorer = Callable[[Sequence[metrics.SuiteMetric], Estimate, Mapping, BodyModels], None]
SCORERS: dict[str, Scorer] = {
    "spin_14": score_spin_14,
    "part_segm": score_part_segm,
    "bodynet_volume": score_bodynet_volume,
    "bodynet_parts": score_bodynet_parts,
    "bodynet_surface": score_bodynet_surface,
    "bodynet_silhouette": score_bodynet_silhouette,
}


def score_batch(
    benchmark: Benchmark,
    benchmark_metrics: Sequence[metrics.SuiteMetric],
    estimate: Estimate,
    batch: Mapping,
    models: BodyModels,
    partial: bool = False,
) -> None:
    """Update `benchmark_metrics` (from `benchmark.metrics()`) with one batch of crops. With
    `partial` (a baseline that predicts only some of the fields) an estimate may lack fields;
    the metrics that read them stay empty (their results are null)."""
    missing = [] if partial else estimate.lacks(benchmark.needs)
    if missing:
        raise ValueError(f"benchmark {benchmark.id} needs {missing}, which the estimate lacks")
    SCORERS[benchmark.protocol](benchmark_metrics, estimate, batch, models)
