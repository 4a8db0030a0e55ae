"""Data benchmarks (issue 5): time to write the `ci` and `small` synthetic worlds, and crops per
second of the training DataLoader with 2 workers from the small world after `prepare`, for
224 x 224 crops (PARE) and 256 x 256 crops (BodyNet). Goal: at least 150 crops/s here."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from datamodules.cache import PrepareContext, steps_for
from datamodules.datamodule import CropDataModule
from datamodules.synthetic.world import write_world

GOAL_CROPS_PER_SECOND = 150.0
SINGLE_PERSON = ("surreal", "pw3d", "h36m")
BATCHES = 12


@pytest.fixture(scope="module")
def small_world(tmp_path_factory, body_models_root) -> Path:
    root = tmp_path_factory.mktemp("small_world")
    write_world(root, "small", SINGLE_PERSON, body_model_root=body_models_root, progress=False)
    from datamodules.base import reader_class

    for dataset_id in SINGLE_PERSON:
        reader_class(dataset_id)
        context = PrepareContext(
            root, root / ".cache", body_models_root, "mannequin", progress=False
        )
        for step in steps_for(dataset_id).values():
            step(context)
    return root


@pytest.mark.parametrize("size", ["ci", "small"])
def test_write_world(benchmark, tmp_path_factory, body_models_root, size):
    def write() -> dict:
        root = tmp_path_factory.mktemp(f"world_{size}")
        return write_world(
            root, size, (*SINGLE_PERSON, "up3d"), body_model_root=body_models_root, progress=False
        )

    info = benchmark.pedantic(write, rounds=1, iterations=1)
    benchmark.extra_info.update(size=size, counts=info["counts"])


@pytest.mark.parametrize("crop_size", [224, 256])
def test_training_crops_per_second(benchmark, small_world, body_models_root, crop_size):
    data = CropDataModule(
        str(small_world),
        train=[{"dataset": d, "split": "train", "ratio": 1.0} for d in SINGLE_PERSON],
        crop_size=crop_size,
        batch_size=32,
        num_workers=2,
        augmentation={"names": ["jitter", "scale", "rotation", "flip", "color", "occlusion"]},
        body_model_root=str(body_models_root),
    )
    data.setup("fit")

    def epoch_part() -> float:
        loader = iter(data.train_dataloader())
        next(loader)  # worker start-up is not throughput
        start = time.perf_counter()
        for _ in range(BATCHES):
            next(loader)
        return BATCHES * 32 / (time.perf_counter() - start)

    rate = benchmark.pedantic(epoch_part, rounds=2, iterations=1)
    benchmark.extra_info.update(
        crop_size=crop_size,
        workers=2,
        crops_per_second=round(rate, 1),
        goal_crops_per_second=GOAL_CROPS_PER_SECOND,
        goal_met=rate >= GOAL_CROPS_PER_SECOND,
    )
