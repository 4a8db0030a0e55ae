"""Stacked hourglass network (Newell et al., ECCV 2016), as BodyNet's subnetworks use it.

The design of the paper's reference implementation (umich-vl/pose-hg-train):

- residual module: pre-activation bottleneck BN-ReLU-conv1x1 (C/2), BN-ReLU-conv3x3 (C/2),
  BN-ReLU-conv1x1 (C), plus the input (through a 1x1 convolution when the channels change);
- stem: conv 7x7 stride 2 (64), BN, ReLU, residual (128), max-pool 2, residual (128),
  residual (features): the output is 4 x smaller than the input;
- hourglass of depth n: an upper residual branch at this resolution plus max-pool, residual,
  hourglass of depth n - 1 (a residual at depth 1), residual, nearest 2 x upsampling;
- each stack: hourglass, residual, conv1x1 + BN + ReLU, then a 1x1 convolution to the output
  channels (the stack's prediction, supervised); between stacks the features and the
  prediction are mapped back by 1x1 convolutions and added to the stack's input.

`extra_channels` is BodyNet's second input branch (appendix B.1): a tensor already at the
output resolution (the 3D pose volume, depth as channels) is concatenated with the stem's
features and mixed back to `features` channels by a residual module before the first stack.
With `in_channels` 0 there is no image-resolution input and no stem: the second input alone,
mapped to `features` channels by that residual module, enters the first stack (BodyNet's
shape network fed with the 3D pose only, Table 1).

Written here rather than taken from a library: no maintained PyPI package provides the
hourglass with intermediate supervision and a second input branch; it is a few modules.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Residual(nn.Module):
    """Pre-activation bottleneck residual module (module docstring)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        middle = max(out_channels // 2, 1)
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=False),
            nn.Conv2d(in_channels, middle, 1),
            nn.BatchNorm2d(middle),
            nn.ReLU(inplace=True),
            nn.Conv2d(middle, middle, 3, padding=1),
            nn.BatchNorm2d(middle),
            nn.ReLU(inplace=True),
            nn.Conv2d(middle, out_channels, 1),
        )
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    """One hourglass of recursion `depth` on `channels` features; needs sides divisible by
    2 ** depth."""

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"hourglass depth must be at least 1, got {depth}")
        self.depth = depth
        self.upper = Residual(channels, channels)
        self.down = Residual(channels, channels)
        self.inner: nn.Module = (
            Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        )
        self.up = Residual(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(
                f"hourglass input {tuple(x.shape[-2:])} must be divisible by 2 at every level "
                f"({self.depth} more levels)"
            )
        low = self.down(nn.functional.max_pool2d(x, 2))
        low = self.up(self.inner(low))
        return self.upper(x) + nn.functional.interpolate(low, scale_factor=2, mode="nearest")


def stem(in_channels: int, features: int) -> nn.Sequential:
    """Newell's input block: (B, in, S, S) -> (B, features, S / 4, S / 4)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 7, stride=2, padding=3),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        Residual(64, 128),
        nn.MaxPool2d(2),
        Residual(128, 128),
        Residual(128, features),
    )


class InputBranch(nn.Module):
    """The input of a stacked hourglass (module docstring): the stem of the image-resolution
    input (none when `in_channels` is 0) and the residual that merges the second input."""

    def __init__(self, in_channels: int, features: int, extra_channels: int = 0) -> None:
        super().__init__()
        if in_channels < 0 or extra_channels < 0 or in_channels + extra_channels == 0:
            raise ValueError(
                f"a stacked hourglass needs some input channels, got in_channels {in_channels} "
                f"and extra_channels {extra_channels}"
            )
        self.in_channels, self.extra_channels = in_channels, extra_channels
        self.stem = stem(in_channels, features) if in_channels else None
        stem_channels = features if in_channels else 0
        self.merge_extra = (
            Residual(stem_channels + extra_channels, features) if extra_channels else None
        )

    def forward(self, x: Tensor | None, extra: Tensor | None = None) -> Tensor:
        """(B, features, S / 4, S / 4): the stem's features of x (B, in_channels, S, S; None
        without a stem), merged with extra (B, extra_channels, S / 4, S / 4) when there is a
        second input."""
        features = self._stem_features(x)
        if self.merge_extra is not None:
            if extra is None or extra.dim() != 4 or extra.shape[1] != self.extra_channels:
                got = None if extra is None else tuple(extra.shape)
                raise ValueError(
                    f"expected the second input (B, {self.extra_channels}, S / 4, S / 4), got {got}"
                )
            if features is not None and (
                extra.shape[0] != features.shape[0] or extra.shape[-2:] != features.shape[-2:]
            ):
                raise ValueError(
                    f"the second input {tuple(extra.shape)} must match the stem's output "
                    f"{tuple(features.shape)} in batch and resolution"
                )
            merged = extra if features is None else torch.cat((features, extra), dim=1)
            features = self.merge_extra(merged)
        elif extra is not None:
            raise ValueError("this network takes no second input (extra_channels = 0)")
        assert features is not None
        return features

    def _stem_features(self, x: Tensor | None) -> Tensor | None:
        if self.stem is None:
            if x is not None:
                raise ValueError("this network takes no image-resolution input (in_channels = 0)")
            return None
        if x is None or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = None if x is None else tuple(x.shape)
            raise ValueError(f"expected input (B, {self.in_channels}, S, S), got {got}")
        return self.stem(x)


class StackedHourglass(nn.Module):
    """`num_stacks` hourglasses with intermediate supervision (module docstring).

    Args:
        in_channels: channels of the image-resolution input (0: none, the second input only).
        out_channels: channels of each stack's prediction.
        num_stacks: hourglasses in sequence (BodyNet: 2 per subnetwork).
        features: channels inside the hourglasses (Newell: 256).
        depth: recursion of each hourglass (Newell: 4).
        extra_channels: channels of the optional second input at the output resolution.

    Input (B, in_channels, S, S) with S divisible by 4 * 2 ** depth, and `extra` (B,
    extra_channels, S / 4, S / 4) when `extra_channels` > 0. Returns the list of the stacks'
    predictions, each (B, out_channels, S / 4, S / 4); the last is the network's output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_stacks: int = 2,
        features: int = 256,
        depth: int = 4,
        extra_channels: int = 0,
    ) -> None:
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"num_stacks must be at least 1, got {num_stacks}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.extra_channels = extra_channels
        self.inputs = InputBranch(in_channels, features, extra_channels)
        self.hourglasses = nn.ModuleList(Hourglass(depth, features) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(
                Residual(features, features),
                nn.Conv2d(features, features, 1),
                nn.BatchNorm2d(features),
                nn.ReLU(inplace=True),
            )
            for _ in range(num_stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(features, out_channels, 1) for _ in range(num_stacks))
        self.feature_back = nn.ModuleList(
            nn.Conv2d(features, features, 1) for _ in range(num_stacks - 1)
        )
        self.prediction_back = nn.ModuleList(
            nn.Conv2d(out_channels, features, 1) for _ in range(num_stacks - 1)
        )

    def forward(self, x: Tensor | None, extra: Tensor | None = None) -> list[Tensor]:
        """x: (B, in_channels, S, S), None when `in_channels` is 0; extra: (B, extra_channels,
        S / 4, S / 4) when `extra_channels` > 0."""
        features = self.inputs(x, extra)
        outputs = []
        for index, hourglass in enumerate(self.hourglasses):
            hidden = self.features[index](hourglass(features))
            prediction = self.heads[index](hidden)
            outputs.append(prediction)
            if index < len(self.hourglasses) - 1:
                back = self.feature_back[index](hidden) + self.prediction_back[index](prediction)
                features = features + back
        return outputs
