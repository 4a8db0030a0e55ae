"""The training-mean body: the baseline every regression method is compared with.

Fitted at the start of training from at most `max_samples` training samples with SMPL (evenly
spaced over the training set, as the DataModule serves them): each of the 24 joint rotations
is the chordal mean of that joint's camera-frame rotations (`geometry.rotations.chordal_mean`;
the global orientation included, so the baseline faces the way the training people face on
average) and betas the mean betas. The buffers live in the checkpoint, so `eval` scores the
same baseline through the same metrics without reading training data again.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from geometry.rotations import axis_angle_to_matrix, chordal_mean


class MeanBodyBaseline(nn.Module):
    """Buffers `rotmats` (24, 3, 3), `betas` (10,), `num_samples` () of the training mean."""

    name = "training_mean_body"  # how results files and tables call it

    rotmats: Tensor
    betas: Tensor
    num_samples: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("rotmats", torch.eye(3).expand(24, 3, 3).clone())
        self.register_buffer("betas", torch.zeros(10))
        self.register_buffer("num_samples", torch.tensor(0))

    @property
    def fitted(self) -> bool:
        return bool(self.num_samples > 0)

    def fit(self, samples: Iterable[dict]) -> None:
        """Average the `pose` (72,) and `betas` (10,) of the samples whose `has_smpl` is set."""
        poses, betas = [], []
        for sample in samples:
            if bool(sample["has_smpl"]):
                poses.append(torch.as_tensor(sample["pose"], dtype=torch.float64))
                betas.append(torch.as_tensor(sample["betas"], dtype=torch.float64))
        if not poses:
            raise ValueError("no training sample with SMPL to fit the mean-body baseline")
        rotations = axis_angle_to_matrix(torch.stack(poses).reshape(-1, 24, 3))
        self.rotmats.copy_(chordal_mean(rotations, dim=0).to(self.rotmats))
        self.betas.copy_(torch.stack(betas).mean(dim=0).to(self.betas))
        self.num_samples.fill_(len(poses))

    def forward(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """(rotmats (B, 24, 3, 3), betas (B, 10)) of the baseline for a batch."""
        return self.rotmats.expand(batch_size, 24, 3, 3), self.betas.expand(batch_size, 10)

    def outputs(self, batch_size: int) -> dict[str, Tensor]:
        """What evaluation scores of the baseline: `pose` (B, 24, 3, 3) and `betas` (B, 10)."""
        rotmats, betas = self(batch_size)
        return {"pose": rotmats, "betas": betas}
