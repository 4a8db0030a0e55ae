"""PAREModule: PARE and the HMR-EFT baseline on one code path (paper sections 4-5).

The network (`PARENetwork` or `HMRNetwork`) predicts 24 rotations, betas and a weak-perspective
camera for a square crop; the neutral body model turns them into vertices and the canonical
keypoints; the losses of `lightning_modules.pare.losses` compare them with the crop sample.

Camera: the weak-perspective (s, tx, ty) is read, as SPIN and PARE do, as a perspective
translation (tx, ty, 2 f / (S s)) for a camera of focal f = `focal_length` x S / 224 px (SPIN's
5000 at 224) looking at the crop centre (`geometry.weak_perspective_to_translation`); that
camera is the prediction's K. The 3D and 2D losses and the metrics are root-free (centred or
weak-perspective), so the real crop intrinsics are not needed.

Part supervision (Table 3's "P Supervision"): `parts` (cross-entropy on P), `joints` (Gaussian
heatmaps of the 24 SMPL joints; the head then has 24 part channels), `none`, or
`parts_then_none` (parts until `part_loss_until_step`, then off; the switch is logged once as
`train/part_loss_active`). The HMR-EFT baseline has no P and uses `none`.

Mean parameters: the regressors start from the mean parameters of the network config (SPIN's
`smpl_mean_params.npz` layout; the mannequin ships designed ones). With
`mean_params_from_training_data`, the start of a fresh training run replaces them by the
training-mean body the baseline has just measured (`set_initial_body`), which is how SPIN's
file was made (means of its training fits); the buffers then travel in the checkpoint, so a
resumed or evaluated model keeps them.

Augmentation schedule: `augmentation_from_step` ({name: step}) switches a DataModule
augmentation on once training reaches the step (PARE's random crop, `partial_crop`, after 175K
steps), logged as `train/augmentation_<name>`; with DataLoader workers it takes effect at
their next epoch (`datamodules.augment`).

Validation, on every named validation split of the DataModule: MPJPE and PA-MPJPE (mm) over
the canonical keypoints the ground truth has, each pose centred on the mean of those joints
(a protocol-free check while training; the benchmark protocols live in the registry), as
torchmetrics means, so they reduce correctly across processes; the same numbers for the
training-mean body (`lightning_modules.common.baseline`, fitted at the start of training from
`baseline_samples` training annotations and kept in the checkpoint) as `val/<split>/baseline/`.

Prediction (`predict_step`): the canonical `Prediction` with, in `extras`, `attention`
(B, 1, 24, h, w) on request and `part_segm` (B, 1, h, w) int64 part labels at feature resolution
(0 background, 1..24; argmax of P) when P has the 24 + 1 part channels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import cast

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from body import BodyModel
from body.joint_sets import canonical_indices
from geometry.cameras import weak_perspective_to_translation
from geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from lightning_modules.common.baseline import MeanBodyBaseline
from lightning_modules.common.prediction import Prediction
from lightning_modules.common.smpl_regressor import set_initial_body
from lightning_modules.pare import losses
from lightning_modules.pare.network import RegressorOutput
from metrics.joints import mpjpe_per_sample, pa_mpjpe_per_sample

SUPERVISIONS = ("parts", "joints", "none", "parts_then_none")
LOSS_NAMES = ("keypoints3d", "keypoints2d", "pose", "betas", "parts")
DEFAULT_WEIGHTS = {"keypoints3d": 5.0, "keypoints2d": 5.0, "pose": 1.0, "betas": 0.001,
                   "parts": 1.0}  # fmt: skip
SMPL_24 = canonical_indices("smpl_24")
NUM_PARTS = losses.NUM_PARTS


def part_labels(part_logits: Tensor) -> Tensor:
    """(B, 25, h, w) logits (24 parts, then background) -> (B, h, w) int64 labels in the
    suite's convention (0 background, 1..24 parts), the inverse of `losses.part_targets`."""
    channel = part_logits.argmax(dim=1)
    return torch.where(channel == NUM_PARTS, 0, channel + 1)


