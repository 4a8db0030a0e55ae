"""BodyNet's network (Varol et al., ECCV 2018, section 3 and appendix B): four subnetworks of
stacked hourglasses (`lightning_modules.common.hourglass`), each stack supervised.

- 2D pose: RGB (3, S, S) -> J heatmaps (J, S/4, S/4);
- 2D part segmentation: RGB -> C class scores (C, S/4, S/4) (C = 15: background + 14 parts);
- 3D pose: RGB + the 2D pose heatmaps + the segmentation probabilities, upsampled to S (3 + J +
  C channels) -> J x B depth bins of 3D heatmaps (J, B, S/4, S/4);
- volumetric shape (appendix B.1): the same image-resolution input through the hourglass stem,
  concatenated at S/4 with the 3D pose volume (J * B channels, depth as channels), two
  hourglasses whose predictions have R channels (the grid's depth), each upsampled to R x R by
  bilinear 2 x upsampling + ReLU + 3x3 convolution stages: occupancy logits (R, R, R) in
  DESIGN.md's (D, H, W) layout. S = 256 and R = 128 in the paper (one 2 x stage).

Inputs (Table 1 and appendix table A.3 vary them): `pose3d_inputs` names what the 3D pose
network reads, some of `rgb`, `pose2d`, `segm` (all three by default); `shape_inputs` what the
shape network reads, some of those and `pose3d` (all four by default). The image-resolution
inputs go through the hourglass stem in the order rgb, pose2d, segm; `pose3d` enters at S/4 as
the second branch. A shape network of the 3D pose alone has no stem (`StackedHourglass` with
no image-resolution input).

The intermediate inputs are the last stack's predictions of the earlier subnetworks: raw 2D
heatmaps, softmax segmentation probabilities (bounded like the heatmaps; the raw scores are
unbounded) and the raw 3D heatmaps. Gradients flow through them in end-to-end training; a
stage that freezes a subnetwork (`module.py`) stops them there.

Shape-parameter regression (section 4.2, appendix B.2), the alternative to the voxels: with
`num_betas` (10) the shape subnetwork is `BetasRegressor`, the same inputs through the
hourglass stem and an hourglass's encoder half down to the bottleneck (128 x 4 x 4 = 2048 at the
paper's sizes) and fully connected layers 2048-1024-512-10; its output is `betas` and it
predicts no voxels.

3D body parts (section 3.1, appendix B.3): with `num_part_classes` (7: background + 6 parts)
the shape network's output layer has K * R channels read as (K, R, R, R) class scores.
`init_parts_from_shape` copies a trained shape network's output layer into every foreground
class and gives background zero weights and the bias log(K - 1), so that at initialisation
1 - softmax(background) equals the shape network's sigmoid occupancy exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lightning_modules.common.hourglass import InputBranch, Residual, StackedHourglass

IMAGE_INPUTS = ("rgb", "pose2d", "segm")
SHAPE_INPUTS = (*IMAGE_INPUTS, "pose3d")


def _inputs(names: Sequence[str], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """`names` in the canonical order of `allowed`; unknown, repeated or no names are errors."""
    names = list(names)
    unknown = sorted(set(names) - set(allowed))
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"{what} must be distinct names among {list(allowed)}, got {names}")
    return tuple(name for name in allowed if name in names)


@dataclass
class BodyNetOutput:
    """Per-stack predictions of each subnetwork (last = final), logits or raw heatmaps.

    pose2d: (B, J, h, w); segm: (B, C, h, w) scores; pose3d: (B, J, depth_bins, h, w);
    voxels: (B, R, R, R) occupancy logits, or (B, K, R, R, R) part scores for the part network.
    """

    pose2d: list[Tensor] = field(default_factory=list)
    segm: list[Tensor] = field(default_factory=list)
    pose3d: list[Tensor] = field(default_factory=list)
    voxels: list[Tensor] = field(default_factory=list)
    betas: list[Tensor] = field(default_factory=list)  # (B, num_betas), the betas regressor's


class VoxelHead(nn.Module):
    """A stack's (B, R, h, w) prediction -> (B, K, R, R, R) through log2(R / h) stages of bilinear
    2 x upsampling, ReLU and a 3x3 convolution; the last convolution is the output layer."""

    def __init__(self, resolution: int, input_side: int, num_classes: int = 1) -> None:
        super().__init__()
        factor = resolution // input_side
        if factor < 1 or resolution % input_side or factor & (factor - 1):
            raise ValueError(
                f"voxel resolution {resolution} must be a power-of-two multiple of the "
                f"hourglass output side {input_side} (input size / 4)"
            )
        self.resolution, self.num_classes = resolution, num_classes
        self.stages = int(math.log2(factor))
        self.convs = nn.ModuleList(
            nn.Conv2d(resolution, resolution, 3, padding=1) for _ in range(max(self.stages - 1, 0))
        )
        self.output = nn.Conv2d(resolution, num_classes * resolution, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = conv(F.relu(F.interpolate(x, scale_factor=2, mode="bilinear")))
        if self.stages:
            x = F.interpolate(x, scale_factor=2, mode="bilinear")
        x = self.output(F.relu(x))
        batch, _, height, width = x.shape
        scores = x.view(batch, self.num_classes, self.resolution, height, width)
        return scores[:, 0] if self.num_classes == 1 else scores


class BetasRegressor(nn.Module):
    """Appendix B.2 / Fig. A.5: the shape network's inputs (an image-resolution tensor through
    the hourglass stem, the S/4 second input merged by a residual) through the encoder half of
    an hourglass (`depth` times max-pool 2 + residual), a 1x1 convolution to
    `bottleneck_channels`, and fully connected layers (flattened bottleneck, 1024, 512,
    `num_betas`) with ReLUs between them. Returns a one-element list like the stacks."""

    def __init__(
        self,
        in_channels: int,
        extra_channels: int,
        input_side: int,
        num_betas: int = 10,
        features: int = 256,
        depth: int = 4,
        bottleneck_channels: int = 128,
    ) -> None:
        super().__init__()
        bottleneck_side = input_side // 4 // 2**depth
        if bottleneck_side < 1:
            raise ValueError(
                f"input side {input_side} is too small for an encoder of depth {depth}"
            )
        self.inputs = InputBranch(in_channels, features, extra_channels)
        self.encoder = nn.Sequential(*(
            nn.Sequential(nn.MaxPool2d(2), Residual(features, features)) for _ in range(depth)
        ))  # fmt: skip
        self.bottleneck = nn.Conv2d(features, bottleneck_channels, 1)
        flat = bottleneck_channels * bottleneck_side**2
        self.regressor = nn.Sequential(
            nn.Linear(flat, 1024), nn.ReLU(inplace=True), nn.Linear(1024, 512),
            nn.ReLU(inplace=True), nn.Linear(512, num_betas),
        )  # fmt: skip

    def forward(self, x: Tensor | None, extra: Tensor | None = None) -> list[Tensor]:
        features = self.inputs(x, extra)
        bottleneck = F.relu(self.bottleneck(self.encoder(features)))
        return [self.regressor(bottleneck.flatten(1))]


class BodyNetNetwork(nn.Module):
    """The four subnetworks (module docstring).

    Args:
        input_size: S, the side of the square input crop (divisible by 4 * 2 ** hourglass_depth).
        voxel_resolution: R, the side of the occupancy grid.
        num_joints: J (bodynet_16: 16).
        num_segm_classes: C (15).
        depth_bins: depth bins of the 3D pose volume (19).
        num_stacks: hourglasses per subnetwork (2; 1 for CPU-scale experiments).
        features: channels inside the hourglasses (256).
        hourglass_depth: recursion of each hourglass (4).
        num_part_classes: 0 for the occupancy network, K (7) for 3D body parts.
        pose3d_inputs: what the 3D pose network reads (module docstring).
        shape_inputs: what the shape network reads (module docstring).
        num_betas: 0 for the voxel network; 10 for the shape-parameter regressor of section
            4.2 (`BetasRegressor`; no voxel heads, `num_part_classes` must be 0).
    """

    def __init__(
        self,
        input_size: int = 256,
        voxel_resolution: int = 128,
        num_joints: int = 16,
        num_segm_classes: int = 15,
        depth_bins: int = 19,
        num_stacks: int = 2,
        features: int = 256,
        hourglass_depth: int = 4,
        num_part_classes: int = 0,
        pose3d_inputs: Sequence[str] = IMAGE_INPUTS,
        shape_inputs: Sequence[str] = SHAPE_INPUTS,
        num_betas: int = 0,
    ) -> None:
        super().__init__()
        if num_betas and num_part_classes:
            raise ValueError("the betas regressor (num_betas > 0) predicts no part voxels "
                             f"(num_part_classes {num_part_classes})")  # fmt: skip
        if input_size % (4 * 2**hourglass_depth):
            raise ValueError(
                f"input_size {input_size} must be divisible by 4 * 2 ** hourglass_depth = "
                f"{4 * 2**hourglass_depth}"
            )
        self.input_size, self.voxel_resolution = input_size, voxel_resolution
        self.num_joints, self.num_segm_classes, self.depth_bins = (
            num_joints, num_segm_classes, depth_bins,
        )  # fmt: skip
        self.num_part_classes = num_part_classes
        self.num_stacks, self.features, self.hourglass_depth = num_stacks, features, hourglass_depth
        self.pose3d_inputs = _inputs(pose3d_inputs, IMAGE_INPUTS, "pose3d_inputs")
        self.shape_inputs = _inputs(shape_inputs, SHAPE_INPUTS, "shape_inputs")
        common = {"num_stacks": num_stacks, "features": features, "depth": hourglass_depth}
        channels = {"rgb": 3, "pose2d": num_joints, "segm": num_segm_classes}
        self.pose2d = StackedHourglass(3, num_joints, **common)
        self.segm = StackedHourglass(3, num_segm_classes, **common)
        self.pose3d = StackedHourglass(
            sum(channels[name] for name in self.pose3d_inputs), num_joints * depth_bins, **common
        )
        volume = num_joints * depth_bins if "pose3d" in self.shape_inputs else 0
        shape_channels = sum(channels.get(name, 0) for name in self.shape_inputs)
        self.num_betas = num_betas
        self.shape: StackedHourglass | BetasRegressor
        if num_betas:
            self.shape = BetasRegressor(shape_channels, volume, input_size, num_betas, features,
                                        hourglass_depth)  # fmt: skip
        else:
            self.shape = StackedHourglass(shape_channels, voxel_resolution,
                                          extra_channels=volume, **common)  # fmt: skip
        classes = num_part_classes or 1
        self.voxel_heads = nn.ModuleList(
            VoxelHead(voxel_resolution, input_size // 4, classes)
            for _ in range(0 if num_betas else num_stacks)
        )

    def forward(self, image: Tensor) -> BodyNetOutput:
        """image: (B, 3, S, S) normalised crops."""
        if image.dim() != 4 or tuple(image.shape[1:]) != (3, self.input_size, self.input_size):
            raise ValueError(
                f"expected images (B, 3, {self.input_size}, {self.input_size}), "
                f"got {tuple(image.shape)}"
            )
        out = BodyNetOutput(pose2d=self.pose2d(image), segm=self.segm(image))
        modalities = self.image_resolution_inputs(image, out.pose2d[-1], out.segm[-1])
        batch, side = image.shape[0], self.input_size // 4
        pose3d = self.pose3d(torch.cat([modalities[name] for name in self.pose3d_inputs], dim=1))
        out.pose3d = [p.view(batch, self.num_joints, self.depth_bins, side, side) for p in pose3d]
        volume = pose3d[-1] if "pose3d" in self.shape_inputs else None  # depth as channels
        shape_input = [modalities[name] for name in self.shape_inputs if name in modalities]
        stacks = self.shape(torch.cat(shape_input, dim=1) if shape_input else None, volume)
        if self.num_betas:
            out.betas = stacks
        else:
            out.voxels = [head(s) for head, s in zip(self.voxel_heads, stacks, strict=True)]
        return out

    def image_resolution_inputs(
        self, image: Tensor, heatmaps: Tensor, segm_scores: Tensor
    ) -> dict[str, Tensor]:
        """RGB (3), the 2D heatmaps (J) and the segmentation probabilities (C), upsampled to
        the image's resolution, by input name: those the 3D pose or shape network reads."""
        size = image.shape[-2:]
        used = set(self.pose3d_inputs) | set(self.shape_inputs)
        inputs = {"rgb": image}
        if "pose2d" in used:
            inputs["pose2d"] = F.interpolate(heatmaps, size=size, mode="bilinear")
        if "segm" in used:
            inputs["segm"] = F.interpolate(segm_scores.softmax(dim=1), size=size, mode="bilinear")
        return inputs

    def occupancy_twin(self) -> BodyNetNetwork:
        """A fresh occupancy network (no part classes) of this network's sizes."""
        return BodyNetNetwork(
            input_size=self.input_size, voxel_resolution=self.voxel_resolution,
            num_joints=self.num_joints, num_segm_classes=self.num_segm_classes,
            depth_bins=self.depth_bins, num_stacks=self.num_stacks, features=self.features,
            hourglass_depth=self.hourglass_depth, pose3d_inputs=self.pose3d_inputs,
            shape_inputs=self.shape_inputs,
        )  # fmt: skip

    @torch.no_grad()
    def init_parts_from_shape(self, shape_network: BodyNetNetwork) -> None:
        """Copy `shape_network`'s weights; its output layers into every foreground class
        (module docstring). This network must have `num_part_classes` > 1."""
        classes = self.num_part_classes
        if classes < 2 or shape_network.num_part_classes:
            raise ValueError(
                "init_parts_from_shape copies an occupancy network (num_part_classes = 0) "
                f"into a part network (num_part_classes > 1); got {shape_network.num_part_classes}"
                f" -> {classes}"
            )
        own = self.state_dict()
        source = shape_network.state_dict()
        for name, value in source.items():
            if not name.startswith("voxel_heads.") or ".output." not in name:
                own[name].copy_(value)
        for head, shape_head in zip(self.voxel_heads, shape_network.voxel_heads, strict=True):
            assert isinstance(head, VoxelHead) and isinstance(shape_head, VoxelHead)
            resolution, output, source_output = head.resolution, head.output, shape_head.output
            assert output.bias is not None and source_output.bias is not None
            weight = output.weight.view(classes, resolution, *output.weight.shape[1:])
            bias = output.bias.view(classes, resolution)
            weight[0].zero_()
            bias[0].fill_(math.log(classes - 1))
            weight[1:].copy_(source_output.weight.unsqueeze(0).expand_as(weight[1:]))
            bias[1:].copy_(source_output.bias.unsqueeze(0).expand_as(bias[1:]))
