"""BodyNetModule: training, validation and prediction of BodyNet (paper section 3).

Losses (`lightning_modules.bodynet.losses`), by name: `pose2d` (heatmap MSE), `segm` (spatial
cross-entropy), `pose3d` (3D heatmap MSE), `voxels` (occupancy BCE), `reproj_front` and
`reproj_side` (the silhouette re-projection BCEs); for the part network (`num_part_classes`
> 0) `parts` (voxel cross-entropy) and `parts_reproj_front` / `parts_reproj_side` (appendix
B.3) in place of the last three; for the shape-parameter regressor (`num_betas` > 0, section
4.2) `betas` (L2 on the SMPL betas of the samples with SMPL) in place of the last three. A
loss is computed only when its weight is positive; with
`normalise_weights` the weights are scaled to sum to one (the paper's rule; its weights
(1e7, 1e3, 1e6, 1e1, 1, 1) are the defaults of `method/bodynet`). The voxel losses are taken
over the samples with SMPL ground truth (`has_bodynet_voxels`) only.

Staged training (section 3.3, steps (i) to (v)): `trainable` names the subnetworks whose
parameters the optimizer updates (`pose2d`, `segm`, `pose3d`, `shape`; `shape` includes the
voxel heads). The others are frozen: no gradient, and kept in eval mode so their batch-norm
statistics stay those of the stage that trained them. `init_from` loads the network weights
of an earlier stage's checkpoint (read with `weights_only=True`), of the subnetworks
`init_subnetworks` names (all by default; the input ablations of Tables 1 and A.3 load only the
subnetworks before the one whose inputs they change, whose weights differ in shape);
`init_parts_from` loads an
occupancy network's checkpoint into a part network through
`BodyNetNetwork.init_parts_from_shape`.

Optimisation: `optimizer` over the trainable subnetworks (the paper: RMSprop at 1e-3, constant);
an optional `scheduler` factory is stepped after every optimizer step (not per epoch: the CPU
runs are shorter than an epoch).

Validation, per named validation split: `voxel_iou_pct` (`metrics.VoxelIoU` at 0.5 on the
last stack's occupancy: the sigmoid, or 1 - P(background) for the part network; samples with
voxels) and `pose3d_mm`, the mean distance over the
`bodynet_16` joints of the decoded 3D pose and the truth, both root-relative, with the root's
depth and the intrinsics known (appendix C.1), as torchmetrics means; and the voxel IoU of the
constant baseline (`lightning_modules.bodynet.baseline`, fitted at the start of training from
`baseline_samples` training samples and kept in the checkpoint) as `val/<split>/baseline/`.

Prediction (`predict_step`): the canonical `Prediction` with `keypoints3d` from the 3D pose
volume (the `bodynet_16` joints scattered into the canonical superset; other entries zero) at
the true root depth when the batch has 3D joints, else at the targets' `bodynet_root_depth`
(the SMPL fit's, UP-3D), else at `default_root_depth`; no SMPL
parameters (SMPL fitting, section 3.4, is a separate step). `extras`: `occupancy` (B, 1, R, R,
R) foreground probabilities (`occupancy` above; for the part network also `part_occupancy`
(B, 1, K, R, R, R) class probabilities),
`heatmaps2d` (B, 1, J, h, w), `segm` (B, 1, h, w) int64 `bodynet_15` labels and `root_depth`
(B, 1) metres used. The shape-parameter regressor gives `betas` (B, 1, 10) and no occupancy
(its validation logs `betas_error`, the mean L2 distance to the true betas, in place of the
voxel IoU); its pose comes from fitting the 3D joints (`experiments.fitting`, objective
`joints`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric

from body.joint_sets import CANONICAL_NAMES, canonical_indices, root_index
from lightning_modules.bodynet import losses
from lightning_modules.bodynet.baseline import ConstantOccupancy
from lightning_modules.bodynet.network import BodyNetNetwork, BodyNetOutput
from lightning_modules.bodynet.targets import (
    DEPTH_BIN_SIZE,
    JOINT_SET,
    decode_heatmaps3d,
)
from lightning_modules.common.prediction import Prediction
from metrics.joints import mpjpe_per_sample
from metrics.volumes import VoxelIoU

SUBNETWORKS = ("pose2d", "segm", "pose3d", "shape")
OCCUPANCY_LOSSES = ("pose2d", "segm", "pose3d", "voxels", "reproj_front", "reproj_side")
PART_LOSSES = ("pose2d", "segm", "pose3d", "parts", "parts_reproj_front", "parts_reproj_side")
BETAS_LOSSES = ("pose2d", "segm", "pose3d", "betas")
JOINTS = canonical_indices(JOINT_SET)
ROOT = root_index(JOINT_SET)
CHECKPOINT_PREFIX = "network."


def _has_values(metric: Metric) -> bool:
    """Whether a validation metric saw a scorable sample this epoch."""
    if isinstance(metric, VoxelIoU):
        return bool(metric.num_samples > 0)  # samples whose union is empty have no IoU
    return bool(metric.update_count)


def loss_names(network: BodyNetNetwork) -> tuple[str, ...]:
    """The losses a network's outputs have (module docstring)."""
    if network.num_betas:
        return BETAS_LOSSES
    return PART_LOSSES if network.num_part_classes else OCCUPANCY_LOSSES


