"""Samplers that make training resumable and evaluation identical on 1 or N processes.

- `TrainSampler`: the draws of one training epoch as a pure function of (seed, epoch): with
  `weights`, `num_samples` draws with replacement (the ratio mixing of SPIN and PARE), else a
  permutation. Each draw carries its own augmentation seed, so a sample's crop does not depend
  on which process or worker loads it, nor on anything else that used a random generator
  before. Under `torch.distributed` each rank takes every world-size-th draw of the same epoch
  list (the tail that does not divide is dropped, as `drop_last` would), so ranks never see the
  same draw. It yields `(index, seed)` pairs, which `SeededConcatDataset` routes to its parts.
- `EvalSampler`: indices `rank, rank + world, ...` without padding (`DistributedSampler` pads
  with repeats, which changes the metrics), so that the metric states reduced by torchmetrics
  over N processes hold exactly the samples one process would see.

Why our own: resuming mid-epoch with torchdata's `StatefulDataLoader` replays the sampler of
the current epoch up to the saved position, which is exact only if the sampler's order is a
function of the epoch alone; torch's `WeightedRandomSampler` and `RandomSampler` draw from the
global generator, and Lightning's `DistributedSamplerWrapper` does not forward `set_epoch` to
the sampler it wraps. Lightning sets the epoch through `set_epoch` (`use_distributed_sampler`
is off in the suite's trainer presets, since these samplers shard themselves).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler


def process_group() -> tuple[int, int]:
    """(rank, world size) of the initialised default process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TrainSampler(Sampler[tuple[int, int]]):
    """Draws `(index, augmentation seed)` of one epoch (module docstring).

    Args:
        size: number of samples in the dataset.
        weights: per-sample weights for draws with replacement; None for a permutation.
        num_samples: draws per epoch (default `size`); with `weights=None` it must be `size`.
        seed: base seed; the epoch's list is a function of (seed, epoch) only.
    """

    def __init__(
        self,
        size: int,
        weights: Sequence[float] | None = None,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        if size <= 0:
            raise ValueError("TrainSampler: the training dataset is empty")
        self.size, self.seed, self.epoch = size, int(seed), 0
        self.num_samples = size if num_samples is None else int(num_samples)
        self.probabilities: np.ndarray | None = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (size,) or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"TrainSampler: need {size} non-negative weights, not all 0")
            self.probabilities = w / w.sum()
        elif self.num_samples != size:
            raise ValueError("TrainSampler: num_samples differs from the size; give weights")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_draws(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices, seeds) of every draw of the current epoch, all ranks together."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.probabilities is None:
            indices = rng.permutation(self.size)
        else:
            indices = rng.choice(self.size, size=self.num_samples, p=self.probabilities)
        seeds = rng.integers(0, 2**62, size=len(indices))
        return indices, seeds

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rank, world = process_group()
        indices, seeds = self.epoch_draws()
        stop = len(self) * world
        for index, seed in zip(indices[rank:stop:world], seeds[rank:stop:world], strict=True):
            yield int(index), int(seed)

    def __len__(self) -> int:
        return self.num_samples // process_group()[1]


class EvalSampler(Sampler[int]):
    """This rank's share of `range(size)`: rank, rank + world, ... (no padding)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __iter__(self) -> Iterator[int]:
        rank, world = process_group()
        return iter(range(rank, self.size, world))

    def __len__(self) -> int:
        rank, world = process_group()
        return len(range(rank, self.size, world))


class SeededConcatDataset(Dataset):
    """Several datasets end to end, indexed by `(index, seed)` pairs (or plain indices): the
    seed goes to the part holding the index, as `part[(local index, seed)]`."""

    def __init__(self, parts: Sequence[Dataset]) -> None:
        self.parts = list(parts)
        sizes = [len(part) for part in self.parts]  # type: ignore[arg-type]
        self.offsets: np.ndarray = np.cumsum([0, *sizes])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        index, seed = item if isinstance(item, tuple) else (item, None)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        local = index - int(self.offsets[part])
        return self.parts[part][local if seed is None else (local, seed)]
