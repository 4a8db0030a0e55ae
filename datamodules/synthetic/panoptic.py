"""Synthetic CMU Panoptic sequences in the panoptic-toolbox layout (datasets.md 5,
`datamodules.panoptic`).

    panoptic/<seq>/calibration_<seq>.json                  31 HD cameras (panel 0, nodes 0..30)
    panoptic/<seq>/hdPose3d_stage1_coco19/body3DScene_%08d.json
    panoptic/<seq>/hdImgs/<cam>/<cam>_%08d.jpg              1920 x 1080 JPEG (quality 90)

Sequences are the four of the Zanfir protocol, so that split is never empty; frames are
numbered 0, 10, 20, ... (the protocol's default rule keeps every 10th HD frame). Images are
rendered for the protocol's cameras 00_16 and 00_30 only (the other cameras are calibrated but,
as when a user extracts only some cameras, have no image folder).

World. Panoptic's frame: centimetres, y down, floor y = 0. The HD cameras sit on a dome of
radius `DOME_RADIUS` around the origin at 0.9 to 2.2 m height, looking at a point 1 m above the
floor centre; K has f about 1630 px and the principal point near the centre, and every camera
has a non-zero distortion near the real ones (k1 about -0.22, k2 about 0.2, k3 about 0.02,
small p1, p2), so the reader's distortion path runs. 2 to 4 people (tiny: 2 or 3) from the prior
stand inside a disc of radius `STAGE_RADIUS`, drift slowly over the sequence, their lowest point
on the floor in every frame, never interpenetrating (`datamodules.synthetic.ground`, checked in
the first and last frames). Each frame is rendered through the pinhole K and then distorted
with the camera's coefficients (`distorted_image`: every output pixel reads the pinhole image at
its undistorted position, `cv2.undistortPoints`, exact to 1e-9 px), so the image is what a lens
with that distortion records.

Skeletons: the 19 coco19 joints (`panoptic_19` keypoints of the posed body) in world
centimetres, confidence 1 (0.05, below the toolboxes' 0.1, for joints another body hides in a
rendered view, as triangulation is unsure of joints some views miss; so the threshold path
runs), body ids 0..P-1 kept over the sequence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from body.joint_sets import canonical_indices
from datamodules.io import write_image, write_text
from datamodules.synthetic.ground import seen_from, walkers
from datamodules.synthetic.render import SceneRenderer, hidden_by_others

SEQUENCES = ("160422_haggling1", "160422_mafia2", "160422_ultimatum1", "160906_pizza1")
SIZES = {
    "tiny": {"sequences": 1, "frames": 2, "people": 3},
    "ci": {"sequences": 4, "frames": 4, "people": 4},
    "small": {"sequences": 4, "frames": 4, "people": 4},
    "full": {"sequences": 4, "frames": 300, "people": 4},
}
RENDERED_CAMERAS = ("00_16", "00_30")
IMAGE_SIZE = (1080, 1920)
FRAME_STEP = 10
DOME_RADIUS, STAGE_RADIUS = 4.2, 1.2
HIDDEN_CONFIDENCE = 0.05


@dataclass
class Camera:
    name: str
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray  # world -> camera
    t: np.ndarray  # metres


@dataclass
class SequenceSample:
    name: str
    cameras: list[Camera]
    frames: list[int]
    joints: np.ndarray  # (P, T, 19, 3) world metres
    confidence: np.ndarray  # (P, T, 19)
    images: dict[str, np.ndarray]  # camera -> (T, H, W, 3), distorted
    instance_maps: dict[str, np.ndarray]  # camera -> (T, H, W), distorted like the images


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera R of a camera at `position` looking at `target` (world y down)."""
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, -1.0, 0.0])  # y down: "up" is -y
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def dome_cameras(rng: np.random.Generator) -> list[Camera]:
    cameras = []
    for node in range(31):
        angle = 2 * np.pi * node / 31 + rng.uniform(-0.05, 0.05)
        height = rng.uniform(0.9, 2.2)
        position = np.array([DOME_RADIUS * np.cos(angle), -height, DOME_RADIUS * np.sin(angle)])
        R = look_at(position, np.array([0.0, -1.0, 0.0]))
        f = rng.uniform(1600, 1660)
        K = np.array([[f, 0, rng.uniform(930, 990)], [0, f * rng.uniform(0.995, 1.0),
                      rng.uniform(530, 560)], [0, 0, 1]])  # fmt: skip
        dist = np.array([rng.uniform(-0.24, -0.20), rng.uniform(0.18, 0.22),
                         rng.uniform(-5e-4, 5e-4), rng.uniform(-1e-3, 1e-3),
                         rng.uniform(0.01, 0.03)])  # fmt: skip
        cameras.append(Camera(f"00_{node:02d}", K, dist, R, -R @ position))
    return cameras


