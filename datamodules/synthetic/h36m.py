"""Synthetic Human3.6M in the SPIN layout (datasets.md 7.2, 7.3): what `H36MReader` reads.

    h36m/images/<S>/<S>_<Action>.<cam>/<S>_<Action>.<cam>_%06d.jpg   extracted frames (JPEG)
    h36m/h36m_train.npz                 S1, S5, S6, S7, S8: imgname, center, scale, part, S,
                                        pose, shape, has_smpl, openpose
    h36m/h36m_valid_protocol1.npz       S9, S11, all 4 cameras: imgname, center, scale, part, S
    h36m/h36m_valid_protocol2.npz       the camera 60457274 rows of protocol 1, in its order
    h36m/cameras.h5                     Martinez 3d-pose-baseline camera file

A *recording* is one subject performing one action (named with Human3.6M's trial names,
`Directions_1`, `WalkDog`, `Greeting`, ...) seen by the four cameras at once: the subject moves
smoothly in the world frame (z up, metres; one body shape and one set of clothes per subject,
rendered with the neutral model because SPIN's files carry no gender), and each camera's view is
the same motion moved into that camera's frame (`geometry.world_to_camera_smpl`). SPIN keeps
every 5th video frame (frame index i with i % 5 == 0), named with the 1-based number i + 1, so the
kept frames are `_000001`, `_000006`, `_000011`, ... . `imgname` is the bare file name, as in the
real sample `samples/h36m/mmpose_test_h36m.npz` (SPIN's own files prefix `images/`; the reader
accepts both), and the frames sit in the sample's per-sequence folders.

Cameras. The four cameras keep their real intrinsics (f about 1145 px, c about (512, 508), from the
real `cameras.h5`) and their real resolutions (W x H: 54138969 and 60457274 1000 x 1002, the others
1000 x 1000) reduced by a factor 4 so that the world renders fast: sizes are rounded up to whole
pixels (1002 / 4 -> 251, 1000 / 4 -> 250), focal lengths divided by 4 and the principal point
mapped with pixel centres at integer coordinates, c' = (c + 0.5) / 4 - 0.5. The SPIN npz carries
no intrinsics (they come from the camera file), so the smaller images stay self-consistent.
Each (subject, camera) gets its own extrinsic placing the camera about 4.5-5.5 m from the capture
volume's centre, 1.4-1.7 m high, looking at it, at the real cameras' azimuths (plus jitter).
`cameras.h5` stores them as Martinez's file does: group `subject<N>/camera<1..4>` (cameras in the
order 54138969, 55011271, 58860488, 60457274) with float64 datasets `R` (3, 3) = the
world-to-camera rotation transposed, `T` (3, 1) the camera centre in world millimetres, `f`
(2, 1), `c` (2, 1), `k` (3, 1) and `p` (2, 1) zeros (the renderer is a pinhole camera: no lens
distortion), and `Name` (8, 1), the camera id's character codes as float64. The real file also
holds a top-level `3dtest` dataset (96 values, a test pose of Martinez's code) and the withheld
test subjects S2, S3, S4, S10; neither is written.

Annotations. `S` (24, 4) holds the 17 Human3.6M joints of SPIN's J24 (rows 0-12, 14, 16, 17,
18, validity 1; rows 13, 15, 19-23 zero with validity 0) in absolute camera-frame metres, as the
real sample stores them (datasets.md 7.3 "Correction"); they are the body model's canonical
`spin_24` keypoints, posed in float64. `part` (24, 3) is `S` projected with the camera's K
(validity copied). `center`/`scale` follow SPIN's h36m.py on the person's rendered silhouette:
box = [min x, min y, max x + 1, max y + 1] of its pixels, center = the box's midpoint,
scale = 0.9 x max(box side) / 200. Train rows add `pose` (72, camera-frame axis-angle),
`shape` (10), `has_smpl` (1.0) and `openpose` (25, 3) zeros; the protocol files carry no SMPL, as
SPIN's evaluation files do not. Every array is float64 like the real sample's; `imgname` is a
unicode array. Occluders are pasted on about 30% of the camera views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from body.joint_sets import JOINT_SETS, canonical_indices
from datamodules.base import BodyModels
from datamodules.io import atomic_path, savez, write_image
from datamodules.synthetic.prior import sample_betas, sample_pose_sequence
from datamodules.synthetic.render import Frames, Person, SceneRenderer, procedural_background
from geometry.cameras import world_to_camera_smpl, xyxy_to_center_scale

CAMERAS = ("54138969", "55011271", "58860488", "60457274")
SUBJECTS = {"train": ("S1", "S5", "S6", "S7", "S8"), "p1": ("S9", "S11")}
# Human3.6M's 15 actions (datasets.md 7.1); each has two trials, named as SPIN writes them
# (spaces -> underscores): `Directions_1` and `Directions`, ... (30 trial names per subject).
ACTIONS_15 = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases",
              "Sitting", "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog",
              "WalkTogether")  # fmt: skip
ACTIONS = tuple(f"{action}{trial}" for trial in ("_1", "") for action in ACTIONS_15)
# Full-size (H, W) per camera (datasets.md 7.1).
FULL_SIZE = {"54138969": (1002, 1000), "55011271": (1000, 1000),
             "58860488": (1000, 1000), "60457274": (1002, 1000)}  # fmt: skip
# The real cameras' (fx, fy, cx, cy) in full-size pixels (samples/h36m cameras.h5, rounded).
REAL_INTRINSICS = {"54138969": (1145.05, 1143.78, 512.54, 515.45),
                   "55011271": (1149.68, 1147.59, 508.85, 508.06),
                   "58860488": (1149.14, 1148.80, 519.82, 501.40),
                   "60457274": (1145.51, 1144.77, 514.97, 501.88)}  # fmt: skip
# Azimuths (radians, world frame) of the real S1 camera centres.
AZIMUTHS = {"54138969": 1.215, "55011271": -1.236, "58860488": 1.910, "60457274": -2.022}
REDUCTION = 4
FRAME_STEP = 5
# The J24 rows Human3.6M's 17 joints fill (datasets.md 7.3): all but these.
NOT_IN_H36M = ("lsp_head_top", "mpii_thorax", "nose", "left_eye", "right_eye", "left_ear",
               "right_ear")  # fmt: skip
J24_H36M_ROWS = tuple(
    row for row, name in enumerate(JOINT_SETS["spin_24"]) if name not in NOT_IN_H36M
)
MASK_BOX_FACTOR = 0.9
# The prior's upright camera frame (y down, z forward) -> the Human3.6M world (z up).
PRIOR_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
OCCLUDER_PROBABILITY = 0.3
JPEG_QUALITY = 95  # cv2.imwrite's default, with which SPIN extracted the real frames

# Recordings per split and kept frames per camera view (4 views per recording).
SIZES = {
    "tiny": {"train_recordings": 1, "train_frames": 3, "p1_recordings": 2, "p1_frames": 1},
    "ci": {"train_recordings": 24, "train_frames": 6, "p1_recordings": 5, "p1_frames": 10},
    "small": {"train_recordings": 25, "train_frames": 15, "p1_recordings": 5, "p1_frames": 15},
    "full": {"train_recordings": 100, "train_frames": 20, "p1_recordings": 20, "p1_frames": 20},
}
NPZ_FILES = {"train": "h36m_train.npz", "p1": "h36m_valid_protocol1.npz",
             "p2": "h36m_valid_protocol2.npz"}  # fmt: skip


@dataclass
class CameraParams:
    """One synthetic camera: world-to-camera R (3, 3), centre (3,) world metres, K (3, 3) of
    the reduced image, image size (H, W)."""

    R: np.ndarray
    centre: np.ndarray
    K: np.ndarray
    image_size: tuple[int, int]

    @property
    def t(self) -> np.ndarray:
        return -self.R @ self.centre


@dataclass
class View:
    """One camera's view of one recording: names, SMPL in the camera frame (T frames), the
    rendered frames and the SPIN rows written for them."""

    subject: str
    action: str
    camera: str
    frames: list[int]  # 1-based frame numbers
    person: Person
    rendered: Frames | None  # None once written, unless the caller keeps the pixels
    S: np.ndarray  # (T, 24, 4)
    part: np.ndarray  # (T, 24, 3)
    center: np.ndarray  # (T, 2)
    scale: np.ndarray  # (T,)

    @property
    def sequence(self) -> str:
        return f"{self.subject}_{self.action}.{self.camera}"

    def imgname(self, frame: int) -> str:
        return f"{self.sequence}_{frame:06d}.jpg"


def reduced_intrinsics(camera: str) -> tuple[np.ndarray, tuple[int, int]]:
    """(K (3, 3), (H, W)) of `camera` at 1/REDUCTION of the real size (module docstring)."""
    fx, fy, cx, cy = REAL_INTRINSICS[camera]
    height, width = (-(-side // REDUCTION) for side in FULL_SIZE[camera])
    K = np.array(
        [
            [fx / REDUCTION, 0.0, (cx + 0.5) / REDUCTION - 0.5],
            [0.0, fy / REDUCTION, (cy + 0.5) / REDUCTION - 0.5],
            [0.0, 0.0, 1.0],
        ]
    )
    return K, (height, width)


def look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) world-to-camera rotation (OpenCV axes) of a camera at `centre` looking at
    `target`, world z up: rows are the camera's right, down and forward axes."""
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward])


