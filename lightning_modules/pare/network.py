"""PARE's network (paper section 4.1, Fig. 4) and the HMR-EFT baseline: tensors in, tensors out.

Backbone -> two branches of the same resolution: the 2D part branch P and the 3D body branch
F (`lightning_modules.common.backbones`).
- ResNet backbones: three 2x upsampling stages of 256 channels, each with batch norm and ReLU.
  `upsampling="deconv"` (default) uses 4x4 stride-2 transposed convolutions, as the authors'
  public code that produced the paper's numbers does; `"upsample"` is the paper text's 2x
  (nearest) upsampling followed by a 3x3 convolution. HRNet backbones: two 3x3 convolutions with
  batch norm and ReLU per branch (the features are already at stride 4).
- P ends in J + 1 1x1 kernels (24 parts and background) for part supervision, or J for the
  joint-heatmap ablation; F ends in a 1x1 convolution to `smpl_channels` (C = 64, the authors'
  code; the paper does not give C).
- Feature sampling: `"attention"`: F' = softmax_hw(P_j)^T F (J x C), background excluded
  (`part_attention`); `"pooling"`: each part channel's soft-argmax location, F bilinearly
  sampled there (`keypoint_pooling`, the ablation rows (a) and (f) of Table 3).
- Each row F'_j goes through its own linear layer to a 6D rotation of joint j; betas and the
  weak-perspective camera (s, tx, ty) come from the flattened F'. All three are predicted as
  corrections added to the mean parameters (SPIN's `smpl_mean_params.npz` layout), so an
  untrained network predicts the mean body, as HMR's regressor starts.

Sizes at 224 x 224 (tests/lightning_modules/test_pare_network.py; FLOPs = 2 x multiply-adds by
torch.utils.flop_counter, body model excluded): ResNet-50 with the transposed-convolution head
44.53 M parameters and 14.08 GFLOPs, with the upsample + 3x3 head 35.36 M and 21.27 GFLOPs
(independent reference counts: 44.6 M / 13.9-14.1 and 35.4 M / 21.1); HRNet-W32 with the
two-convolution branches 32.75 M and 37.2 GFLOPs (mmhuman3d's config: 32.9 M and 30.9: the
parameters agree, the FLOPs do not; the two 3x3 layers on the 480-channel stride-4 fusion
cost about 21 GFLOPs here, so that config must fuse or reduce channels differently).

6D rotations use geometry.rotations' "columns" layout (SPIN's). The body model is not part of
the network; the LightningModule turns rotations and betas into vertices and joints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geometry.rotations import rotation_6d_to_matrix
from lightning_modules.common.backbones import FeatureBackbone
from lightning_modules.common.smpl_regressor import (
    NUM_JOINTS,
    ROT6D,
    IterativeRegressor,
    MeanParams,
    mean_params_tensors,
)

UPSAMPLINGS = ("deconv", "upsample")
SAMPLINGS = ("attention", "pooling")


@dataclass
class RegressorOutput:
    """pose6d (B, 24, 6), rotmats (B, 24, 3, 3), betas (B, 10), cam (B, 3) = (s, tx, ty);
    PARE also fills part_logits (B, J+1 or J, h, w) and attention (B, J, h, w), spatial softmax."""

    pose6d: Tensor
    rotmats: Tensor
    betas: Tensor
    cam: Tensor
    part_logits: Tensor | None = None
    attention: Tensor | None = None


def upsampling_branch(
    in_channels: int, channels: int, stages: int, upsampling: str
) -> nn.Sequential:
    """`stages` 2x upsampling stages of `channels` with batch norm and ReLU (module docstring)."""
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"upsampling {upsampling!r} not in {UPSAMPLINGS}")
    layers: list[nn.Module] = []
    for stage in range(stages):
        source = in_channels if stage == 0 else channels
        if upsampling == "deconv":
            layers.append(nn.ConvTranspose2d(source, channels, 4, stride=2, padding=1, bias=False))
        else:
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(source, channels, 3, padding=1, bias=False)]  # fmt: skip
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def conv_branch(in_channels: int, channels: int, layers: int = 2) -> nn.Sequential:
    """`layers` 3x3 convolutions with batch norm and ReLU at the input's resolution (HRNet)."""
    modules: list[nn.Module] = []
    for layer in range(layers):
        source = in_channels if layer == 0 else channels
        modules += [nn.Conv2d(source, channels, 3, padding=1, bias=False),
                    nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]  # fmt: skip
    return nn.Sequential(*modules)


def spatial_softmax(logits: Tensor) -> Tensor:
    """(B, J, h, w) -> (B, J, h, w) softmax over the h x w positions of each channel."""
    return logits.flatten(2).softmax(dim=-1).view_as(logits)


def part_attention(attention: Tensor, features: Tensor) -> Tensor:
    """F' = A^T F: (B, J, h, w) spatial attention, (B, C, h, w) features -> (B, J, C)."""
    return torch.einsum("bjhw,bchw->bjc", attention, features)


