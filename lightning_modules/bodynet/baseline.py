"""BodyNet's constant baseline, `constant_occupancy`: one occupancy grid for every input.

The grid is the mean of the training samples' ground-truth voxel grids, thresholded at the
level (a multiple of 0.05 in [0.05, 0.95]) whose per-sample voxel IoU (`metrics.volumes`) is
best on those same training samples. A network whose voxel IoU does not beat it has learned
nothing from the image beyond where bodies usually are in a crop. It is fitted once at the
start of training (`BodyNetModule.on_fit_start`) and travels in the checkpoint.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metrics.volumes import voxel_iou_per_sample

THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))


class ConstantOccupancy(nn.Module):
    """The baseline grid (module docstring); `resolution` R, grids (R, R, R)."""

    name = "constant_occupancy"  # how results files and tables call it

    mean: Tensor
    threshold: Tensor
    fitted_flag: Tensor

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros((resolution,) * 3))
        self.register_buffer("threshold", torch.tensor(0.5))
        self.register_buffer("fitted_flag", torch.tensor(False))

    @property
    def fitted(self) -> bool:
        return bool(self.fitted_flag)

    @torch.no_grad()
    def fit(self, voxels: Tensor) -> None:
        """Fit to training grids (N, R, R, R) bool (N >= 1)."""
        if voxels.dim() != 4 or voxels.shape[1:] != self.mean.shape or len(voxels) == 0:
            raise ValueError(
                f"expected training voxels (N >= 1, {', '.join(map(str, self.mean.shape))}), "
                f"got {tuple(voxels.shape)}"
            )
        target = voxels.to(torch.bool)
        mean = target.float().mean(dim=0)
        scores = []
        for level in THRESHOLDS:
            occupied = (mean >= level).expand_as(target)
            iou, valid = voxel_iou_per_sample(occupied, target)
            scores.append(float(iou[valid].mean()) if valid.any() else 0.0)
        best = max(range(len(THRESHOLDS)), key=scores.__getitem__)
        self.mean.copy_(mean)
        self.threshold.fill_(THRESHOLDS[best])
        self.fitted_flag.fill_(True)

    def forward(self, batch_size: int) -> Tensor:
        """(batch_size, R, R, R) bool: the thresholded grid for every sample."""
        return (self.mean >= self.threshold).expand(batch_size, *self.mean.shape)

    def outputs(self, batch_size: int) -> dict[str, Tensor]:
        """What evaluation scores of the baseline: the grid as the `occupancy` extra."""
        return {"occupancy": self(batch_size)}
