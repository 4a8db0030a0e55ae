"""Synthetic 3DPW: sequence pickles and JPEG frames in the native layout (datasets.md 4.1, 4.2).

    3dpw/imageFiles/<sequence>/image_%05d.jpg
    3dpw/sequenceFiles/{train,validation,test}/<sequence>.pkl

Sequence files hold exactly the real files' keys, types and shapes (datasets.md 4.2), including
the quirks (`genders`, `poses2d`), written as protocol-2 pickles with numpy's legacy global
names (`body.safe_pickle.dumps_legacy_pickle`), so they load under numpy 1 and 2 (an array's
raw bytes travel as `_codecs.encode`, Python 3's protocol-2 spelling, which Python 2 loads
too). `SIZES` counts sequences per folder (`train`, `validation`, `test`), frames per sequence
of each folder (`<folder>_frames`) and the image `height` and `width`. Sequence names, splits
and actor counts are the real ones (`datamodules.pw3d.REAL_SEQUENCES`), taken in the order of
`SEQUENCE_ORDER`, so every named split of the reader is non-empty in every size: 3DPW-OCC
sequences in train, validation and test, the 3DPW-PC sequence `courtyard_dancing_00` (first of
validation, at least `PC_MIN_FRAMES` frames so that its range [60, 370) meets it) and test
sequences of PARE's list.

World and motion. World frame: y up, ground plane y = 0, metres. Actors stand on the ground
(their lowest joint `GROUND_CLEARANCE` above it) and drift at walking speed; a second actor
stands beside or behind the first (as seen from the camera). Poses come from the prior
(`sample_pose_sequence`, whose upright camera-frame root is turned into the y-up world). The
camera is a hand-held phone that follows the actors: it orbits their mean pelvis slowly at 3.5
to 5.5 m and 1.0 to 1.7 m height, with a small sway and roll; `cam_poses` are world->camera
(X_cam = R X + t). Each actor is rendered in the camera frame (SMPL moved with
`geometry.world_to_camera_smpl` and the body model's rest root joint); `jointPositions` are the
rendered joints moved back to the world.

Images. Real frames are 1080x1920 portrait JPEGs; these are smaller (`height` x `width` of the
size, portrait), with the intrinsics scaled to them (fx around 1962 px at width 1080, principal
point at the image centre): the format allows it because the intrinsics travel with the data.
Textures, backgrounds and occluders come from `SceneRenderer` (an occluder on about 30 % of the
sequences). A sequence renders in chunks of `CHUNK_FRAMES` frames under one light.

Annotations that real files get from sensors or OpenPose are simulated:
- `poses2d`: the openpose_18 keypoints of the rendered body projected with K, plus pixel noise;
  confidence 0.5..0.95 where the actor's own pixel is seen, 0.05..0.35 where another body
  covers it, 0 (with x = y = 0) outside the image; a frame with fewer than 6 keypoints in the
  image, about 10 % of random frames and one forced frame per actor are all zeros (OpenPose
  missed the person), which the `challenge` split drops;
- `campose_valid`: 1 except the first ceil(N / 10) frames of the second actor, and, when
  N >= 10, ceil(N / 20) frames of every actor from frame N // 2 on (camera alignment lost);
- `poses_60Hz` / `trans_60Hz`: 2N rows, the 30 Hz frames at even rows (`img_frame_ids` =
  0, 2, 4, ...) and rotations slerped (translations averaged) half-way between them at odd rows;
- `betas_clothed` = betas plus N(0, 0.05); `v_template_clothed` = the body model's template of
  the actor's gender; `texture_maps` = [].

Before writing into a synthetic root (one with `SYNTHETIC.json`), the `sequenceFiles/` and
`imageFiles/` of the earlier run are removed, so no stale sequence or frame survives; a folder
without `SYNTHETIC.json` beside it (possibly real data) is only written into.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from body.joint_sets import canonical_indices
from body.safe_pickle import dumps_legacy_pickle
from datamodules.base import SYNTHETIC_FILE
from datamodules.io import write_bytes, write_image
from datamodules.pw3d import (
    FOLDERS,
    REAL_SEQUENCES,
    SPLIT_FOLDERS,
    SequenceIndex,
    camera_smpl,
    select_frames,
)
from datamodules.synthetic.prior import sample_betas, sample_pose_sequence
from datamodules.synthetic.render import (
    Person,
    SceneRenderer,
    procedural_background,
    random_lighting,
)
from geometry.cameras import project_points

SIZES: dict[str, dict[str, int]] = {
    "tiny": {"train": 2, "validation": 1, "test": 2, "train_frames": 3, "validation_frames": 3,
             "test_frames": 3, "height": 96, "width": 54},
    "ci": {"train": 20, "validation": 1, "test": 6, "train_frames": 32, "validation_frames": 100,
           "test_frames": 40, "height": 480, "width": 270},
    "small": {"train": 16, "validation": 2, "test": 6, "train_frames": 94,
              "validation_frames": 100, "test_frames": 84, "height": 480, "width": 270},
    "full": {"train": 24, "validation": 12, "test": 24, "train_frames": 300,
             "validation_frames": 200, "test_frames": 300, "height": 480, "width": 270},
}  # fmt: skip
PC_SEQUENCE = "courtyard_dancing_00"
PC_MIN_FRAMES = 64
CHUNK_FRAMES = 50
GROUND_CLEARANCE = 0.05
OCCLUDER_PROBABILITY = 0.3
REAL_WIDTH, REAL_FOCAL = 1080.0, (1961.9, 1969.2)
# Preferred sequences first (OCC, PC, two-actor and PARE test names), then the rest by name.
_PREFERRED = {
    "train": ("courtyard_backpack_00", "courtyard_arguing_00", "courtyard_box_00",
              "courtyard_capoeira_00", "courtyard_golf_00", "courtyard_rangeOfMotions_00",
              "outdoors_climbing_00", "courtyard_shakeHands_00"),
    "validation": (PC_SEQUENCE, "outdoors_parcours_01"),
    "test": ("downtown_walking_00", "downtown_stairs_00", "flat_guitar_01",
             "downtown_arguing_00", "flat_packBags_00", "downtown_sitOnStairs_00"),
}  # fmt: skip
SEQUENCE_ORDER = {
    folder: list(_PREFERRED[folder]) + sorted(set(REAL_SEQUENCES[folder]) - set(_PREFERRED[folder]))
    for folder in FOLDERS
}
_FLIP = np.diag([1.0, -1.0, -1.0])  # camera-style upright (y down) <-> world upright (y up)
_OPENPOSE_18 = canonical_indices("openpose_18")


@dataclass
class GeneratedSequence:
    """One synthetic sequence: the pickle's content and what the renderer produced.

    data: the sequence-file dict; images (N, H, W, 3) uint8; part_segm, instance_map
    (N, H, W) uint8 (all actors); camera_people: the actors in the camera frame (pose (N, 72),
    transl (N, 3)); camera_joints (P, N, 24, 3) rendered SMPL joints, camera frame.
    """

    name: str
    folder: str
    data: dict
    images: np.ndarray
    part_segm: np.ndarray
    instance_map: np.ndarray
    camera_people: list[Person]
    camera_joints: np.ndarray


# ----------------------------------------------------------------------------------------------
# what to write


def plan(counts: dict[str, int]) -> list[tuple[str, str, int]]:
    """(sequence, folder, frames) of every sequence of a size, in writing order."""
    sequences = []
    for folder in FOLDERS:
        number = counts[folder]
        if number > len(SEQUENCE_ORDER[folder]):
            raise ValueError(
                f"3DPW has {len(SEQUENCE_ORDER[folder])} {folder} sequences; asked for {number}"
            )
        for name in SEQUENCE_ORDER[folder][:number]:
            frames = counts[f"{folder}_frames"]
            if name == PC_SEQUENCE:
                frames = max(frames, PC_MIN_FRAMES)
            sequences.append((name, folder, frames))
    return sequences


def generate(
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object] = lambda n: None,
) -> Iterator[GeneratedSequence]:
    """Every sequence of `plan(counts)`, generated in order from `rng` (deterministic)."""
    image_size = (counts["height"], counts["width"])
    for name, folder, frames in plan(counts):
        actors = REAL_SEQUENCES[folder][name][0]
        yield generate_sequence(renderer, rng, name, folder, actors, frames, image_size, progress)


def write(
    dataset_dir: Path,
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object],
) -> dict[str, int]:
    """Write the sequences of `counts`; return the number of records of every named split."""
    dataset_dir = Path(dataset_dir)
    plan(counts)  # refuse bad counts before deleting anything
    if (dataset_dir.parent / SYNTHETIC_FILE).is_file():
        _remove_earlier_run(dataset_dir)
    indexes = []
    for sequence in generate(renderer, rng, counts, progress):
        write_sequence(dataset_dir, sequence)
        indexes.append(sequence_index(sequence))
    return split_counts(indexes)


def split_counts(indexes: list[SequenceIndex]) -> dict[str, int]:
    """Records per named split of the reader, for these sequences."""
    indexes = sorted(indexes, key=lambda index: index.name)
    return {
        split: len(select_frames(split, [i for i in indexes if i.folder in folders]))
        for split, folders in SPLIT_FOLDERS.items()
    }


def sequence_index(sequence: GeneratedSequence) -> SequenceIndex:
    data = sequence.data
    detected = np.stack([np.abs(p).sum(axis=(1, 2)) > 0 for p in data["poses2d"]])
    return SequenceIndex(sequence.name, sequence.folder, np.stack(data["campose_valid"]) > 0,
                         detected)  # fmt: skip


def _remove_earlier_run(dataset_dir: Path) -> None:
    """Delete the sequence files and image folders an earlier synthetic run wrote."""
    for folder in ("sequenceFiles", "imageFiles"):
        if (dataset_dir / folder).is_dir():
            shutil.rmtree(dataset_dir / folder)


def write_sequence(dataset_dir: Path, sequence: GeneratedSequence) -> None:
    """Images first, then the sequence file (a sequence file means its images are complete)."""
    image_dir = Path(dataset_dir) / "imageFiles" / sequence.name
    for frame, image in enumerate(sequence.images):
        write_image(image_dir / f"image_{frame:05d}.jpg", image)
    path = Path(dataset_dir) / "sequenceFiles" / sequence.folder / f"{sequence.name}.pkl"
    write_bytes(path, dumps_legacy_pickle(sequence.data))


# ----------------------------------------------------------------------------------------------
# one sequence


def generate_sequence(
    renderer: SceneRenderer,
    rng: np.random.Generator,
    name: str,
    folder: str,
    actors: int,
    frames: int,
    image_size: tuple[int, int],
    progress: Callable[[int], object] = lambda n: None,
) -> GeneratedSequence:
    """Generate and render one sequence (module docstring)."""
    K = intrinsics(rng, image_size)
    genders = [("m", "f")[int(rng.integers(2))] for _ in range(actors)]
    betas = [sample_betas(rng) for _ in range(actors)]
    poses = [world_poses(rng, frames) for _ in range(actors)]
    trans, pelvis = place_actors(renderer, rng, poses, betas, genders)
    cam_poses = follow_camera(rng, pelvis)
    people = [
        camera_person(renderer, rng, pose, beta, shift, gender, cam_poses)
        for pose, beta, shift, gender in zip(poses, betas, trans, genders, strict=True)
    ]
    occluders = int(rng.uniform() < OCCLUDER_PROBABILITY)
    images, part_segm, instance_map, joints, keypoints = render_chunks(
        renderer, rng, people, K, image_size, occluders, progress
    )
    world_joints = [camera_to_world(actor_joints, cam_poses) for actor_joints in joints]
    detections = [
        openpose_detections(rng, keypoints[k], instance_map, k, K, image_size)
        for k in range(actors)
    ]
    data = {
        "sequence": name,
        "genders": genders,
        "betas": betas,
        "betas_clothed": [b + rng.normal(0.0, 0.05, size=10) for b in betas],
        "v_template_clothed": [_template(renderer, g) for g in genders],
        "poses": poses,
        "trans": trans,
        "poses_60Hz": [upsample_poses(p) for p in poses],
        "trans_60Hz": [upsample_translations(t) for t in trans],
        "img_frame_ids": (2 * np.arange(frames)).astype(np.uint16),
        "jointPositions": [j.reshape(frames, 72) for j in world_joints],
        "poses2d": detections,
        "cam_poses": cam_poses,
        "cam_intrinsics": K,
        "campose_valid": campose_valid(actors, frames),
        "texture_maps": [],
    }
    return GeneratedSequence(name, folder, data, images, part_segm, instance_map, people,
                             np.stack(joints))  # fmt: skip


def intrinsics(rng: np.random.Generator, image_size: tuple[int, int]) -> np.ndarray:
    """(3, 3) phone intrinsics scaled from the real 1080-px-wide frames to `image_size`."""
    height, width = image_size
    scale = width / REAL_WIDTH * rng.uniform(0.98, 1.02)
    return np.array(
        [
            [REAL_FOCAL[0] * scale, 0.0, width / 2.0],
            [0.0, REAL_FOCAL[1] * scale, height / 2.0],
            [0.0, 0.0, 1.0],
        ]
    )


def world_poses(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(N, 72) prior poses with the root turned from the camera's y down to the world's y up."""
    poses = sample_pose_sequence(rng, frames)
    roots = Rotation.from_rotvec(poses[:, :3]).as_matrix()
    poses[:, :3] = Rotation.from_matrix(_FLIP @ roots).as_rotvec()
    return poses


