"""Synthetic JTA sequences in the native layout (datasets.md 6, `datamodules.jta`).

    jta/annotations/{train,val,test}/seq_<N>.json     rows of 10 numbers per joint and frame
    jta/videos/{train,val,test}/seq_<N>.mp4           1920 x 1080 H.264, 30 fps

Sequences are numbered as LoCO's loaders expect: train seq_0, seq_1, ...; test the even numbers
seq_256, seq_258, ...; val the odd ones seq_257, seq_259, .... They are much shorter than JTA's
900 frames (`SIZES`; the reader intersects the protocol frames with the frames a synthetic
sequence has, and takes the last frame of a sequence too short for any).

Scenes. JTA's fixed camera (fx = fy = 1158, 1920 x 1080) mounted 3 to 8 m above a street,
pitched down by 8 to 20 degrees; crowds of `PEOPLE` people (tiny: at most 10) from the prior
walking at 0.8 to 1.6 m/s on the ground plane in groups of about `GROUP_SIZE` (so they often
overlap in the image), the groups at 4 to `MAX_DISTANCE` m and spread over the view
(`datamodules.synthetic.ground.walkers`: feet on the ground, no interpenetration). Rows, as the
real files: frame (1-based), person id, joint type (`jta_22` keypoints of the posed body), the
2D projection (float pixels, may lie off screen), the camera-frame 3D joint, `occluded` (the
joint's pixel shows another person) and `self_occluded` (it shows the person's own surface more
than `SELF_OCCLUSION_M` in front of the joint). Every person appears in every frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from body.joint_sets import canonical_indices
from datamodules.io import write_text
from datamodules.jta import IMAGE_SIZE, K, protocol_frames
from datamodules.synthetic.ground import seen_from, walkers
from datamodules.synthetic.render import Frames, SceneRenderer
from datamodules.synthetic.surreal import write_video

SIZES = {  # sequences per split, frames per sequence of each split, crowd size
    "tiny": {"train": 1, "test": 1, "val": 1, "train_frames": 3, "test_frames": 3,
             "val_frames": 3, "people": 10},
    "ci": {"train": 2, "test": 2, "val": 1, "train_frames": 11, "test_frames": 10,
           "val_frames": 3, "people": 20},
    "small": {"train": 2, "test": 1, "val": 1, "train_frames": 11, "test_frames": 10,
              "val_frames": 3, "people": 30},
    "full": {"train": 16, "test": 8, "val": 4, "train_frames": 96, "test_frames": 50,
             "val_frames": 10, "people": 40},
}  # fmt: skip
MIN_PEOPLE = 10
GROUP_SIZE, GROUP_SPREAD_M = 4, 1.2
MAX_DISTANCE = 100.0
SELF_OCCLUSION_M = 0.15  # beyond a limb's thickness: joints lie inside the body
FIRST_NUMBER = {"train": 0, "test": 256, "val": 257}
NUMBER_STEP = {"train": 1, "test": 2, "val": 2}


@dataclass
class JTASequence:
    split: str
    number: int
    frames: Frames  # rendered, camera frame
    rows: np.ndarray  # (N, 10)


def camera_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) world -> camera of a camera `height` m above the floor (y down, floor y = 0),
    pitched down."""
    height, pitch = rng.uniform(3.0, 8.0), np.radians(rng.uniform(8.0, 20.0))
    cos, sin = np.cos(pitch), np.sin(pitch)
    R = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])  # forward tilts to +y
    centre = np.array([0.0, -height, 0.0])
    return R, -R @ centre


def crowd_start(rng: np.random.Generator) -> np.ndarray:
    """(x, z) of a person: distance skewed to near (most within 40 m), spread over the view."""
    distance = 4.0 + (MAX_DISTANCE - 4.0) * rng.uniform() ** 2.5
    half_width = distance * (IMAGE_SIZE[1] / 2) / K[0, 0]
    return np.array([rng.uniform(-1.1, 1.1) * half_width, distance])


def walking_step(rng: np.random.Generator) -> np.ndarray:
    speed, heading = rng.uniform(0.8, 1.6), rng.uniform(0, 2 * np.pi)
    return speed / 30.0 * np.array([np.cos(heading), np.sin(heading)])


def annotation_rows(frames: Frames, camera_K: np.ndarray) -> np.ndarray:
    """(N, 10) rows of every joint of every person in every frame (module docstring)."""
    height, width = IMAGE_SIZE
    rows = []
    indices = canonical_indices("jta_22")
    for k, posed in enumerate(frames.posed):
        points = posed.keypoints[:, indices]  # (T, 22, 3) camera metres
        uv = frames.keypoints2d(k, camera_K)[:, indices]
        for t in range(points.shape[0]):
            pixel = np.rint(uv[t]).astype(int)
            inside = (pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0)
            inside &= pixel[:, 1] < height
            x, y = np.clip(pixel[:, 0], 0, width - 1), np.clip(pixel[:, 1], 0, height - 1)
            owner = frames.instance_map[t, y, x]
            depth = frames.depth[t, y, x]
            occluded = inside & (owner > 0) & (owner != k + 1)
            self_occluded = inside & (owner == k + 1) & (depth < points[t, :, 2] - SELF_OCCLUSION_M)
            for joint in range(22):
                rows.append([t + 1, k, joint, *uv[t, joint], *points[t, joint],
                             int(occluded[joint]), int(self_occluded[joint])])  # fmt: skip
    return np.array(rows, dtype=np.float64)


def generate_sequence(
    renderer: SceneRenderer, rng: np.random.Generator, split: str, number: int, frames: int,
    people: int,
) -> JTASequence:  # fmt: skip
    R, t = camera_pose(rng)
    count = int(rng.integers(min(MIN_PEOPLE, people), people + 1))
    groups = [crowd_start(rng) for _ in range(max(1, count // GROUP_SIZE))]

    def start(rng: np.random.Generator) -> np.ndarray:
        """Pedestrians walk in groups: near a group's centre."""
        return groups[int(rng.integers(len(groups)))] + rng.normal(0.0, GROUP_SPREAD_M, 2)

    crowd = walkers(renderer, rng, count, frames, start, walking_step)
    seen = [seen_from(renderer, person, R, t) for person in crowd]
    rendered = renderer.render(seen, K, IMAGE_SIZE, rng)
    return JTASequence(split, number, rendered, annotation_rows(rendered, K))


def generate(renderer: SceneRenderer, rng: np.random.Generator, counts: dict[str, int]):
    for split in ("train", "test", "val"):
        for i in range(counts[split]):
            number = FIRST_NUMBER[split] + NUMBER_STEP[split] * i
            frames = counts[f"{split}_frames"]
            yield generate_sequence(renderer, rng, split, number, frames, counts["people"])


def write(
    dataset_dir: Path,
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object],
) -> dict[str, int]:
    """Write the world (module docstring); returns the number of records of each split."""
    dataset_dir = Path(dataset_dir)
    written = {"train": 0, "test": 0, "val": 0}
    for sequence in generate(renderer, rng, counts):
        name = f"seq_{sequence.number}"
        rows = [[int(r[0]), int(r[1]), int(r[2]), *map(float, r[3:8]), int(r[8]), int(r[9])]
                for r in sequence.rows]  # fmt: skip
        write_text(dataset_dir / "annotations" / sequence.split / f"{name}.json", json.dumps(rows))
        write_video(dataset_dir / "videos" / sequence.split / f"{name}.mp4", sequence.frames.images)
        written[sequence.split] += len(protocol_frames(sequence.split, len(sequence.frames.images)))
        progress(sequence.frames.images.shape[0])
    return written
