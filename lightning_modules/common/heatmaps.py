"""Gaussian heatmaps of keypoints on a feature grid over a square crop (PARE's joint supervision,
BodyNet's 2D and 3D pose targets).

A crop of side S and a heatmap of h x w cells cover the same square; pixel centres sit on
integers in both, so crop pixel x maps to heatmap coordinate (x + 0.5) w / S - 0.5.
"""

from __future__ import annotations

import torch
from torch import Tensor


def heatmap_coordinates(pixels: Tensor, crop_size: int, size: tuple[int, int]) -> Tensor:
    """(..., 2) crop pixel x, y -> (..., 2) heatmap coordinates of an h x w grid (`size`)."""
    height, width = size
    scale = pixels.new_tensor([width / crop_size, height / crop_size])
    return (pixels + 0.5) * scale - 0.5


def gaussian_heatmaps(
    keypoints2d: Tensor, crop_size: int, size: tuple[int, int], sigma: float
) -> Tensor:
    """(B, J, >= 2) crop pixels -> (B, J, h, w) Gaussians of `sigma` heatmap pixels at each
    joint (peak 1, unnormalised)."""
    height, width = size
    centres = heatmap_coordinates(keypoints2d[..., :2], crop_size, size)
    ys = torch.arange(height, device=keypoints2d.device, dtype=keypoints2d.dtype)
    xs = torch.arange(width, device=keypoints2d.device, dtype=keypoints2d.dtype)
    dx = (xs[None, None, None, :] - centres[..., 0, None, None]).square()
    dy = (ys[None, None, :, None] - centres[..., 1, None, None]).square()
    return torch.exp(-(dx + dy) / (2 * sigma**2))


def heatmap_to_pixels(coordinates: Tensor, crop_size: int, size: tuple[int, int]) -> Tensor:
    """The inverse of `heatmap_coordinates`: (..., 2) heatmap x, y -> crop pixels."""
    height, width = size
    scale = coordinates.new_tensor([crop_size / width, crop_size / height])
    return (coordinates + 0.5) * scale - 0.5