def _pose_world(
    renderer: SceneRenderer, pose: np.ndarray, betas: np.ndarray, gender: str
) -> np.ndarray:
    """(N, 24, 3) world joints of an actor with zero trans, float64."""
    model = renderer.models[_model_gender(gender)]
    frames = pose.shape[0]
    with torch.no_grad():
        out = model(
            torch.as_tensor(pose, dtype=torch.float32),
            torch.as_tensor(np.tile(betas, (frames, 1)), dtype=torch.float32),
        )
    return out.joints.double().numpy()


def place_actors(
    renderer: SceneRenderer,
    rng: np.random.Generator,
    poses: list[np.ndarray],
    betas: list[np.ndarray],
    genders: list[str],
) -> tuple[list[np.ndarray], np.ndarray]:
    """(N, 3) world `trans` per actor, and the actors' (N, 3) mean world pelvis: pelvis on a
    straight walk, lowest joint on the ground; the second actor 0.5 to 0.9 m beside the first
    and up to 1.5 m further back."""
    frames = poses[0].shape[0]
    time = np.arange(frames)[:, None] / 30.0
    heading = rng.uniform(-np.pi, np.pi)
    speed = rng.uniform(0.0, 0.5)
    walk = speed * time * np.array([np.cos(heading), 0.0, np.sin(heading)])
    trans, pelvis = [], []
    for k, (pose, beta, gender) in enumerate(zip(poses, betas, genders, strict=True)):
        start = np.zeros(3)
        if k > 0:
            side = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 0.9)
            start = np.array([side, 0.0, rng.uniform(0.0, 1.5)])  # the camera is on the -z side
        joints = _pose_world(renderer, pose, beta, gender)
        shift = start + walk - joints[:, 0] * np.array([1.0, 0.0, 1.0])
        shift[:, 1] = GROUND_CLEARANCE - joints[:, :, 1].min(axis=1)
        trans.append(shift)
        pelvis.append(joints[:, 0] + shift)
    return trans, np.mean(pelvis, axis=0)


