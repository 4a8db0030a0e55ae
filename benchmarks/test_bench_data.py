"""Data benchmarks: time to write the `ci` and `small` synthetic worlds, crops per second of the
training DataLoader with 2 workers from the small world after `prepare`, for 224 x 224 crops
(PARE) and 256 x 256 crops (BodyNet), goal at least 150 crops/s here (issue 5); JTA frame
extraction and the estimated time to prepare the real test protocol, goal under 15 minutes
(issue 6)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
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


JTA_TEST_VIDEOS, JTA_GOAL_MINUTES = 128, 15.0


def _write_gradient_video(path: Path, frames: int) -> None:
    """A 1080p H.264 video of a drifting gradient with a moving square (cheap to encode),
    encoded frame by frame with the synthetic world's libx264 options."""
    import av

    from datamodules.synthetic.surreal import FPS, VIDEO_OPTIONS

    x = np.linspace(0, 255, 1920, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, 1080, dtype=np.float32)[:, None, None]
    base = x * np.array([1.0, 0.5, 0.2], np.float32) + y * np.array([0.1, 0.4, 0.8], np.float32)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options=VIDEO_OPTIONS)
        stream.height, stream.width, stream.pix_fmt = 1080, 1920, "yuv420p"
        for t in range(frames):
            frame = ((base + 2 * t) % 256).astype(np.uint8)
            frame[400:600, 10 + 2 * t : 210 + 2 * t] = (
                255 - frame[400:600, 10 + 2 * t : 210 + 2 * t]
            )
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def test_jta_frame_extraction(benchmark, tmp_path_factory):
    """`prepare jta` on one synthetic 900-frame 1080p H.264 video (libx264 veryfast, like the
    synthetic world's): decode it once and keep the test protocol's 90 frames as JPEG; the time
    for the real test protocol (128 such videos, 11,520 frames) is estimated from it. Goal:
    under 15 minutes. Real JTA videos may decode at another speed than this encoding."""
    from datamodules.base import ReaderOptions
    from datamodules.jta import JTAReader

    root = tmp_path_factory.mktemp("jta_bench")
    rows = [
        [f, 0, j, 100.0 + j, 100.0, 0.0, 0.0, 5.0, 0, 0] for f in range(1, 901) for j in range(22)
    ]
    (root / "jta" / "annotations" / "test").mkdir(parents=True)
    (root / "jta" / "annotations" / "test" / "seq_256.json").write_text(json.dumps(rows))
    (root / "jta" / "videos" / "test").mkdir(parents=True)
    _write_gradient_video(root / "jta" / "videos" / "test" / "seq_256.mp4", 900)
    cache = root / "cache"
    reader = JTAReader(root, "test", ReaderOptions(cache_root=cache))

    def extract() -> float:
        shutil.rmtree(cache, ignore_errors=True)
        start = time.perf_counter()
        reader.extract_frames(256)
        return time.perf_counter() - start

    seconds = benchmark.pedantic(extract, rounds=1, iterations=1)
    minutes = seconds * JTA_TEST_VIDEOS / 60
    benchmark.extra_info.update(
        frames_kept=90,
        seconds_per_video=round(seconds, 2),
        estimated_test_protocol_minutes=round(minutes, 1),
        goal_minutes=JTA_GOAL_MINUTES,
        goal_met=minutes < JTA_GOAL_MINUTES,
    )


SCENE_BATCHES, SCENE_BATCH = 6, 4


@pytest.fixture(scope="module")
def scene_world(tmp_path_factory, body_models_root) -> Path:
    """The `ci` COCO and JTA worlds, JTA's frames prepared."""
    from datamodules.base import reader_class

    root = tmp_path_factory.mktemp("scene_world")
    write_world(root, "ci", ("coco", "jta"), body_model_root=body_models_root, progress=False)
    reader_class("jta")
    context = PrepareContext(root, root / ".cache", body_models_root, "mannequin", progress=False)
    steps_for("jta")["frames"](context)
    return root


@pytest.mark.parametrize(
    ("dataset_id", "split", "size"),
    [("coco", "train2014", (512, 832)), ("jta", "train", (1080, 1920))],
)
def test_scene_samples_per_second(
    benchmark, scene_world, body_models_root, dataset_id, split, size
):
    """Scene samples per second with 2 workers: CRMH-style 512 x 832 inputs from COCO, and
    full 1920 x 1080 JTA frames (records drawn with replacement)."""
    from torch.utils.data import DataLoader, RandomSampler

    from datamodules.base import BodyModels, ReaderOptions, reader_class
    from datamodules.datasets import SceneDataset
    from datamodules.scenes import collate_scenes

    options = ReaderOptions(
        cache_root=scene_world / ".cache", body_models=BodyModels(body_models_root)
    )
    dataset = SceneDataset(reader_class(dataset_id)(scene_world, split, options), size)
    count = (SCENE_BATCHES + 1) * SCENE_BATCH
    sampler = RandomSampler(dataset, replacement=True, num_samples=count)
    loader_args = {"batch_size": SCENE_BATCH, "num_workers": 2, "collate_fn": collate_scenes}

    def run() -> float:
        loader = iter(DataLoader(dataset, sampler=sampler, **loader_args))
        next(loader)  # worker start-up is not throughput
        start = time.perf_counter()
        for _ in range(SCENE_BATCHES):
            next(loader)
        return SCENE_BATCHES * SCENE_BATCH / (time.perf_counter() - start)

    rate = benchmark.pedantic(run, rounds=2, iterations=1)
    benchmark.extra_info.update(
        dataset=dataset_id, size=list(size), workers=2, scenes_per_second=round(rate, 1)
    )