def sample_cameras(rng: np.random.Generator, subject: str) -> dict[str, CameraParams]:
    """The four cameras of one subject's sessions (module docstring)."""
    cameras = {}
    for camera in CAMERAS:
        azimuth = AZIMUTHS[camera] + rng.uniform(-0.1, 0.1)
        radius, height = rng.uniform(4.5, 5.5), rng.uniform(1.4, 1.7)
        centre = np.array([radius * np.cos(azimuth), radius * np.sin(azimuth), height])
        target = np.array([*rng.uniform(-0.2, 0.2, 2), rng.uniform(0.9, 1.1)])
        K, size = reduced_intrinsics(camera)
        cameras[camera] = CameraParams(look_at(centre, target), centre, K, size)
    return cameras


@dataclass
class Subject:
    """A subject's body (betas), clothes (per-vertex colours) and cameras."""

    name: str
    betas: np.ndarray
    colors: np.ndarray
    cameras: dict[str, CameraParams]


def world_motion(
    renderer: SceneRenderer, rng: np.random.Generator, subject: Subject, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """(pose (T, 72), transl (T, 3)) world-frame SMPL of one recording: an upright, smoothly
    moving body whose pelvis walks near the capture volume's centre about 0.95 m high."""
    pose = sample_pose_sequence(rng, num_frames)  # (T, 72), root upright in the prior's frame
    root = Rotation.from_rotvec(pose[:, :3]).as_matrix()  # (T, 3, 3)
    pose[:, :3] = Rotation.from_matrix(PRIOR_TO_WORLD @ root).as_rotvec()
    start = np.array([*rng.uniform(-0.4, 0.4, 2), 0.95])
    drift = np.array([*rng.uniform(-0.5, 0.5, 2), 0.0])
    pelvis = start + np.linspace(0.0, 1.0, num_frames)[:, None] * drift
    zero = Person(pose, subject.betas, np.zeros((num_frames, 3)), "neutral", subject.colors)
    return pose, pelvis - renderer.root_offset(zero)


def camera_person(
    models: BodyModels, subject: Subject, camera: CameraParams, pose: np.ndarray,
    transl: np.ndarray,
) -> Person:  # fmt: skip
    """The recording's world-frame body as seen by `camera` (camera-frame SMPL)."""
    root = np.broadcast_to(models.rest_root_joint(subject.betas, "neutral"), transl.shape)
    orient, transl_cam = world_to_camera_smpl(
        torch.as_tensor(pose[:, :3]),
        torch.as_tensor(transl),
        torch.as_tensor(root.copy()),
        torch.as_tensor(camera.R),
        torch.as_tensor(camera.t),
    )
    pose_cam = pose.copy()
    pose_cam[:, :3] = orient.numpy()
    return Person(pose_cam, subject.betas, transl_cam.numpy(), "neutral", subject.colors)


def spin_rows(models: BodyModels, person: Person, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S (T, 24, 4), part (T, 24, 3)): the 17 Human3.6M rows of J24 (module docstring)."""
    keypoints = models.keypoints(person.pose, person.betas, person.transl, "neutral")
    spin = keypoints[:, canonical_indices("spin_24")]  # (T, 24, 3) camera-frame metres
    rows = list(J24_H36M_ROWS)
    S = np.zeros((len(spin), len(JOINT_SETS["spin_24"]), 4))
    S[:, rows, :3], S[:, rows, 3] = spin[:, rows], 1.0
    projected = S[..., :3] @ K.T
    part = np.zeros((len(spin), len(JOINT_SETS["spin_24"]), 3))
    part[:, rows, :2] = projected[:, rows, :2] / projected[:, rows, 2:]
    part[:, rows, 2] = 1.0
    return S, part


def spin_box(person_mask: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, float]:
    """SPIN's (center (2,), scale) of a person's (H, W) bool mask (module docstring); from the
    keypoints `part` (24, 3) if the person is out of view."""
    rows, cols = np.nonzero(person_mask)
    if rows.size == 0:
        visible = part[part[:, 2] > 0, :2]
        cols, rows = visible[:, 0], visible[:, 1]
    box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)
    center, scale = xyxy_to_center_scale(torch.as_tensor(box), MASK_BOX_FACTOR)
    return center.numpy(), float(scale)


def render_view(
    renderer: SceneRenderer, models: BodyModels, rng: np.random.Generator, subject: Subject,
    action: str, camera: str, world: tuple[np.ndarray, np.ndarray], frames: list[int],
) -> View:  # fmt: skip
    """Render one camera's view of a recording and compute its SPIN rows."""
    params = subject.cameras[camera]
    person = camera_person(models, subject, params, *world)
    occluders = int(rng.uniform() < OCCLUDER_PROBABILITY)
    background = procedural_background(rng, params.image_size)
    rendered = renderer.render([person], params.K, params.image_size, rng, background, occluders)
    S, part = spin_rows(models, person, params.K)
    boxes = [
        spin_box(mask == 1, rows) for mask, rows in zip(rendered.instance_map, part, strict=True)
    ]
    center = np.stack([box[0] for box in boxes])
    scale = np.array([box[1] for box in boxes])
    return View(subject.name, action, camera, frames, person, rendered, S, part, center, scale)


def make_subjects(renderer: SceneRenderer, rng: np.random.Generator) -> dict[str, Subject]:
    """Every subject's body, clothes and cameras (all seven, whatever the size)."""
    subjects = {}
    for name in SUBJECTS["train"] + SUBJECTS["p1"]:
        betas = sample_betas(rng)
        subjects[name] = Subject(
            name, betas, renderer.random_colors(rng), sample_cameras(rng, name)
        )
    return subjects


def generate(
    renderer: SceneRenderer,
    rng: np.random.Generator,
    subjects: dict[str, Subject],
    counts: dict[str, int],
) -> Iterator[tuple[str, View]]:
    """(split, view) for every camera view of the world, train first, then protocol 1;
    recordings cycle through the split's subjects, then through the actions."""
    model_dir = renderer.models["neutral"].model_dir
    models = BodyModels(model_dir.parent, model_dir.name)  # float64 keypoints, own instances
    for split in ("train", "p1"):
        num_frames = counts[f"{split}_frames"]
        frames = [1 + FRAME_STEP * i for i in range(num_frames)]
        names = SUBJECTS[split]
        recordings = counts[f"{split}_recordings"]
        if not 1 <= recordings <= len(names) * len(ACTIONS) or num_frames < 1:
            raise ValueError(
                f"h36m: {split} needs 1 to {len(names) * len(ACTIONS)} recordings ({len(names)} "
                f"subjects x {len(ACTIONS)} trials) of at least 1 frame; got {recordings} x "
                f"{num_frames}"
            )
        for recording in range(recordings):
            subject = subjects[names[recording % len(names)]]
            action = ACTIONS[(recording // len(names)) % len(ACTIONS)]
            world = world_motion(renderer, rng, subject, num_frames)
            for camera in CAMERAS:
                view = render_view(renderer, models, rng, subject, action, camera, world, frames)
                yield split, view


def write_images(dataset_dir: Path, view: View) -> None:
    """The view's frames as JPEG in the sample's per-sequence folders."""
    folder = dataset_dir / "images" / view.subject / view.sequence
    assert view.rendered is not None
    for image, frame in zip(view.rendered.images, view.frames, strict=True):
        write_image(folder / view.imgname(frame), image, quality=JPEG_QUALITY)


def split_arrays(views: list[View], with_smpl: bool) -> dict[str, np.ndarray]:
    """The SPIN npz arrays of a split's views, rows in view then frame order."""
    arrays = {
        "imgname": np.array([v.imgname(f) for v in views for f in v.frames]),
        "center": np.concatenate([v.center for v in views]),
        "scale": np.concatenate([v.scale for v in views]),
        "part": np.concatenate([v.part for v in views]),
        "S": np.concatenate([v.S for v in views]),
    }
    if with_smpl:
        arrays["pose"] = np.concatenate([v.person.pose for v in views]).astype(np.float64)
        arrays["shape"] = np.concatenate([np.tile(v.person.betas, (len(v.frames), 1))
                                          for v in views]).astype(np.float64)  # fmt: skip
        arrays["has_smpl"] = np.ones(len(arrays["imgname"]))
        arrays["openpose"] = np.zeros((len(arrays["imgname"]), 25, 3))
    return arrays


def protocol2(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The camera 60457274 rows of protocol 1's arrays (SPIN's protocol 2), in order."""
    keep = np.array([f".{CAMERAS[3]}_" in name for name in arrays["imgname"]])
    return {key: value[keep] for key, value in arrays.items()}


def write_cameras(path: Path, subjects: dict[str, dict[str, CameraParams]]) -> None:
    """Martinez's `cameras.h5` (module docstring), atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for subject, cameras in subjects.items():
            for index, camera in enumerate(CAMERAS, start=1):
                params = cameras[camera]
                group = handle.create_group(f"subject{subject[1:]}/camera{index}")
                group["R"] = params.R.T
                group["T"] = params.centre.reshape(3, 1) * 1000.0
                group["f"] = np.array([[params.K[0, 0]], [params.K[1, 1]]])
                group["c"] = np.array([[params.K[0, 2]], [params.K[1, 2]]])
                group["k"] = np.zeros((3, 1))
                group["p"] = np.zeros((2, 1))
                group["Name"] = np.array([[float(ord(char))] for char in camera])


def write_with_truth(
    dataset_dir: Path,
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object] = lambda n: None,
    keep_pixels: bool = True,
) -> tuple[dict[str, int], dict[str, View]]:
    """Write the world (module docstring); return ({split: samples}, {imgname: view}), the
    views holding the renderer's ground truth (its frames only if `keep_pixels`)."""
    subjects = make_subjects(renderer, rng)
    views: dict[str, list[View]] = {"train": [], "p1": []}
    for split, view in generate(renderer, rng, subjects, counts):
        write_images(dataset_dir, view)
        progress(len(view.frames))
        if not keep_pixels:
            view.rendered = None
        views[split].append(view)
    write_cameras(dataset_dir / "cameras.h5", {s.name: s.cameras for s in subjects.values()})
    train = split_arrays(views["train"], with_smpl=True)
    p1 = split_arrays(views["p1"], with_smpl=False)
    arrays = {"train": train, "p1": p1, "p2": protocol2(p1)}
    for split, values in arrays.items():
        savez(dataset_dir / NPZ_FILES[split], **values)
    truth = {v.imgname(frame): v for split in views for v in views[split] for frame in v.frames}
    return {split: len(values["imgname"]) for split, values in arrays.items()}, truth


def write(
    dataset_dir: Path,
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object],
) -> dict[str, int]:
    """Write the synthetic Human3.6M world; return {split: number of samples}."""
    written, _ = write_with_truth(dataset_dir, renderer, rng, counts, progress, keep_pixels=False)
    return written