def follow_camera(rng: np.random.Generator, pelvis: np.ndarray) -> np.ndarray:
    """(N, 4, 4) world->camera extrinsics of a hand-held camera following the actors' mean
    pelvis (N, 3): it stands on their -z side (looking along +z within +-0.4 rad), orbits
    slowly, sways a few centimetres and rolls slightly."""
    frames = pelvis.shape[0]
    time = np.arange(frames) / 30.0
    azimuth = rng.uniform(-0.4, 0.4) + rng.uniform(-0.12, 0.12) * time
    distance = rng.uniform(3.5, 5.5) + 0.2 * np.sin(rng.uniform(0.2, 0.6) * time)
    height = rng.uniform(1.0, 1.7) + 0.03 * np.sin(rng.uniform(0.5, 1.5) * time)
    centre = pelvis * np.array([1.0, 0.0, 1.0]) + np.stack(
        [distance * np.sin(azimuth), height, -distance * np.cos(azimuth)], axis=1
    )
    sway = 0.04 * np.sin(np.outer(time, rng.uniform(0.3, 1.0, 3)) + rng.uniform(0, 6, 3))
    roll = rng.uniform(-0.03, 0.03) * np.sin(rng.uniform(0.3, 1.0) * time)
    views = zip(centre, pelvis + sway, roll, strict=True)
    return np.stack([look_at(c, target, r) for c, target, r in views])