class PAREModule(pl.LightningModule):
    """Training, validation and prediction of PARE / HMR-EFT (module docstring)."""

    def __init__(
        self,
        network: nn.Module,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        body_model_root: str = "body_models",
        body_model_name: str = "mannequin",
        crop_size: int = 224,
        loss_weights: Mapping[str, float] | None = None,
        part_supervision: str = "parts",
        part_loss_until_step: int | None = None,
        heatmap_sigma: float = 2.0,
        focal_length: float = 5000.0,
        scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
        augmentation_from_step: Mapping[str, int] | None = None,
        baseline_samples: int = 2000,
        mean_params_from_training_data: bool = False,
    ) -> None:
        super().__init__()
        if part_supervision not in SUPERVISIONS:
            raise ValueError(f"part_supervision {part_supervision!r} not in {SUPERVISIONS}")
        if part_supervision == "parts_then_none" and part_loss_until_step is None:
            raise ValueError("part_supervision 'parts_then_none' needs part_loss_until_step")
        unknown = sorted(set(loss_weights or {}) - set(LOSS_NAMES))
        if unknown:
            raise ValueError(f"unknown loss weights {unknown}; losses: {LOSS_NAMES}")
        head = getattr(network, "head", None)
        part_channels = getattr(getattr(head, "part_final", None), "out_channels", None)
        wanted = 24 if part_supervision == "joints" else 25
        if part_channels is not None and part_supervision != "none" and part_channels != wanted:
            raise ValueError(
                f"part_supervision {part_supervision!r} needs a head with "
                f"part_channels={wanted}, the network has {part_channels}"
            )
        self.network = network
        self.body_model = BodyModel(body_model_root, body_model_name, "neutral")
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.crop_size, self.focal_length = crop_size, focal_length * crop_size / 224.0
        self.loss_weights = {**DEFAULT_WEIGHTS, **dict(loss_weights or {})}
        self.part_supervision, self.part_loss_until_step = part_supervision, part_loss_until_step
        self.heatmap_sigma = heatmap_sigma
        self._part_loss_was_active: bool | None = None
        self.baseline = MeanBodyBaseline()
        self.baseline_samples = baseline_samples
        self.mean_params_from_training_data = mean_params_from_training_data
        self.augmentation_from_step = dict(augmentation_from_step or {})
        self._augmentations_started: set[str] = set()
        self.val_means = nn.ModuleDict()  # "<split index>[/baseline]" -> MPJPE, PA-MPJPE means

    # ---------------------------------------------------------------------------------------
    # forward and decoding

    def forward(self, images: Tensor) -> RegressorOutput:
        return self.network(images)

    def body(self, output: RegressorOutput) -> tuple[Tensor, Tensor]:
        """(vertices (B, V, 3), canonical keypoints (B, K, 3)) of the prediction, no transl."""
        posed = self.body_model(output.rotmats, output.betas)
        return posed.vertices, posed.keypoints

    def camera(self, cam: Tensor) -> tuple[Tensor, Tensor]:
        """(transl (B, 3), K (B, 3, 3)) of the weak-perspective camera (module docstring)."""
        transl = weak_perspective_to_translation(cam, self.focal_length, self.crop_size)
        centre = (self.crop_size - 1) / 2.0
        K = cam.new_tensor([[self.focal_length, 0, centre], [0, self.focal_length, centre],
                            [0, 0, 1.0]]).expand(cam.shape[0], 3, 3)  # fmt: skip
        return transl, K

    # ---------------------------------------------------------------------------------------
    # training

    def part_loss_active(self) -> bool:
        if self.part_supervision == "none":
            return False
        if self.part_supervision == "parts_then_none":
            assert self.part_loss_until_step is not None
            return self.global_step < self.part_loss_until_step
        return True

    def compute_losses(self, batch: dict, output: RegressorOutput) -> dict[str, Tensor]:
        """The unweighted loss terms of a batch (module and `losses` docstrings)."""
        _, keypoints = self.body(output)
        available = self.body_model.canonical_available.to(keypoints.dtype)
        target3d = batch["keypoints3d"].clone()
        target3d[..., 3] = target3d[..., 3] * available
        target2d = batch["keypoints2d"].clone()
        target2d[..., 2] = target2d[..., 2] * available
        target_rotmats = axis_angle_to_matrix(batch["pose"].reshape(-1, 24, 3))
        pose, betas = losses.smpl_loss(output.rotmats, output.betas, target_rotmats,
                                       batch["betas"], batch["has_smpl"])  # fmt: skip
        terms = {
            "keypoints3d": losses.keypoints3d_loss(keypoints, target3d, batch["has_keypoints3d"]),
            "keypoints2d": losses.keypoints2d_loss(keypoints, output.cam, target2d, self.crop_size),
            "pose": pose,
            "betas": betas,
        }
        if output.part_logits is not None and self.part_loss_active():
            if self.part_supervision == "joints":
                terms["parts"] = losses.joint_heatmap_loss(
                    output.part_logits, target2d[:, SMPL_24], self.crop_size, self.heatmap_sigma
                )
            else:
                terms["parts"] = losses.part_segmentation_loss(
                    output.part_logits, batch["part_segm"], batch["has_part_segm"]
                )
        return terms

    def loss_terms(self, batch: dict) -> dict[str, Tensor]:
        """The unweighted terms of a batch from a fresh forward pass (for loss balancing,
        `lightning_modules.common.loss_balancing`)."""
        return self.compute_losses(batch, self(batch["image"]))

    def on_fit_start(self) -> None:
        """Fit the mean-body baseline once, from the DataModule's training annotations."""
        annotations = getattr(getattr(self.trainer, "datamodule", None), "smpl_annotations", None)
        if self.baseline.fitted or annotations is None:
            return
        self.baseline.fit(annotations(self.baseline_samples))
        if self.mean_params_from_training_data:
            set_initial_body(self.network, self.baseline.rotmats, self.baseline.betas)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        """Switch on the scheduled augmentations (PARE's random crop after a step count)."""
        augmentation = getattr(getattr(self.trainer, "datamodule", None), "augmentation", None)
        for name, step in self.augmentation_from_step.items():
            if name in self._augmentations_started or self.global_step < step:
                continue
            if augmentation is None:
                raise ValueError(f"augmentation {name!r} is scheduled but the DataModule has none")
            augmentation.enable(name)
            self._augmentations_started.add(name)
            self.log(f"train/augmentation_{name}", 1.0, batch_size=batch["image"].shape[0])

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        terms = self.compute_losses(batch, self(batch["image"]))
        loss = sum(self.loss_weights[name] * value for name, value in terms.items())
        assert isinstance(loss, Tensor)
        batch_size = batch["image"].shape[0]
        for name, value in terms.items():
            self.log(f"train/loss_{name}", value, batch_size=batch_size)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        active = self.part_loss_active()
        if active != self._part_loss_was_active:
            self.log("train/part_loss_active", float(active), batch_size=batch_size)
            self._part_loss_was_active = active
        return loss

    # ---------------------------------------------------------------------------------------
    # validation and prediction

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        _, keypoints = self.body(self(batch["image"]))
        self._update_errors(f"{dataloader_idx}", keypoints, batch)
        if self.baseline.fitted:
            rotmats, betas = self.baseline(keypoints.shape[0])
            baseline = self.body_model(rotmats, betas).keypoints
            self._update_errors(f"{dataloader_idx}/baseline", baseline, batch)

    def _update_errors(self, key: str, keypoints: Tensor, batch: dict) -> None:
        """Accumulate centred MPJPE and PA-MPJPE (mm) of `keypoints` under `key`."""
        target = batch["keypoints3d"]
        visible = (target[..., 3] > 0) & self.body_model.canonical_available
        pred = losses.centre_on_shared(keypoints, visible)
        truth = losses.centre_on_shared(target[..., :3], visible)
        mpjpe, valid = mpjpe_per_sample(pred, truth, visible, root_index=None)
        pa_mpjpe, _ = pa_mpjpe_per_sample(pred.double(), truth.double(), visible)
        keep = valid & batch["has_keypoints3d"] & (visible.sum(dim=1) >= 3)
        if key not in self.val_means:
            self.val_means[key] = nn.ModuleList([MeanMetric(), MeanMetric()]).to(self.device)
        means = cast(nn.ModuleList, self.val_means[key])
        for metric, values in zip(means, (mpjpe, pa_mpjpe), strict=True):
            if keep.any():
                cast(MeanMetric, metric).update(1000.0 * values[keep].float())

    def on_validation_epoch_end(self) -> None:
        names = self._val_split_names()
        for key, module in self.val_means.items():
            index, _, variant = key.partition("/")
            split = names[int(index)] if int(index) < len(names) else index
            means = cast(nn.ModuleList, module)
            prefix = f"val/{split}" if not variant else f"val/{split}/{variant}"
            for module_metric, name in zip(means, ("mpjpe_mm", "pa_mpjpe_mm"), strict=True):
                metric = cast(MeanMetric, module_metric)
                if metric.update_count:
                    self.log(f"{prefix}/{name}", metric.compute())
                metric.reset()

    def _val_split_names(self) -> list[str]:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        return list(getattr(datamodule, "val_names", []))

    def predict_step(
        self, batch: dict, batch_idx: int = 0, with_attention: bool = False
    ) -> Prediction:
        output = self(batch["image"])
        vertices, keypoints = self.body(output)
        transl, K = self.camera(output.cam)
        pose = matrix_to_axis_angle(output.rotmats).reshape(-1, 72)
        batch_size = pose.shape[0]
        extras = {}
        if with_attention and output.attention is not None:
            extras["attention"] = output.attention[:, None]
        if output.part_logits is not None and output.part_logits.shape[1] == NUM_PARTS + 1:
            extras["part_segm"] = part_labels(output.part_logits)[:, None]
        return Prediction(
            keypoints3d=(keypoints + transl[:, None])[:, None], K=K,
            person_valid=torch.ones(batch_size, 1, dtype=torch.bool, device=pose.device),
            score=torch.ones(batch_size, 1, device=pose.device), pose=pose[:, None],
            betas=output.betas[:, None], transl=transl[:, None],
            vertices=(vertices + transl[:, None])[:, None], extras=extras,
        )  # fmt: skip

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.network.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
