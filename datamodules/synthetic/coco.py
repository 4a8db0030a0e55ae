"""Synthetic COCO person keypoints with EFT fits in the native layout (datasets.md 3,
`datamodules.coco`).

    coco/annotations/person_keypoints_train2014.json    images COCO_train2014_%012d.jpg
    coco/annotations/person_keypoints_val2017.json      images %012d.jpg
    coco/train2014/, coco/val2017/                       JPEG images (quality 90)
    coco/eft/COCO2014-All-ver01.json                     EFT fits of train2014's people

Images. 640 x 480 or 640 x 427, 1 to 4 neutral-gender people from the prior standing on a
ground plane 1.4 to 1.8 m below the camera at 3 to 12 m, as a group around one direction
(`datamodules.synthetic.ground.walkers`: never interpenetrating, often overlapping in the
image), textures, procedural background, an occluder
on some images. COCO has no camera, so the world renders with the reader's default intrinsics
(`datamodules.coco.default_intrinsics`), which makes the EFT fits' placement exact on read.

Annotations, as COCO's annotators would give them:
- `segmentation`: each person's visible silhouette, as polygons traced along pixel edges
  (pycocotools rasterises those back exactly); a silhouette with a hole (someone in front of
  the middle of the body), which COCO polygons cannot hold, is written as uncompressed RLE,
  which the format also allows, so masks round-trip exactly. A person with no visible pixel
  is not annotated.
- `keypoints`: the 17 COCO keypoints projected and rounded to pixel indices; v = 2 where the
  person's own silhouette covers the pixel, 1 where someone else hides it, 0 (x = y = 0)
  outside the image.
- `bbox` [x, y, w, h] = the silhouette's pixel-edge box; `area` its pixel count.
- Quirks of the real files: some people are annotated with a mask but no keypoint
  (`num_keypoints` 0, `UNLABELLED_PROBABILITY`), and on some images with three or more people
  the farthest is a crowd region (`iscrowd` 1, compressed-string RLE, no keypoints).
- EFT (train2014 only, people with at least `EFT_MIN_KEYPOINTS` labelled keypoints, as EFT's
  COCO2014-All set): `parm_pose` the 24 rotation matrices of the ground-truth pose,
  `parm_shape` the betas, `bbox_center` the COCO box centre, `bbox_scale` 1.2 x the box's longer
  side / 200 (SPIN's), and `parm_cam` [s, tx, ty] with the root orientation seen by the crop
  camera, such that the reader's crop-to-full conversion returns the ground truth (`eft_fit`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

from body.joint_sets import canonical_indices
from datamodules.coco import default_intrinsics, ray_alignment
from datamodules.io import write_image, write_text
from datamodules.synthetic.ground import PlacementError, walkers
from datamodules.synthetic.render import Frames, SceneRenderer
from geometry.cameras import world_to_camera_smpl
from geometry.rotations import axis_angle_to_matrix

SPLITS = ("train2014", "val2017")
SIZES = {
    "tiny": {"train2014": 3, "val2017": 2},
    "ci": {"train2014": 80, "val2017": 30},
    "small": {"train2014": 300, "val2017": 100},
    "full": {"train2014": 4000, "val2017": 1000},
}
IMAGE_SIZES = ((480, 640), (427, 640))
PEOPLE = (1, 4)
DEPTHS = (3.0, 12.0)
CAMERA_HEIGHTS = (1.4, 1.8)
GROUP_SPREAD_M = 0.8
OCCLUDER_PROBABILITY = 0.3
UNLABELLED_PROBABILITY = 0.1
CROWD_PROBABILITY = 0.3
EFT_MIN_KEYPOINTS = 6
EFT_FILE = "COCO2014-All-ver01.json"
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
            [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6],
            [5, 7]]  # fmt: skip
COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
              "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
              "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
              "right_ankle")  # fmt: skip


@dataclass
class Annotated:
    """One annotated person: the COCO annotation and the ground truth behind it."""

    annotation: dict
    render_index: int  # k + 1 in the renderer's instance map
    pose: np.ndarray  # (72,) camera frame
    betas: np.ndarray
    transl: np.ndarray
    root_joint: np.ndarray  # J0 of the shaped rest body


@dataclass
class Sample:
    """One image of a split with its annotations."""

    split: str
    image_id: int
    file_name: str
    image: np.ndarray
    K: np.ndarray
    people: list[Annotated]
    instance_map: np.ndarray  # the renderer's: render_index of the visible person
    part_segm: np.ndarray  # the renderer's part labels (default K)


def file_name(split: str, image_id: int) -> str:
    return f"COCO_{split}_{image_id:012d}.jpg" if split.endswith("2014") else f"{image_id:012d}.jpg"


def pixel_edge_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer boundaries of a mask's components as COCO polygons through points between inside
    and outside pixel centres (the contour of the 2x upsampled mask), which pycocotools
    rasterises back to the same pixels for hole-free masks."""
    upsampled = np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1).astype(np.uint8)
    contours, _ = cv2.findContours(upsampled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        points = (contour.reshape(-1, 2).astype(np.float64) + 0.5) / 2.0
        if len(points) >= 3:
            polygons.append([round(float(v), 4) for v in points.reshape(-1)])
    return polygons


def encode_segmentation(mask: np.ndarray) -> list | dict:
    """Polygons when they rasterise back exactly, else uncompressed RLE (module docstring)."""
    height, width = mask.shape
    polygons = pixel_edge_polygons(mask)
    if polygons:
        decoded = mask_utils.decode(
            mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        )
        if np.array_equal(decoded.astype(bool), mask):
            return polygons
    return uncompressed_rle(mask)


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's list-valued RLE: run lengths over the column-major pixels, starting with 0s."""
    flat = mask.flatten(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return {"counts": ([0] if flat[0] else []) + runs, "size": list(mask.shape)}


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": rle["counts"].decode(), "size": list(mask.shape)}


def eft_fit(person: Annotated, K: np.ndarray) -> dict:
    """The EFT fields of a person: the inverse of `datamodules.coco.crop_to_full`, so the reader
    returns the ground truth (module docstring)."""
    x, y, w, h = person.annotation["bbox"]
    center = np.array([x + w / 2, y + h / 2])
    scale = 1.2 * max(w, h) / 200.0
    rotation = ray_alignment(K, center - 0.5)
    root, transl = world_to_camera_smpl(
        torch.as_tensor(person.pose[:3]), torch.as_tensor(person.transl),
        torch.as_tensor(person.root_joint), torch.as_tensor(rotation),
        torch.zeros(3, dtype=torch.float64),
    )  # fmt: skip
    pose = person.pose.copy()
    pose[:3] = root.numpy()
    s = 2.0 * K[0, 0] / (200.0 * scale * float(transl[2]))
    rotations = axis_angle_to_matrix(torch.as_tensor(pose).reshape(24, 3)).numpy()
    return {
        "parm_pose": rotations.tolist(), "parm_shape": person.betas.tolist(),
        "parm_cam": [s, float(transl[0]), float(transl[1])],
        "bbox_center": center.tolist(), "bbox_scale": scale,
    }  # fmt: skip


def _keypoints(frames: Frames, person: int, K: np.ndarray) -> list[int]:
    """51 numbers: x, y, v of the 17 COCO keypoints (module docstring)."""
    height, width = frames.instance_map.shape[1:]
    uv = frames.keypoints2d(person, K)[0][canonical_indices("coco_17")]
    values = []
    for u, v in np.rint(uv).astype(int):
        if not (0 <= u < width and 0 <= v < height):
            values += [0, 0, 0]
        else:
            visible = frames.instance_map[0, v, u] == person + 1
            values += [int(u), int(v), 2 if visible else 1]
    return values


def _box(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    x0, y0 = float(cols.min()), float(rows.min())
    return [x0, y0, float(cols.max() + 1) - x0, float(rows.max() + 1) - y0]


def _crowd_fields(mask: np.ndarray) -> dict:
    return {"iscrowd": 1, "segmentation": compressed_rle(mask), "keypoints": [0] * 51,
            "num_keypoints": 0}  # fmt: skip


def _person_fields(
    frames: Frames, person: int, K: np.ndarray, mask: np.ndarray, unlabelled: bool
) -> dict:
    keypoints = [0] * 51 if unlabelled else _keypoints(frames, person, K)
    labelled = sum(v > 0 for v in keypoints[2::3])
    return {"iscrowd": 0, "segmentation": encode_segmentation(mask), "keypoints": keypoints,
            "num_keypoints": labelled}  # fmt: skip


def render_sample(
    renderer: SceneRenderer,
    rng: np.random.Generator,
    split: str,
    image_id: int,
    next_id: Callable[[], int],
) -> Sample:
    image_size = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
    K = default_intrinsics(image_size[1], image_size[0])
    camera_height = rng.uniform(*CAMERA_HEIGHTS)

    group = rng.uniform(-0.5, 0.5)  # the group's direction, as a fraction of the half view

    def start(rng: np.random.Generator) -> np.ndarray:
        """(x, z) on the floor: people stand as a group, so they often overlap in the image."""
        depth = rng.uniform(*DEPTHS)
        x = group * depth * (image_size[1] / 2) / K[0, 0] + rng.normal(0.0, GROUP_SPREAD_M)
        return np.array([x, depth])

    while True:
        count = int(rng.integers(PEOPLE[0], PEOPLE[1] + 1))
        try:
            people = walkers(renderer, rng, count, 1, start, lambda rng: np.zeros(2))
            break
        except PlacementError:
            continue
    for person in people:  # the floor is camera_height below the camera (y down)
        person.transl = person.transl + np.array([0.0, camera_height, 0.0])
    occluders = int(rng.uniform() < OCCLUDER_PROBABILITY)
    frames = renderer.render(people, K, image_size, rng, occluders=occluders)
    farthest = int(np.argmax([p.transl[0, 2] for p in people]))
    crowd = len(people) >= 3 and rng.uniform() < CROWD_PROBABILITY
    annotated = []
    for k, person in enumerate(people):
        mask = frames.instance_map[0] == k + 1
        if not mask.any():
            continue
        annotation = {"id": next_id(), "image_id": image_id, "category_id": 1,
                      "area": float(mask.sum()), "bbox": _box(mask)}  # fmt: skip
        if crowd and k == farthest:
            annotation.update(_crowd_fields(mask))
        else:
            unlabelled = k > 0 and rng.uniform() < UNLABELLED_PROBABILITY
            annotation.update(_person_fields(frames, k, K, mask, unlabelled))
        root_joint = renderer.root_offset(person)[0]  # J0: the root does not move with pose
        truth = (person.pose[0], person.betas, person.transl[0], root_joint)
        annotated.append(Annotated(annotation, k + 1, *truth))
    return Sample(split, image_id, file_name(split, image_id), frames.images[0], K, annotated,
                  frames.instance_map[0], frames.part_segm[0])  # fmt: skip


def generate(
    renderer: SceneRenderer, rng: np.random.Generator, counts: dict[str, int]
) -> Iterator[Sample]:
    """Every image of the world in split then id order (what `write` writes, same rng)."""
    annotation_ids = iter(range(1, 10**9))
    image_id = 0
    for split in SPLITS:
        for _ in range(counts.get(split, 0)):
            image_id += 1
            yield render_sample(renderer, rng, split, image_id, lambda: next(annotation_ids))


def eft_sample(person: Annotated, K: np.ndarray, file: str) -> dict:
    return {
        **eft_fit(person, K), "annotId": person.annotation["id"], "imageName": file,
        "smpltype": "smpl", "joint_validity_openpose18": [1] * 18,
    }  # fmt: skip


def write(
    dataset_dir: Path,
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object],
) -> dict[str, int]:
    """Write the world (module docstring); returns the number of images of every split."""
    dataset_dir = Path(dataset_dir)
    files: dict[str, dict[str, list]] = {s: {"images": [], "annotations": []} for s in SPLITS}
    fits = []
    for sample in generate(renderer, rng, counts):
        write_image(dataset_dir / sample.split / sample.file_name, sample.image, quality=90)
        height, width = sample.image.shape[:2]
        files[sample.split]["images"].append(
            {
                "id": sample.image_id,
                "file_name": sample.file_name,
                "width": width,
                "height": height,
                "license": 1,
            }
        )
        for person in sample.people:
            files[sample.split]["annotations"].append(person.annotation)
            labelled = person.annotation["num_keypoints"]
            if sample.split == "train2014" and labelled >= EFT_MIN_KEYPOINTS:
                fits.append(eft_sample(person, sample.K, sample.file_name))
        progress(1)
    for split, content in files.items():
        document = {
            "info": {"description": "synthetic COCO-format person keypoints", "year": 2026},
            "licenses": [{"id": 1, "name": "synthetic", "url": ""}],
            "categories": [
                {
                    "supercategory": "person",
                    "id": 1,
                    "name": "person",
                    "keypoints": list(COCO_NAMES),
                    "skeleton": SKELETON,
                }
            ],
            **content,
        }
        path = dataset_dir / "annotations" / f"person_keypoints_{split}.json"
        write_text(path, json.dumps(document))
    write_text(dataset_dir / "eft" / EFT_FILE, json.dumps({"ver": "synthetic", "data": fits}))
    written = {split: len(files[split]["images"]) for split in SPLITS}
    written["train2014_eft"] = len({f["annotId"] for f in fits})
    return written