def look_at(centre: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """(4, 4) world->camera extrinsics (OpenCV axes) of a camera at `centre` looking at
    `target`, world up +y, rolled by `roll` radians about its optical axis."""
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    cos, sin = math.cos(roll), math.sin(roll)
    rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]]) @ rotation
    extrinsics = np.eye(4)
    extrinsics[:3, :3] = rotation
    extrinsics[:3, 3] = -rotation @ centre
    return extrinsics


def camera_to_world(joints: np.ndarray, cam_poses: np.ndarray) -> np.ndarray:
    """(N, J, 3) camera-frame points -> world with (N, 4, 4) extrinsics: X = R^T (X_cam - t)."""
    rotation, translation = cam_poses[:, :3, :3], cam_poses[:, :3, 3]
    return np.einsum("nkj,nji->nki", joints - translation[:, None], rotation)


def camera_person(
    renderer: SceneRenderer,
    rng: np.random.Generator,
    pose: np.ndarray,
    betas: np.ndarray,
    trans: np.ndarray,
    gender: str,
    cam_poses: np.ndarray,
) -> Person:
    """The actor in the camera frame of every frame (what the renderer draws)."""
    model = renderer.models[_model_gender(gender)]
    with torch.no_grad():
        root = model.rest_root_joint(torch.as_tensor(betas[None], dtype=torch.float32))
    root_joint = root[0].double().numpy()
    camera_pose, camera_transl = camera_smpl(pose, trans, root_joint, cam_poses)
    colors = renderer.random_colors(rng)
    return Person(camera_pose, betas, camera_transl, _model_gender(gender), colors)