def soft_argmax(attention: Tensor) -> Tensor:
    """(B, J, h, w) spatial distributions -> (B, J, 2) expected (x, y) in [-1, 1] (grid_sample's
    coordinates with align_corners=False)."""
    height, width = attention.shape[-2:]
    xs = (torch.arange(width, device=attention.device, dtype=attention.dtype) + 0.5) / width
    ys = (torch.arange(height, device=attention.device, dtype=attention.dtype) + 0.5) / height
    x = (attention.sum(dim=-2) * (2 * xs - 1)).sum(dim=-1)
    y = (attention.sum(dim=-1) * (2 * ys - 1)).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def keypoint_pooling(attention: Tensor, features: Tensor) -> Tensor:
    """(B, J, h, w) distributions, (B, C, h, w) features -> (B, J, C) features bilinearly
    sampled at each distribution's soft-argmax."""
    grid = soft_argmax(attention).unsqueeze(2)  # (B, J, 1, 2)
    sampled = F.grid_sample(features, grid, mode="bilinear", align_corners=False)  # (B, C, J, 1)
    return sampled.squeeze(-1).transpose(1, 2)


class PAREHead(nn.Module):
    """Two branches, part attention and the SMPL regressors (module docstring)."""

    init_pose: Tensor
    init_shape: Tensor
    init_cam: Tensor

    def __init__(
        self,
        in_channels: int,
        mean_params: MeanParams,
        branch: str = "upsampling",
        upsampling: str = "deconv",
        channels: int = 256,
        smpl_channels: int = 64,
        part_channels: int = NUM_JOINTS + 1,
        sampling: str = "attention",
    ) -> None:
        super().__init__()
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling {sampling!r} not in {SAMPLINGS}")
        if part_channels not in (NUM_JOINTS, NUM_JOINTS + 1):
            raise ValueError(f"part_channels must be {NUM_JOINTS} or {NUM_JOINTS + 1}")

        def make_branch() -> nn.Sequential:
            if branch == "upsampling":
                return upsampling_branch(in_channels, channels, 3, upsampling)
            if branch == "conv":
                return conv_branch(in_channels, channels)
            raise ValueError(f"branch {branch!r} not in ('upsampling', 'conv')")

        mean_params = mean_params_tensors(mean_params)
        self.sampling = sampling
        self.part_branch, self.smpl_branch = make_branch(), make_branch()
        self.part_final = nn.Conv2d(channels, part_channels, 1)
        self.smpl_final = nn.Conv2d(channels, smpl_channels, 1)
        # One linear layer per joint: weight (J, C, 6), as a batched matrix product.
        self.pose_weight = nn.Parameter(torch.empty(NUM_JOINTS, smpl_channels, ROT6D))
        self.pose_bias = nn.Parameter(torch.zeros(NUM_JOINTS, ROT6D))
        nn.init.xavier_uniform_(self.pose_weight, gain=0.01)
        flat = NUM_JOINTS * smpl_channels
        self.shape_layer, self.cam_layer = nn.Linear(flat, 10), nn.Linear(flat, 3)
        for layer in (self.shape_layer, self.cam_layer):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
            nn.init.zeros_(layer.bias)
        self.register_buffer(
            "init_pose", mean_params["pose"].float().clone().reshape(NUM_JOINTS, ROT6D)
        )
        self.register_buffer("init_shape", mean_params["shape"].float().clone().reshape(10))
        self.register_buffer("init_cam", mean_params["cam"].float().clone().reshape(3))

    def forward(self, features: Tensor) -> RegressorOutput:
        part_logits = self.part_final(self.part_branch(features))  # (B, J+1 or J, h, w)
        smpl_features = self.smpl_final(self.smpl_branch(features))  # (B, C, h, w)
        attention = spatial_softmax(part_logits[:, :NUM_JOINTS])  # background excluded
        if self.sampling == "attention":
            sampled = part_attention(attention, smpl_features)
        else:
            sampled = keypoint_pooling(attention, smpl_features)  # (B, J, C)
        pose6d = self.init_pose + torch.einsum("bjc,jcr->bjr", sampled, self.pose_weight)
        pose6d = pose6d + self.pose_bias
        flat = sampled.flatten(1)
        betas = self.init_shape + self.shape_layer(flat)
        cam = self.init_cam + self.cam_layer(flat)
        return RegressorOutput(
            pose6d, rotation_6d_to_matrix(pose6d), betas, cam, part_logits, attention
        )


class PARENetwork(nn.Module):
    """Backbone + `PAREHead`: (B, 3, S, S) normalised crops -> `RegressorOutput`. `head` is a
    factory taking the backbone's channel count (a `_partial_` PAREHead in the YAML)."""

    def __init__(self, backbone: FeatureBackbone, head: Callable[[int], PAREHead]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head(backbone.out_channels)

    def forward(self, images: Tensor) -> RegressorOutput:
        return self.head(self.backbone(images))


class HMRNetwork(nn.Module):
    """HMR-EFT: backbone, global average pooling, HMR's IEF regressor (3 iterations);
    `regressor` is a factory taking the backbone's channel count."""

    def __init__(
        self, backbone: FeatureBackbone, regressor: Callable[[int], IterativeRegressor]
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.regressor = regressor(backbone.out_channels)

    def forward(self, images: Tensor) -> RegressorOutput:
        features = self.backbone(images).mean(dim=(2, 3))
        pose6d, betas, cam = self.regressor(features)
        return RegressorOutput(pose6d, rotation_6d_to_matrix(pose6d), betas, cam)
