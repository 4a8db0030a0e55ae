"""The resumable training sampler, the unpadded evaluation sampler and the seeded concat."""

from __future__ import annotations

import pytest
import torch

from datamodules import sampling
from datamodules.datasets import CropDataset
from datamodules.sampling import EvalSampler, SeededConcatDataset, TrainSampler
from tests.datamodules.test_datasets import MemoryReader, memory_root  # noqa: F401 (fixture)


def _draws(sampler) -> list[tuple[int, int]]:
    return list(sampler)


def test_an_epoch_is_a_function_of_seed_and_epoch():
    sampler = TrainSampler(10, weights=[1.0] * 10, num_samples=50, seed=3)
    first = _draws(sampler)
    assert _draws(sampler) == first  # no hidden generator state
    assert len(first) == len(sampler) == 50 and len({seed for _, seed in first}) == 50
    sampler.set_epoch(1)
    assert _draws(sampler) != first
    sampler.set_epoch(0)
    assert _draws(sampler) == first
    assert _draws(TrainSampler(10, weights=[1.0] * 10, num_samples=50, seed=4)) != first
    permutation = [index for index, _ in TrainSampler(7, seed=0)]
    assert sorted(permutation) == list(range(7))


def test_weights_set_the_mixing_ratios():
    weights = [0.8 / 4] * 4 + [0.2 / 6] * 6  # two parts of 4 and 6 samples, ratios 0.8 / 0.2
    indices = torch.tensor([i for i, _ in TrainSampler(10, weights, num_samples=20000, seed=0)])
    assert abs((indices < 4).float().mean().item() - 0.8) < 0.01


def test_ranks_take_disjoint_shares_of_the_same_epoch(monkeypatch):
    sampler = TrainSampler(10, weights=[1.0] * 10, num_samples=25, seed=0)
    everything = _draws(sampler)
    shares = []
    for rank in range(2):
        monkeypatch.setattr(sampling, "process_group", lambda rank=rank: (rank, 2))
        shares.append(_draws(sampler))
        assert len(sampler) == 12
    assert shares[0] == everything[0:24:2] and shares[1] == everything[1:24:2]


def test_evaluation_shares_cover_every_sample_once_without_padding(monkeypatch):
    seen = []
    for rank in range(3):
        monkeypatch.setattr(sampling, "process_group", lambda rank=rank: (rank, 3))
        sampler = EvalSampler(7)
        share = list(sampler)
        assert len(share) == len(sampler)
        seen += share
    assert sorted(seen) == list(range(7))


def test_bad_sampler_arguments_are_refused():
    with pytest.raises(ValueError, match="empty"):
        TrainSampler(0)
    with pytest.raises(ValueError, match="weights"):
        TrainSampler(3, weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="give weights"):
        TrainSampler(3, num_samples=5)


def test_the_concat_routes_seeded_draws_and_the_seed_fixes_the_crop(memory_root):  # noqa: F811
    from datamodules.augment import Augmentation

    augmentation = Augmentation(names=["jitter", "scale", "color"])
    part = CropDataset(MemoryReader(memory_root, "train"), 32, augmentation)
    concat = SeededConcatDataset([part, part])
    assert len(concat) == 2 * len(part)
    same = concat[(len(part) + 1, 7)], part[(1, 7)]
    assert torch.equal(same[0]["image"], same[1]["image"])
    assert torch.equal(same[0]["keypoints2d"], same[1]["keypoints2d"])
    other = part[(1, 8)]
    assert not torch.equal(other["image"], same[1]["image"])
    assert concat[0]["image"].shape == (3, 32, 32)  # a plain index still works
    with pytest.raises(IndexError, match="out of range"):
        concat[(2 * len(part), 0)]