def render_chunks(
    renderer: SceneRenderer,
    rng: np.random.Generator,
    people: list[Person],
    K: np.ndarray,
    image_size: tuple[int, int],
    occluders: int,
    progress: Callable[[int], object],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Render all frames in chunks: images, part_segm, instance_map (N, ...), and per actor
    the camera-frame SMPL joints (N, 24, 3) and canonical keypoints (N, K, 3)."""
    background = procedural_background(rng, image_size)
    lighting = random_lighting(rng)  # one light for the whole sequence
    frames = people[0].pose.shape[0]
    parts: list[list[np.ndarray]] = [[], [], [], [], []]
    for start in range(0, frames, CHUNK_FRAMES):
        span = slice(start, min(start + CHUNK_FRAMES, frames))
        chunk = [Person(p.pose[span], p.betas, p.transl[span], p.gender, p.colors) for p in people]
        out = renderer.render(chunk, K, image_size, rng, background, occluders, lighting)
        parts[0].append(out.images)
        parts[1].append(out.part_segm)
        parts[2].append(out.instance_map)
        parts[3].append(np.stack([posed.joints for posed in out.posed]))
        parts[4].append(np.stack([posed.keypoints for posed in out.posed]))
        progress(span.stop - span.start)
    images, part_segm, instance_map = (np.concatenate(p) for p in parts[:3])
    joints, keypoints = (list(np.concatenate(p, axis=1)) for p in parts[3:])
    return images, part_segm, instance_map, joints, keypoints


def openpose_detections(
    rng: np.random.Generator,
    keypoints: np.ndarray,
    instance_map: np.ndarray,
    actor: int,
    K: np.ndarray,
    image_size: tuple[int, int],
) -> np.ndarray:
    """(N, 3, 18) simulated `poses2d` of one actor from its (N, K, 3) canonical camera-frame
    keypoints (module docstring)."""
    height, width = image_size
    points = keypoints[:, _OPENPOSE_18]  # (N, 18, 3)
    pixels = project_points(torch.as_tensor(points), torch.as_tensor(K)).numpy()
    pixels = pixels + rng.normal(0.0, max(0.5, 4.0 * width / REAL_WIDTH), size=pixels.shape)
    cols, rows = np.rint(pixels[..., 0]).astype(int), np.rint(pixels[..., 1]).astype(int)
    inside = (points[..., 2] > 0) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    frame = np.broadcast_to(np.arange(len(points))[:, None], inside.shape)
    owner = instance_map[frame, rows.clip(0, height - 1), cols.clip(0, width - 1)]
    seen = rng.uniform(0.5, 0.95, size=inside.shape)
    hidden = rng.uniform(0.05, 0.35, size=inside.shape)
    confidence = np.where(owner == actor + 1, seen, hidden) * inside
    detections = np.concatenate([pixels * inside[..., None], confidence[..., None]], axis=2)
    missed = (inside.sum(axis=1) < 6) | (rng.uniform(size=len(points)) < 0.1)
    missed[rng.integers(len(points))] = True
    detections[missed] = 0.0
    return np.ascontiguousarray(detections.transpose(0, 2, 1))


def campose_valid(actors: int, frames: int) -> list[np.ndarray]:
    """(N,) uint8 per actor (module docstring)."""
    valid = np.ones((actors, frames), dtype=np.uint8)
    valid[1:, : math.ceil(frames / 10)] = 0
    if frames >= 10:
        valid[:, frames // 2 : frames // 2 + math.ceil(frames / 20)] = 0
    return list(valid)


def upsample_poses(poses: np.ndarray) -> np.ndarray:
    """(N, 72) 30 Hz axis-angle -> (2N, 72) 60 Hz: frames at even rows, slerp midpoints at odd
    rows (the last odd row repeats the last frame)."""
    frames = poses.shape[0]
    joints = poses.reshape(frames, 24, 3)
    result = np.repeat(joints, 2, axis=0)
    for joint in range(24):
        if frames > 1:
            rotations = Rotation.from_rotvec(joints[:, joint])
            midpoints = Slerp(np.arange(frames), rotations)(np.arange(frames - 1) + 0.5)
            result[1 : 2 * frames - 1 : 2, joint] = midpoints.as_rotvec()
    return result.reshape(2 * frames, 72)


def upsample_translations(trans: np.ndarray) -> np.ndarray:
    """(N, 3) -> (2N, 3): frames at even rows, midpoints at odd rows (last repeats)."""
    result = np.repeat(trans, 2, axis=0)
    result[1 : 2 * len(trans) - 1 : 2] = 0.5 * (trans[:-1] + trans[1:])
    return result


def _model_gender(code: str) -> str:
    return {"m": "male", "f": "female"}[code]


def _template(renderer: SceneRenderer, gender: str) -> np.ndarray:
    return renderer.models[_model_gender(gender)].smpl.v_template.double().numpy().copy()
