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

What a protocol reads of a method's output is an `Estimate`: one person per crop, with the
SMPL parameters and the extras the method has; the training-mean baseline is an `Estimate`
too (pose and betas only) and goes through the same functions.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional as F

import metrics
from body.joint_sets import SMPL_PART_NAMES, evaluation_indices, root_index
from datamodules.base import BodyModels
from experiments.config import ConfigError
from lightning_modules.common.prediction import Prediction

H36M_ROOT = root_index("h36m_17")
H36M_TO_LSP14 = evaluation_indices("h36m_17", "lsp_14")
PART_CLASS_NAMES = ("background", *SMPL_PART_NAMES)  # label 0 background, k part k - 1


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
    """

    id: str
    dataset: str
    split: str
    protocol: str
    joint_set: str | None
    metrics: Callable[[], list[metrics.SuiteMetric]]
    needs: tuple[str, ...]
    description: str


def _spin_14_metrics() -> list[metrics.SuiteMetric]:
    return [metrics.MPJPE(root_index=H36M_ROOT), metrics.PAMPJPE(), metrics.PVE(align="none")]


def _part_metrics() -> list[metrics.SuiteMetric]:
    return [metrics.PartSegmentationScores(len(PART_CLASS_NAMES), class_names=PART_CLASS_NAMES)]


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
    betas: (B, 10); extras: method-specific tensors (B, ...) without the person axis. Fields a
    source does not have are None or absent.
    """

    pose: Tensor | None = None
    betas: Tensor | None = None
    extras: Mapping[str, Tensor] = field(default_factory=dict)

    def lacks(self, needs: Sequence[str]) -> list[str]:
        """The fields of `needs` this estimate does not have."""
        have = {name for name in ("pose", "betas") if getattr(self, name) is not None}
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


Scorer = Callable[[Sequence[metrics.SuiteMetric], Estimate, Mapping, BodyModels], None]
SCORERS: dict[str, Scorer] = {"spin_14": score_spin_14, "part_segm": score_part_segm}


def score_batch(
    benchmark: Benchmark,
    benchmark_metrics: Sequence[metrics.SuiteMetric],
    estimate: Estimate,
    batch: Mapping,
    models: BodyModels,
) -> None:
    """Update `benchmark_metrics` (from `benchmark.metrics()`) with one batch of crops."""
    missing = estimate.lacks(benchmark.needs)
    if missing:
        raise ValueError(f"benchmark {benchmark.id} needs {missing}, which the estimate lacks")
    SCORERS[benchmark.protocol](benchmark_metrics, estimate, batch, models)
