"""CropDataset and CropDataModule on an in-memory reader: bad samples, caching, mixing, batches."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from datamodules.base import DatasetReader, ReaderOptions
from datamodules.datamodule import CropDataModule, per_device_batch_size
from datamodules.datasets import CropDataset, SceneDataset, collate_crops
from datamodules.io import DataError
from datamodules.scenes import collate_scenes
from datamodules.synthetic.render import SceneRenderer
from tests.datamodules.scene_fixtures import rendered_record


class MemoryReader(DatasetReader):
    """Rendered records held in memory; record `bad` raises like a corrupt file."""

    dataset_id, folder, joint_set = "memory", "memory", "smpl_24"
    splits = ("train",)
    layout = "memory/"
    records: ClassVar[list] = []
    bad: ClassVar[set[int]] = set()

    def _open(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self.records)

    def record(self, index: int, load_image: bool = True):
        if index in self.bad:
            raise DataError(f"memory/broken_{index}.jpg (sample {index}): cannot decode image")
        return self.records[index]


@pytest.fixture(scope="module")
def memory_root(tmp_path_factory, body_models_root) -> Path:
    renderer = SceneRenderer(body_models_root)
    MemoryReader.records = [rendered_record(renderer, seed=s) for s in range(4)]
    root = tmp_path_factory.mktemp("memory_root")
    (root / "memory").mkdir()
    return root


def test_bad_sample_raises_naming_the_file_unless_skipped(memory_root):
    strict = CropDataset(MemoryReader(memory_root, "train"), 64)
    lenient = CropDataset(MemoryReader(memory_root, "train"), 64, skip_bad_samples=True)
    MemoryReader.bad = {1}
    try:
        with pytest.raises(DataError, match=r"broken_1\.jpg"):
            strict[1]
        sample = lenient[1]
        assert sample["meta"]["sample_id"] == "rendered_2"
        assert lenient.skipped.value == 1
        indexed = CropDataset(MemoryReader(memory_root, "train"), 64, skip_bad_samples=True)
        assert len(indexed) == 3 and indexed.skipped.value == 1
        with pytest.raises(DataError, match=r"broken_1\.jpg"):
            CropDataset(MemoryReader(memory_root, "train"), 64)
    finally:
        MemoryReader.bad = set()


def test_scene_dataset_pads_and_skips_like_crops(memory_root):
    strict = SceneDataset(MemoryReader(memory_root, "train"), (128, 160))
    lenient = SceneDataset(MemoryReader(memory_root, "train"), (128, 160), skip_bad_samples=True)
    assert len(strict) == 4
    sample = strict[0]
    assert sample["image"].shape == (3, 128, 160) and sample["instance_map"].shape == (128, 160)
    assert sample["keypoints2d"].shape[0] == len(MemoryReader.records[0].people)
    MemoryReader.bad = {2}
    try:
        with pytest.raises(DataError, match=r"broken_2\.jpg"):
            strict[2]
        assert lenient[2]["meta"]["sample_id"] == "rendered_3" and lenient.skipped.value == 1
        batch = collate_scenes([lenient[0], lenient[3]])
        assert batch["image"].shape == (2, 3, 128, 160) and batch["person_valid"].all()
    finally:
        MemoryReader.bad = set()


def test_cached_crops_give_the_same_sample_without_reading_again(memory_root):
    dataset = CropDataset(MemoryReader(memory_root, "train"), 64, cache_decoded_crops=True)
    first = dataset[2]
    MemoryReader.bad = {0, 1, 2, 3}
    try:
        second = dataset[2]
    finally:
        MemoryReader.bad = set()
    np.testing.assert_allclose(
        first["keypoints2d"].numpy(), second["keypoints2d"].numpy(), atol=1e-3
    )
    np.testing.assert_allclose(
        first["keypoints3d"].numpy(), second["keypoints3d"].numpy(), atol=1e-6
    )
    assert (first["image"] - second["image"]).abs().mean() < 0.15  # resampled twice
    np.testing.assert_allclose(first["K"].numpy(), second["K"].numpy(), rtol=1e-5, atol=1e-3)


def test_per_device_batch_size_must_divide():
    assert per_device_batch_size(64, 4) == 16
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        per_device_batch_size(64, 3)


def test_mixed_training_draws_datasets_with_their_ratios(
    memory_root, monkeypatch, body_models_root
):
    from datamodules import datamodule as module

    monkeypatch.setattr(module, "reader_class", lambda dataset_id: MemoryReader)
    data = CropDataModule(
        str(memory_root),
        train=[
            {"dataset": "memory", "split": "train", "ratio": 0.8},
            {"dataset": "memory", "split": "train", "ratio": 0.2},
        ],
        crop_size=32,
        batch_size=4,
        num_workers=0,
        samples_per_epoch=4000,
        body_model_root=str(body_models_root),
    )
    data.options = ReaderOptions()
    data.setup("fit")
    sampler = data.train_dataloader().sampler
    drawn = torch.tensor([index for index, _ in sampler])
    assert len(drawn) == 4000 and abs((drawn < 4).float().mean().item() - 0.8) < 0.03
    batch = collate_crops([data.datasets["train"][0][0], data.datasets["train"][0][1]])
    assert batch["image"].shape == (2, 3, 32, 32) and len(batch["meta"]) == 2