def volume_to_camera(xy: Tensor, depth: Tensor, K: Tensor, root_depth: Tensor) -> Tensor:
    """Camera-frame joints (B, J, 3) from crop pixels xy (B, J, 2), depth relative to the root
    (B, J) metres, intrinsics K (B, 3, 3) and the root's depth (B,)."""
    z = root_depth[:, None] + depth
    x = (xy[..., 0] - K[:, None, 0, 2]) * z / K[:, None, 0, 0]
    y = (xy[..., 1] - K[:, None, 1, 2]) * z / K[:, None, 1, 1]
    return torch.stack((x, y, z), dim=-1)


def load_network_state(path: str | Path) -> dict[str, Tensor]:
    """The network weights of a runner checkpoint (keys without the `network.` prefix)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint to initialise from not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which
        raise ValueError(f"{path} does not load as a checkpoint: {error}") from error
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} has no 'state_dict'")
    network = {k[len(CHECKPOINT_PREFIX) :]: v for k, v in state.items() if k.startswith("network.")}
    if not network:
        raise ValueError(f"{path} holds no BodyNet network weights (no 'network.' keys)")
    return network


class BodyNetModule(pl.LightningModule):
    """BodyNet's staged multi-task training (module docstring)."""

    def __init__(
        self,
        network: BodyNetNetwork,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        loss_weights: Mapping[str, float] | None = None,
        normalise_weights: bool = True,
        trainable: Sequence[str] = SUBNETWORKS,
        init_from: str | None = None,
        init_parts_from: str | None = None,
        init_subnetworks: Sequence[str] = SUBNETWORKS,
        default_root_depth: float = 5.0,
        baseline_samples: int = 200,
        scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
    ) -> None:
        super().__init__()
        names = loss_names(network)
        weights = dict(losses.PAPER_WEIGHTS if loss_weights is None else loss_weights)
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(f"unknown loss weights {unknown}; this network's losses: {names}")
        self.loss_weights = losses.normalised_weights(weights) if normalise_weights else weights
        bad = sorted(set(trainable) - set(SUBNETWORKS))
        if bad or not trainable:
            raise ValueError(f"trainable must name some of {SUBNETWORKS}, got {list(trainable)}")
        bad = sorted(set(init_subnetworks) - set(SUBNETWORKS))
        if bad or not init_subnetworks:
            raise ValueError(
                f"init_subnetworks must name some of {SUBNETWORKS}, got {list(init_subnetworks)}"
            )
        self.network = network
        self.trainable = tuple(trainable)
        self.init_subnetworks = tuple(init_subnetworks)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.default_root_depth = default_root_depth
        self.init_from, self.init_parts_from = init_from, init_parts_from
        self.baseline = ConstantOccupancy(network.voxel_resolution)
        self.baseline_samples = baseline_samples
        for name in SUBNETWORKS:
            for parameter in self.subnetwork_parameters(name):
                parameter.requires_grad_(name in self.trainable)
        self.val_metrics = nn.ModuleDict()  # "<split index>" -> {logged name: metric}
        self.train()  # frozen subnetworks in eval mode from the start (Lightning keeps modes)

    # ---------------------------------------------------------------------------------------
    # subnetworks

    def subnetwork_modules(self, name: str) -> list[nn.Module]:
        network = self.network
        modules: dict[str, list[nn.Module]] = {
            "pose2d": [network.pose2d],
            "segm": [network.segm],
            "pose3d": [network.pose3d],
            "shape": [network.shape, network.voxel_heads],
        }
        return modules[name]

    def subnetwork_parameters(self, name: str) -> list[nn.Parameter]:
        return [p for module in self.subnetwork_modules(name) for p in module.parameters()]

    def train(self, mode: bool = True) -> BodyNetModule:
        """Frozen subnetworks stay in eval mode (their batch-norm statistics do not move)."""
        super().train(mode)
        for name in SUBNETWORKS:
            if name not in self.trainable:
                for module in self.subnetwork_modules(name):
                    module.eval()
        return self

    def initialise_from_checkpoints(self) -> None:
        """Load `init_from` / `init_parts_from` (module docstring) into the network."""
        if self.init_from is not None:
            self._load_subnetworks(load_network_state(self.init_from), self.init_from)
        if self.init_parts_from is not None:
            shape = self.network.occupancy_twin()
            shape.load_state_dict(load_network_state(self.init_parts_from))
            self.network.init_parts_from_shape(shape)

    def _load_subnetworks(self, state: dict[str, Tensor], path: str) -> None:
        """Load the `init_subnetworks` part of `state`; every one of their weights must be there
        with this network's shape."""
        if set(self.init_subnetworks) == set(SUBNETWORKS):
            self.network.load_state_dict(state)
            return
        child_names = {id(module): name for name, module in self.network.named_children()}
        prefixes = tuple(
            f"{child_names[id(module)]}."
            for name in self.init_subnetworks
            for module in self.subnetwork_modules(name)
        )
        own = {k: v for k, v in self.network.state_dict().items() if k.startswith(prefixes)}
        for key, value in own.items():
            if key not in state or state[key].shape != value.shape:
                got = tuple(state[key].shape) if key in state else "missing"
                names = list(self.init_subnetworks)
                raise ValueError(
                    f"{path}: network weight {key!r} of init_subnetworks {names} is {got}, "
                    f"this network's is {tuple(value.shape)}"
                )
        self.network.load_state_dict({k: state[k] for k in own}, strict=False)

    def on_fit_start(self) -> None:
        """A fresh run starts from the earlier stage's weights; a resumed run (whose
        checkpoint Lightning has restored by now) and evaluation never read those files."""
        if self.global_step == 0:
            self.initialise_from_checkpoints()
        samples = getattr(getattr(self.trainer, "datamodule", None), "training_samples", None)
        if not self.baseline.fitted and samples is not None:
            grids = [s["bodynet_voxels"] for s in samples(self.baseline_samples)
                     if bool(s["has_bodynet_voxels"])]  # fmt: skip
            if grids:
                self.baseline.fit(torch.stack(grids).to(self.device))

    def on_train_start(self) -> None:
        self.train()  # whatever mode the caller left the module in, frozen parts stay eval

    def forward(self, images: Tensor) -> BodyNetOutput:
        return self.network(images)

    # ---------------------------------------------------------------------------------------
    # training

    def compute_losses(self, batch: dict, output: BodyNetOutput) -> dict[str, Tensor]:
        """The unweighted terms with a positive weight (module docstring)."""
        active = {name for name, weight in self.loss_weights.items() if weight > 0}
        terms: dict[str, Tensor] = {}
        if "pose2d" in active:
            terms["pose2d"] = losses.heatmap_mse(
                output.pose2d, batch["bodynet_heatmaps2d"], batch["bodynet_joint_weight"]
            )
        if "segm" in active:
            terms["segm"] = losses.segmentation_cross_entropy(output.segm, batch["bodynet_segm"])
        if "pose3d" in active:
            terms["pose3d"] = losses.heatmap_mse(
                output.pose3d, batch["bodynet_heatmaps3d"], batch["bodynet_joint3d_weight"]
            )
        if "betas" in active:
            terms["betas"] = losses.betas_mse(output.betas, batch["betas"], batch["has_smpl"])
        keep = batch["has_bodynet_voxels"]
        voxel_terms = active & {"voxels", "reproj_front", "reproj_side", "parts",
                                "parts_reproj_front", "parts_reproj_side"}  # fmt: skip
        if voxel_terms and not keep.any():
            zero = output.voxels[-1].sum() * 0.0  # keeps the graph for DDP; nothing to learn
            terms.update(dict.fromkeys(voxel_terms, zero))
        elif voxel_terms:
            terms.update(self._voxel_losses(batch, [v[keep] for v in output.voxels], keep, active))
        return terms

    def _voxel_losses(
        self, batch: dict, predictions: list[Tensor], keep: Tensor, active: set[str]
    ) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        voxels = batch["bodynet_voxels"][keep]
        if "voxels" in active:
            terms["voxels"] = losses.voxel_bce(predictions, voxels)
        if active & {"reproj_front", "reproj_side"}:
            front, side = losses.reprojection_losses(
                predictions, batch["bodynet_silhouette"][keep], voxels
            )
            terms.update({"reproj_front": front, "reproj_side": side})
        if "parts" in active:
            terms["parts"] = losses.part_voxel_cross_entropy(
                predictions, batch["bodynet_part_voxels"][keep]
            )
        if active & {"parts_reproj_front", "parts_reproj_side"}:
            front_labels = batch["bodynet_part_front"][keep].clamp_min(0)
            front, side = losses.part_reprojection_losses(
                predictions, front_labels, batch["bodynet_part_voxels"][keep]
            )
            terms.update({"parts_reproj_front": front, "parts_reproj_side": side})
        return {name: value for name, value in terms.items() if name in active}

    def loss_terms(self, batch: dict) -> dict[str, Tensor]:
        """Unweighted terms of a fresh forward pass (`common.loss_balancing`)."""
        return self.compute_losses(batch, self(batch["image"]))

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        terms = self.compute_losses(batch, self(batch["image"]))
        loss = cast(Tensor, sum(self.loss_weights[name] * value for name, value in terms.items()))
        batch_size = batch["image"].shape[0]
        for name, value in terms.items():
            self.log(f"train/loss_{name}", value, batch_size=batch_size)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        return loss

    # ---------------------------------------------------------------------------------------
    # validation and prediction

    def joints3d(self, output: BodyNetOutput, K: Tensor, root_depth: Tensor) -> Tensor:
        """(B, J, 3) camera-frame `bodynet_16` joints decoded from the last 3D pose stack."""
        xy, depth = decode_heatmaps3d(output.pose3d[-1], self.network.input_size, DEPTH_BIN_SIZE)
        return volume_to_camera(xy, depth, K, root_depth)

    def occupancy(self, output: BodyNetOutput) -> Tensor:
        """(B, R, R, R) probability of each voxel being inside the body (last stack): the
        sigmoid of the occupancy logits, or 1 - P(background) for the part network."""
        last = output.voxels[-1]
        return (
            1.0 - last.softmax(dim=1)[:, 0]
            if self.network.num_part_classes
            else torch.sigmoid(last)
        )

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        output = self(batch["image"])
        metrics = self._split_metrics(str(dataloader_idx))
        keep = batch["has_bodynet_voxels"] if output.voxels else torch.zeros_like(batch["has_smpl"])
        if output.betas and batch["has_smpl"].any():
            smpl = batch["has_smpl"]
            error = output.betas[-1][smpl] - batch["betas"][smpl].to(output.betas[-1].dtype)
            metrics["betas_error"].update(error.norm(dim=-1))
        if keep.any():
            voxels = batch["bodynet_voxels"][keep]
            metrics["voxel_iou_pct"].update(self.occupancy(output)[keep], voxels)
            if self.baseline.fitted:
                metrics["baseline/voxel_iou_pct"].update(self.baseline(len(voxels)), voxels)
        truth = batch["keypoints3d"][:, JOINTS]
        usable = batch["has_keypoints3d"] & (truth[:, ROOT, 3] > 0)
        if usable.any():
            joints = self.joints3d(output, batch["K"], truth[:, ROOT, 2])
            errors, valid = mpjpe_per_sample(joints, truth[..., :3], truth[..., 3] > 0, ROOT)
            metrics["pose3d_mm"].update(1000.0 * errors[usable & valid])

    def _split_metrics(self, key: str) -> dict[str, Metric]:
        """The validation metrics of split `key`, by logged name (created on first use)."""
        if key not in self.val_metrics:
            metrics = {"voxel_iou_pct": VoxelIoU(), "baseline/voxel_iou_pct": VoxelIoU(),
                       "pose3d_mm": MeanMetric(), "betas_error": MeanMetric()}  # fmt: skip
            self.val_metrics[key] = nn.ModuleDict(metrics).to(self.device)
        split = cast(nn.ModuleDict, self.val_metrics[key])
        return {name: cast(Metric, metric) for name, metric in split.items()}

    def on_validation_epoch_end(self) -> None:
        names = self._val_split_names()
        for key in self.val_metrics:
            split = names[int(key)] if int(key) < len(names) else key
            for name, metric in self._split_metrics(key).items():
                if _has_values(metric):
                    self.log(f"val/{split}/{name}", metric.compute())
                metric.reset()

    def _val_split_names(self) -> list[str]:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        return list(getattr(datamodule, "val_names", []))

    def predict_step(self, batch: dict, batch_idx: int = 0) -> Prediction:
        output = self(batch["image"])
        batch_size = batch["image"].shape[0]
        root_depth = self.known_root_depth(batch)
        joints = self.joints3d(output, batch["K"], root_depth)
        keypoints = joints.new_zeros(batch_size, 1, len(CANONICAL_NAMES), 3)
        keypoints[:, 0, JOINTS] = joints
        extras = self._extras(output, root_depth)
        ones = torch.ones(batch_size, 1, dtype=torch.bool, device=joints.device)
        betas = output.betas[-1][:, None] if output.betas else None
        return Prediction(
            keypoints3d=keypoints, K=batch["K"], person_valid=ones,
            score=ones.float(), extras=extras, betas=betas,
        )  # fmt: skip

    def known_root_depth(self, batch: dict) -> Tensor:
        """(B,) metres: the targets' `bodynet_root_depth` (the labelled root, else the posed
        SMPL's), else the labelled root of a batch without BodyNet's targets, else
        `default_root_depth`."""
        batch_size = batch["image"].shape[0]
        default = torch.full((batch_size,), self.default_root_depth, device=self.device)
        if "bodynet_root_depth" in batch:
            known = batch["bodynet_root_depth"].to(default)
            return torch.where(known > 0, known, default)
        if "keypoints3d" not in batch:
            return default
        truth = batch["keypoints3d"][:, JOINTS[ROOT]]
        labelled = batch.get("has_keypoints3d", torch.zeros_like(truth[:, 0], dtype=torch.bool))
        return torch.where(labelled & (truth[:, 3] > 0), truth[:, 2].to(default), default)

    def _extras(self, output: BodyNetOutput, root_depth: Tensor) -> dict[str, Tensor]:
        extras: dict[str, Tensor] = {
            "heatmaps2d": output.pose2d[-1][:, None],
            "segm": output.segm[-1].argmax(dim=1)[:, None],
            "root_depth": root_depth[:, None],
        }
        if output.voxels:
            extras["occupancy"] = self.occupancy(output)[:, None]
        if self.network.num_part_classes:
            extras["part_occupancy"] = output.voxels[-1].softmax(dim=1)[:, None]
        return extras

    def configure_optimizers(self) -> Any:
        parameters = [p for name in self.trainable for p in self.subnetwork_parameters(name)]
        optimizer = self.optimizer_factory(parameters)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