def undistortion_map(camera: Camera, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) float32: for every pixel of the distorted image, where it lies in the pinhole
    image (the inverse of the lens distortion)."""
    height, width = size
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    points = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-9)
    pinhole = cv2.undistortPoints(points, camera.K, camera.dist, None, camera.K, criteria=criteria)
    return pinhole.reshape(height, width, 2).astype(np.float32)


def distorted_image(image: np.ndarray, grid: np.ndarray, nearest: bool = False) -> np.ndarray:
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(
        image, grid[..., 0], grid[..., 1], interpolation, borderMode=cv2.BORDER_REFLECT
    )


def generate_sequence(
    renderer: SceneRenderer, rng: np.random.Generator, name: str, frames: int, max_people: int,
    progress: Callable[[int], object],
) -> SequenceSample:  # fmt: skip
    cameras = dome_cameras(rng)

    def start(rng: np.random.Generator) -> np.ndarray:
        radius, angle = STAGE_RADIUS * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        return np.array([radius * np.cos(angle), radius * np.sin(angle)])

    def step(rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-0.3, 0.3, 2) / max(frames - 1, 1)

    count = int(rng.integers(2, max_people + 1))
    people = walkers(renderer, rng, count, frames, start, step)
    joints = np.stack(
        [renderer.pose(p).keypoints[:, canonical_indices("panoptic_19")] for p in people]
    )
    images, instance_maps = {}, {}
    hidden = np.zeros(joints.shape[:3], bool)
    for camera in (c for c in cameras if c.name in RENDERED_CAMERAS):
        seen = [seen_from(renderer, p, camera.R, camera.t) for p in people]
        rendered = renderer.render(seen, camera.K, IMAGE_SIZE, rng)
        grid = undistortion_map(camera, IMAGE_SIZE)
        images[camera.name] = np.stack([distorted_image(im, grid) for im in rendered.images])
        instance_maps[camera.name] = np.stack(
            [distorted_image(m, grid, nearest=True) for m in rendered.instance_map]
        )
        for k in range(len(people)):
            uv = rendered.keypoints2d(k, camera.K)[:, canonical_indices("panoptic_19")]
            hidden[k] |= hidden_by_others(uv, rendered.instance_map, k)
        progress(frames)
    confidence = np.where(hidden, HIDDEN_CONFIDENCE, 1.0)
    frame_numbers = [FRAME_STEP * t for t in range(frames)]
    return SequenceSample(name, cameras, frame_numbers, joints, confidence, images, instance_maps)


def generate(
    renderer: SceneRenderer, rng: np.random.Generator, counts: dict[str, int],
    progress: Callable[[int], object] = lambda n: None,
) -> Iterator[SequenceSample]:  # fmt: skip
    for name in SEQUENCES[: counts["sequences"]]:
        yield generate_sequence(renderer, rng, name, counts["frames"], counts["people"], progress)


def calibration(sequence: SequenceSample) -> dict:
    return {
        "calibDataSource": f"synthetic_{sequence.name}",
        "cameras": [
            {"name": c.name, "type": "hd", "resolution": [IMAGE_SIZE[1], IMAGE_SIZE[0]],
             "panel": 0, "node": int(c.name[3:]), "K": c.K.tolist(), "distCoef": c.dist.tolist(),
             "R": c.R.tolist(), "t": (100.0 * c.t).reshape(3, 1).tolist()}
            for c in sequence.cameras
        ],
    }  # fmt: skip


def skeleton(sequence: SequenceSample, t: int) -> dict:
    bodies = []
    for k in range(sequence.joints.shape[0]):
        values = np.column_stack([100.0 * sequence.joints[k, t], sequence.confidence[k, t]])
        bodies.append({"id": k, "joints19": values.reshape(-1).tolist()})
    return {"version": 0.7, "univTime": float(t), "fpsType": "hd_29_97", "bodies": bodies}


def write(
    dataset_dir: Path,
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object],
) -> dict[str, int]:
    """Write the world (module docstring); returns the number of records of each split."""
    dataset_dir = Path(dataset_dir)
    images = 0
    for sequence in generate(renderer, rng, counts, progress):
        folder = dataset_dir / sequence.name
        for t, frame in enumerate(sequence.frames):
            path = folder / "hdPose3d_stage1_coco19" / f"body3DScene_{frame:08d}.json"
            write_text(path, json.dumps(skeleton(sequence, t)))
            for camera, frames in sequence.images.items():
                write_image(folder / "hdImgs" / camera / f"{camera}_{frame:08d}.jpg", frames[t])
                images += 1
        write_text(folder / f"calibration_{sequence.name}.json", json.dumps(calibration(sequence)))
    return {"all": images, "zanfir": images}
