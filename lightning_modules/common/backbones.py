"""Image backbones that return a feature volume (no global pooling).

- `ResNetBackbone`: torchvision's ResNet-18/34/50/101 up to `layer4` (2048 x 7 x 7 at 224 for
  ResNet-50, 512 x 7 x 7 for ResNet-18); the average pool and the classifier are removed.
- `HRNetBackbone`: timm's HRNet-W32 (`timm.create_model("hrnet_w32", features_only=True,
  feature_location="", out_indices=(1, 2, 3, 4))`: the four branch outputs of the last stage,
  32, 64, 128 and 256 channels at strides 4, 8, 16, 32), each branch upsampled bilinearly to
  the stride-4 resolution and concatenated (480 x 56 x 56 at 224), as the pose HRNet heads
  (HigherHRNet's and mmpose's "resize_concat") fuse them.

`pretrained`: None (random initialisation; the tests), `"imagenet"` (the library's ImageNet
weights, downloaded by torchvision or timm: needs internet), or the path of a local checkpoint
(a state dict, or a dict holding one under `state_dict` or `model`), loaded with
`weights_only=True`; keys that do not fit are reported, never silently dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RESNETS = {18: "resnet18", 34: "resnet34", 50: "resnet50", 101: "resnet101"}


class PretrainedWeightsError(ValueError):
    """A local checkpoint that does not fit the backbone."""


def load_local_weights(module: nn.Module, path: str | Path) -> None:
    """Load a local checkpoint into `module` (module docstring); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained backbone checkpoint not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = sorted(set(own) - set(usable))
    if not usable or missing:
        raise PretrainedWeightsError(
            f"{path}: {len(usable)} of {len(own)} backbone tensors fit; missing or mis-shaped: "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    module.load_state_dict(usable)


class FeatureBackbone(nn.Module):
    """A backbone returning a (B, out_channels, h, w) feature volume."""

    out_channels: int


class ResNetBackbone(FeatureBackbone):
    """torchvision ResNet without pooling and classifier: (B, 3, H, W) -> (B, C, H/32, W/32)."""

    def __init__(self, depth: int = 50, pretrained: str | None = None) -> None:
        super().__init__()
        import torchvision

        if depth not in RESNETS:
            raise ValueError(f"ResNet depth {depth} not available; choose from {sorted(RESNETS)}")
        weights = "DEFAULT" if pretrained == "imagenet" else None
        net = getattr(torchvision.models, RESNETS[depth])(weights=weights)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = nn.Sequential(net.layer1, net.layer2, net.layer3, net.layer4)
        self.out_channels = net.fc.in_features
        if pretrained not in (None, "imagenet"):
            load_local_weights(self, pretrained)

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(self.stem(images))


class HRNetBackbone(FeatureBackbone):
    """timm HRNet with its four branches fused at stride 4 (module docstring)."""

    def __init__(self, name: str = "hrnet_w32", pretrained: str | None = None) -> None:
        super().__init__()
        import timm

        self.net = timm.create_model(
            name,
            pretrained=pretrained == "imagenet",
            features_only=True,
            feature_location="",
            out_indices=(1, 2, 3, 4),
        )
        self.out_channels = int(sum(cast(Any, self.net).feature_info.channels()))
        if pretrained not in (None, "imagenet"):
            load_local_weights(self.net, pretrained)

    def forward(self, images: Tensor) -> Tensor:
        branches = self.net(images)
        size = branches[0].shape[-2:]
        upsampled = [branches[0]] + [
            F.interpolate(b, size=size, mode="bilinear", align_corners=False) for b in branches[1:]
        ]
        return torch.cat(upsampled, dim=1)  # (B, 480, H/4, W/4) for HRNet-W32
