"""SURREAL (Varol et al. CVPR 2017) reader, with BodyNet's test protocol (datasets.md section 1).

Layout (the release's own tree, under `<data_root>/surreal/`)::

    cmu/{train,val,test}/run{0,1,2}/<seq>/<seq>_c%04d.mp4        RGB 320x240, H.264, T frames
                                         /<seq>_c%04d_info.mat   annotations (datasets.md 1.2)
                                         /<seq>_c%04d_segm.mat   segm_1..segm_T (optional)
                                         /<seq>_c%04d_depth.mat  depth_1..depth_T (optional)

Splits, in this order: `train`, `val`, `test` (the release's folders) and `val_bodynet`
(BodyNet's protocol, datasets.md 1.7: the middle frame, 0-based `ceil(T/2) - 1`, of every `val`
clip). One record per frame, ordered by (run, sequence, clip, frame); runs by number, sequence
folders by name (plain string order), clips by number. Like BodyNet's loader, blank frames
are skipped: a frame whose 24 `joints2D` are all the same point or whose `joints3D` are all
zero is not a sample (on `val_bodynet` a blank middle frame drops the clip).

Conventions of the files, as this reader undoes them (decided on the golden frame of a real
`_info.mat`, `tests/datamodules/test_surreal.py::test_golden_*`):

* Camera (datasets.md 1.3): K = [[600, 0, 160], [0, 600, 120], [0, 0, 1]] for every clip;
  x_cam = R X_world + t with R = [[0, 0, -1], [0, 1, 0], [-1, 0, 0]] and t = -R camLoc. This
  maps the golden `joints3D` onto its `joints2D` exactly after rounding (24 of 24 joints; at
  most 0.47 px before rounding). **R has determinant -1**: it is a reflection, not a rotation
  (Blender's camera `matrix_world` in `main_part1.py` is itself a mirror matrix). The video,
  `joints2D`, `segm` and the camera-frame points are therefore the mirror image of the SMPL
  body that `pose` and `shape` describe in the world frame.
* World orientation and joint names: posing the body with global orientation
  R_x(90 deg) R_z(zrot) R(pose[0:3]) (the official demo, `smpl_relations.py`) reproduces
  `joints3D` with the *same* joint names (`joints3D[:, j]` is SMPL joint j). Measured with the
  generated mannequin (male model, the file's gender), mean joint error in mm after fitting a
  translation and a scale (the mannequin's skeleton is ~18 % smaller than SMPL's for these
  betas; a positive scale cannot rotate or mirror), translation-only fit in brackets:

  | fixed term left of R(pose[0:3])          | same names  | swapped   | mmhuman3d |
  |------------------------------------------|-------------|-----------|-----------|
  | R_x(90) R_z(zrot) (official demo)        | **30** (85) | 363 (345) | 133 (154) |
  | BodyNet euler((pi/2, pi/2, 0)) R_z, xyz  | 222 (227)   | 314 (299) | 173 (187) |
  | BodyNet euler((pi/2, pi/2, 0)) R_z, XYZ  | 506 (634)   | 508 (679) | 509 (651) |
  | R_z(zrot) (no fixed rotation)            | 508 (649)   | 508 (675) | 508 (657) |
  | R_x(90) (without zrot)                   | 302 (299)   | 257 (247) | 254 (255) |

  ("swapped": joints3D index j = SMPL joint SMPL_FLIP_PERMUTATION[j]; "mmhuman3d": the pose
  mirrored with `flip_smpl_pose`, joints swapped; "xyz" / "XYZ": static / intrinsic reading
  of BodyNet's Euler convention, whose `rotations.py` was not available.) The demo's
  hypothesis wins by 4.4x over the runner-up (the test asserts >= 3x; the neutral model gives
  29.1 vs 131.8 mm). So the well-known SURREAL "left/right swap" (gulvarol/surreal issue #10,
  BodyNet's crossed `jointsIx`) is the mirror camera: in the image, SMPL joint `left_*`
  appears where the person's right is.
* Correction, done once here: camera-frame joints get anatomical names,
  `keypoints[i] = (R X_world + t)[SMPL_FLIP_PERMUTATION[i]]` (the same for `joints2D`); the
  camera-frame SMPL body is the mirror image of the world body: `pose_cam = flip_smpl_pose(
  pose_world)` with its global orientation then rotated by the proper part R·diag(-1, 1, 1)
  of the camera (so global_cam = R · R_world · diag(-1, 1, 1)), `betas` unchanged, and
  `transl = pelvis_cam - J0(betas)` (`BodyModels.rest_root_joint`), so the SMPL pelvis is
  exactly the camera-frame pelvis joint. SMPL is left-right symmetric up to the small
  asymmetries of the real model's template and shape space, which this representation of a
  mirrored body cannot carry (millimetres; exact for the mannequin, which is symmetric).
* `segm` labels (1..24, SMPL part order, datasets.md 1.4) come from the world body's vertex
  groups, so in the mirrored image a `leftUpLeg` pixel shows the person's right thigh: this
  reader swaps left and right labels (`SEGM_FLIP`), which makes `part_segm` agree with the
  camera-frame SMPL body (inferred from the mirror camera and `main_part1.py`'s vertex groups;
  no real `_segm.mat` was available to check). Mask = segm > 0; `instance_map` = mask (one
  person per clip).
* Depth: `depth_t` in metres with 1e10 background -> `extra_maps["depth"]` float32, +inf
  where the file holds more than 1e3 (BodyNet's foreground threshold), other values passed
  through (whether Blender's Z pass is planar depth or distance along the ray is unverified;
  the synthetic world writes planar depth).
* Gender: 0 female -> 2, 1 male -> 1 (DESIGN.md codes). `joints2D` are 0-based integer pixels
  (confidence 1 for all 24 joints, also outside the image, as the files give them).

Body models: SMPL parameters need the body model (for J0): a record raises ValueError when
`options.body_models` is None (listing splits, the frame-extraction step and `len()` work
without it). Boxes are the tight box of the 24 joints (also without pixels).

Pixels: random access into H.264 would decode from the first frame each time, so each clip's
frames are extracted once into the cache (`<cache_root>/surreal_frames/v1/<key>/%04d.jpg`,
JPEG quality 95: lossless PNG would be ~5x larger for frames that are already lossy H.264),
automatically on first use or by `python -m experiments prepare surreal` (step `frames`).
`image_path` is the clip's mp4 and `meta["frame"]` the 0-based frame. A split's index (frame
counts and blank frames of every clip) is cached too (`surreal_index`), keyed by every
`_info.mat`'s path, size and mtime, because the real train split has tens of thousands.
Errors: a missing split folder or `_info.mat` -> MissingDataError naming the path; a corrupt or
truncated mp4, a decoded frame count or `segm`/`depth` frame count that disagrees with
`_info.mat`, or NaN in a field -> DataError naming the file, the sample and the field.
Real roots are checked against the released clip counts (val 507, test 12 528).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
from tqdm import tqdm

from body.joint_sets import SMPL_FLIP_PERMUTATION, flip_smpl_pose
from datamodules.base import DatasetReader, ReaderOptions, register_reader
from datamodules.cache import (
    PrepareContext,
    build_entry,
    entry_dir,
    is_complete,
    register_step,
    source_key,
)
from datamodules.io import (
    DataError,
    MissingDataError,
    field,
    iter_video,
    load_mat,
    missing,
    read_image,
    write_image,
    write_text,
)
from datamodules.records import (
    PersonRecord,
    SceneRecord,
    canonical_keypoints,
    image_flags,
    keypoint_box,
    person_flags,
)
from geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

log = logging.getLogger(__name__)

FRAMES_STEP, FRAMES_CACHE_VERSION = "surreal_frames", 1
INDEX_STEP, INDEX_CACHE_VERSION = "surreal_index", 1
IMAGE_SIZE = (240, 320)  # (H, W)
CLIP_ARRAYS_KEPT = 64  # converted annotations of recent clips per reader (~170 kB per 100 frames)
K = np.array([[600.0, 0.0, 160.0], [0.0, 600.0, 120.0], [0.0, 0.0, 1.0]])
# World-to-camera rotation part of the fixed camera (datasets.md 1.3); det = -1 (a mirror).
CAMERA_ROTATION = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
MIRROR_X = np.diag([-1.0, 1.0, 1.0])
BODY_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # R_x(90 deg)
BACKGROUND_DEPTH = 1e10  # what the files hold where no body is
FOREGROUND_DEPTH_LIMIT = 1e3  # BodyNet: depth <= 1e3 m is the body
GENDERS = {0: 2, 1: 1}  # file code -> DESIGN.md code (female, male)
# Part label l (1..24) <-> label of the mirrored part; 0 stays background. An involution.
SEGM_FLIP = np.array([0] + [p + 1 for p in SMPL_FLIP_PERMUTATION], dtype=np.uint8)
EXPECTED_CLIPS = {"val": 507, "val_bodynet": 507, "test": 12528}  # released file lists
SPLIT_FOLDERS = {"train": "train", "val": "val", "test": "test", "val_bodynet": "val"}
LAYOUT = (
    "surreal/cmu/{train,val,test}/run{0,1,2}/<seq>/<seq>_c%04d.mp4 + <seq>_c%04d_info.mat "
    "(+ _segm.mat, _depth.mat)"
)
_CLIP_FILE = re.compile(r"^(?P<seq>.+)_c(?P<clip>\d{4})(?P<kind>\.mp4|_info\.mat)$")
_RUN_FOLDER = re.compile(r"^run(\d+)$")


# ---------------------------------------------------------------------------------------------
# The file conventions (module docstring), as pure functions; the synthetic writer uses the
# inverses so that its files carry the same quirks.


def camera_translation(cam_loc: np.ndarray) -> np.ndarray:
    """(3,) t = -R camLoc of the fixed camera, metres (camLoc (3,) world coordinates)."""
    return -CAMERA_ROTATION @ np.asarray(cam_loc, dtype=np.float64).reshape(3)


def joints_to_camera(joints_world: np.ndarray, cam_loc: np.ndarray) -> np.ndarray:
    """(..., 24, 3) world `joints3D` (file names) -> camera-frame joints with anatomical names."""
    points = np.asarray(joints_world, dtype=np.float64) @ CAMERA_ROTATION.T
    return (points + camera_translation(cam_loc))[..., SMPL_FLIP_PERMUTATION, :]


def joints_to_world(joints_camera: np.ndarray, cam_loc: np.ndarray) -> np.ndarray:
    """Inverse of `joints_to_camera`: (..., 24, 3) anatomical camera-frame -> file `joints3D`."""
    points = np.asarray(joints_camera, dtype=np.float64)[..., SMPL_FLIP_PERMUTATION, :]
    return (points - camera_translation(cam_loc)) @ CAMERA_ROTATION  # R^-1 = R^T


def image_joints(joints2d: np.ndarray) -> np.ndarray:
    """(..., 24, 2) file `joints2D` -> anatomical names (the same swap as the 3D joints)."""
    return np.asarray(joints2d)[..., SMPL_FLIP_PERMUTATION, :]


def project(points_camera: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame points -> (..., 2) pixels with the fixed K (no rounding)."""
    homogeneous = np.asarray(points_camera, dtype=np.float64) @ K.T
    return homogeneous[..., :2] / homogeneous[..., 2:]


def _rotation_z(angles: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(angles), np.sin(angles)
    zeros, ones = np.zeros_like(angles), np.ones_like(angles)
    rows = [[cos, -sin, zeros], [sin, cos, zeros], [zeros, zeros, ones]]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)  # (N, 3, 3)


def _rotate_root(pose: torch.Tensor, left: np.ndarray) -> torch.Tensor:
    """Copy of (N, 72) `pose` whose global orientation is premultiplied by `left` (N|1, 3, 3)."""
    result = pose.clone()
    root = axis_angle_to_matrix(pose[:, :3])
    result[:, :3] = matrix_to_axis_angle(torch.as_tensor(left, dtype=pose.dtype) @ root)
    return result


def pose_to_camera(pose: np.ndarray, zrot: np.ndarray) -> np.ndarray:
    """(N, 72) file `pose` (before zrot) and (N,) `zrot` radians -> (N, 72) camera-frame SMPL
    pose of the mirrored body (module docstring)."""
    pose_t = torch.as_tensor(np.asarray(pose, dtype=np.float64).reshape(-1, 72))
    to_world = BODY_TO_WORLD @ _rotation_z(np.asarray(zrot, dtype=np.float64).reshape(-1))
    mirrored = flip_smpl_pose(_rotate_root(pose_t, to_world))
    return _rotate_root(mirrored, (CAMERA_ROTATION @ MIRROR_X)[None]).numpy()


def pose_to_file(pose_camera: np.ndarray, zrot: np.ndarray) -> np.ndarray:
    """Inverse of `pose_to_camera`: (N, 72) camera-frame pose -> file `pose` (before zrot)."""
    pose_t = torch.as_tensor(np.asarray(pose_camera, dtype=np.float64).reshape(-1, 72))
    unrotated = _rotate_root(pose_t, (CAMERA_ROTATION @ MIRROR_X).T[None])
    to_body = np.swapaxes(
        BODY_TO_WORLD @ _rotation_z(np.asarray(zrot, np.float64).reshape(-1)), 1, 2
    )
    return _rotate_root(flip_smpl_pose(unrotated), to_body).numpy()


def blank_frames(joints2d: np.ndarray, joints3d: np.ndarray) -> np.ndarray:
    """(T,) bool, BodyNet's invalid frames: all 24 2D joints equal, or all 3D joints zero.
    joints2d (2, 24, T), joints3d (3, 24, T) as in the file."""
    same_2d = (joints2d == joints2d[:, :1]).all(axis=(0, 1))
    zero_3d = (joints3d == 0).all(axis=(0, 1))
    return same_2d | zero_3d


# ---------------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class Clip:
    """One clip of a split: `run`, CMU `sequence`, 1-based clip `number`, its folder, its
    frame count T and the 0-based frames that are samples."""

    run: int
    sequence: str
    number: int
    folder: Path
    num_frames: int
    frames: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.sequence}_c{self.number:04d}"

    def path(self, suffix: str) -> Path:
        """`.mp4`, `_info.mat`, `_segm.mat` or `_depth.mat` of this clip."""
        return self.folder / f"{self.name}{suffix}"


def load_info(path: Path, sample: str = "") -> dict[str, np.ndarray]:
    """The fields of an `_info.mat` this reader uses, checked (shapes, NaN) and reshaped:
    joints2D (2, 24, T), joints3D (3, 24, T), pose (72, T), shape (10, T), zrot (T,),
    gender (T,), camLoc (3,)."""
    where = f"{path} (sample {sample})" if sample else path
    data = load_mat(path)
    joints2d = field(data, "joints2D", where)
    if joints2d.ndim == 2:  # MATLAB drops a trailing singleton: a one-frame clip
        data = {
            key: (value[..., None] if key.startswith("joints") else value)
            for key, value in data.items()
        }
        joints2d = field(data, "joints2D", where)
    frames = joints2d.shape[-1]
    info = {
        "joints2D": field(data, "joints2D", where, (2, 24, frames)).astype(np.float64),
        "joints3D": field(data, "joints3D", where, (3, 24, frames)).astype(np.float64),
        "pose": field(data, "pose", where, (72, frames)).astype(np.float64),
        "shape": field(data, "shape", where, (10, frames)).astype(np.float64),
    }
    for key, size in (("zrot", frames), ("gender", frames), ("camLoc", 3)):
        value = field(data, key, where).reshape(-1)
        if value.size != size:
            raise DataError(f"{where}: field {key!r} has {value.size} values, expected {size}")
        info[key] = value.astype(np.float64)
    unknown = set(np.unique(info["gender"])) - set(GENDERS)
    if unknown:
        raise DataError(f"{where}: field 'gender' holds {sorted(unknown)}; expected 0 or 1")
    return info


def decode_video(path: Path, sample: str = "") -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of a (short) video; DataError if corrupt or truncated."""
    return np.stack(list(iter_video(path, sample)))


def _mat_frame(path: Path, key: str, sample: str) -> np.ndarray:
    """One variable of a `_segm.mat` / `_depth.mat` (loads only that variable)."""
    try:
        data = scipy.io.loadmat(str(path), variable_names=[key])
    except (ValueError, OSError, TypeError, EOFError, scipy.io.matlab.MatReadError) as error:
        raise DataError(f"{path} (sample {sample}): cannot read MATLAB file ({error})") from error
    return field(data, key, f"{path} (sample {sample})", IMAGE_SIZE)


def _check_frame_keys(path: Path, prefix: str, num_frames: int, sample: str) -> None:
    """DataError unless the file holds exactly `<prefix>1 .. <prefix>T`."""
    try:
        names = {name for name, _, _ in scipy.io.whosmat(str(path))}
    except (ValueError, OSError, TypeError, EOFError, scipy.io.matlab.MatReadError) as error:
        raise DataError(f"{path} (sample {sample}): cannot read MATLAB file ({error})") from error
    keys = {name for name in names if re.fullmatch(rf"{prefix}\d+", name)}
    expected = {f"{prefix}{t}" for t in range(1, num_frames + 1)}
    if keys != expected:
        raise DataError(
            f"{path} (sample {sample}): holds {len(keys)} '{prefix}<t>' frames, but the clip's "
            f"_info.mat has {num_frames} (frame count mismatch)"
        )


# ---------------------------------------------------------------------------------------------
# The reader


@register_reader
class SurrealReader(DatasetReader):
    """SURREAL clips as per-frame scene records (module docstring)."""

    dataset_id = "surreal"
    folder = "surreal"
    joint_set = "smpl_24"
    splits = ("train", "val", "test", "val_bodynet")
    layout = LAYOUT

    def _open(self) -> None:
        self.split_dir = self.root / "cmu" / SPLIT_FOLDERS[self.split]
        if not self.split_dir.is_dir():
            raise missing(self.split_dir, f"SURREAL {self.split} split folder", LAYOUT)
        clips = self._load_index(self._list_clips())
        if self.split == "val_bodynet":
            clips = [_middle_frame_only(clip) for clip in clips]
        self.clips = clips
        self._offsets = np.cumsum([0] + [len(clip.frames) for clip in clips])
        self._arrays: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._checked_maps: set[Path] = set()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _list_clips(self) -> list[tuple[int, str, int, Path]]:
        """(run, sequence, number, folder) of every clip on disk, in split order."""
        found = []
        runs = [
            (int(m.group(1)), p)
            for p in self.split_dir.iterdir()
            if p.is_dir() and (m := _RUN_FOLDER.match(p.name))
        ]
        for run, run_dir in sorted(runs):
            for seq_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
                found += _clips_in_folder(run, seq_dir)
        if not found:
            raise missing(self.split_dir / "run*" / "<seq>", "SURREAL clips (no _info.mat)", LAYOUT)
        return found

    def _load_index(self, listing: list[tuple[int, str, int, Path]]) -> list[Clip]:
        """Frame counts and sample frames of every clip, through the `surreal_index` cache."""
        infos = [folder / f"{seq}_c{number:04d}_info.mat" for _, seq, number, folder in listing]
        stats = [
            (str(p.relative_to(self.root)), p.stat().st_size, p.stat().st_mtime_ns) for p in infos
        ]
        digest = hashlib.sha256(json.dumps(stats).encode()).hexdigest()
        key = source_key(self.split_dir, self.data_root, files=digest)
        entry = entry_dir(self.cache_root, INDEX_STEP, INDEX_CACHE_VERSION, key)
        if is_complete(entry):
            counts = json.loads((entry / "index.json").read_text())
        else:
            counts = [_index_clip(path) for path in infos]
            try:
                with build_entry(entry) as tmp:
                    write_text(tmp / "index.json", json.dumps(counts))
            except OSError as error:  # a read-only cache: keep the index in memory only
                log.warning("surreal: cannot cache the %s index (%s)", self.split, error)
        return [
            Clip(run, seq, number, folder, int(n), tuple(frames))
            for (run, seq, number, folder), (n, frames) in zip(listing, counts, strict=True)
        ]

    def locate(self, index: int) -> tuple[int, int]:
        """(position in `clips`, 0-based frame) of record `index`."""
        self._check_index(index)
        position = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return position, self.clips[position].frames[index - int(self._offsets[position])]

    def record(self, index: int, load_image: bool = True) -> SceneRecord:
        position, frame = self.locate(index)
        clip = self.clips[position]
        sample_id = f"{SPLIT_FOLDERS[self.split]}/run{clip.run}/{clip.name}/{frame:04d}"
        arrays = self._clip_arrays(position, sample_id)
        segm, depth = clip.path("_segm.mat"), clip.path("_depth.mat")
        record = SceneRecord(
            dataset=self.dataset_id,
            split=self.split,
            index=index,
            sample_id=sample_id,
            image_path=clip.path(".mp4"),
            image_size=IMAGE_SIZE,
            K=K.copy(),
            joint_set=self.joint_set,
            people=[self._person(arrays, frame)],
            flags=image_flags(
                has_camera=True,
                has_part_segm=segm.is_file(),
                has_mask=segm.is_file(),
                has_instance_map=segm.is_file(),
            ),
            meta={
                "sequence": clip.sequence,
                "clip": clip.number,
                "run": clip.run,
                "frame": frame,
                "num_frames": clip.num_frames,
                "video": str(clip.path(".mp4")),
            },
        )
        if load_image:
            record.image = self.frame_image(clip, frame, sample_id)
            if segm.is_file():
                self._add_segmentation(record, segm, clip, frame)
            if depth.is_file():
                self._add_depth(record, depth, clip, frame)
        return record

    def _person(self, arrays: dict[str, np.ndarray], frame: int) -> PersonRecord:
        ones = np.ones((24, 1))
        keypoints2d = canonical_keypoints(np.hstack([arrays["joints2d"][frame], ones]), "smpl_24")
        keypoints3d = canonical_keypoints(np.hstack([arrays["joints3d"][frame], ones]), "smpl_24")
        flags = person_flags(
            has_keypoints2d=True, has_keypoints3d=True, has_smpl=True, has_gender=True
        )
        return PersonRecord(
            keypoints2d=keypoints2d,
            keypoints3d=keypoints3d,
            box=keypoint_box(keypoints2d),
            pose=arrays["pose"][frame].copy(),
            betas=arrays["betas"][frame].copy(),
            transl=arrays["transl"][frame].copy(),
            gender=int(arrays["gender"][frame]),
            flags=flags,
        )

    def _clip_arrays(self, position: int, sample_id: str) -> dict[str, np.ndarray]:
        """Per-frame camera-frame annotations (T, ...) of clip `position`, kept for the
        last `CLIP_ARRAYS_KEPT` clips."""
        if position in self._arrays:
            self._arrays.move_to_end(position)
            return self._arrays[position]
        clip = self.clips[position]
        info = load_info(clip.path("_info.mat"), sample_id)
        if info["joints2D"].shape[-1] != clip.num_frames:
            raise DataError(
                f"{clip.path('_info.mat')}: changed since the split was indexed; "
                "clear the surreal_index cache"
            )
        arrays = self._convert(info)
        self._arrays[position] = arrays
        if len(self._arrays) > CLIP_ARRAYS_KEPT:
            self._arrays.popitem(last=False)
        return arrays

    def _convert(self, info: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """File fields -> camera-frame, anatomically named arrays (module docstring)."""
        if self.options.body_models is None:
            raise ValueError(
                "surreal: SMPL translation needs the body model (transl = pelvis - J0(betas)); "
                "pass ReaderOptions(body_models=BodyModels(...))"
            )
        joints3d = joints_to_camera(np.transpose(info["joints3D"], (2, 1, 0)), info["camLoc"])
        betas = info["shape"].T
        gender = np.array([GENDERS[int(g)] for g in info["gender"]])
        root = np.zeros((len(betas), 3))
        for code in np.unique(gender):
            root[gender == code] = self.body_models.rest_root_joint(
                betas[gender == code], int(code)
            )
        return {
            "joints2d": image_joints(np.transpose(info["joints2D"], (2, 1, 0))),
            "joints3d": joints3d,
            "pose": pose_to_camera(info["pose"].T, info["zrot"]),
            "betas": betas,
            "transl": joints3d[:, 0] - root,
            "gender": gender,
        }

    def frame_image(self, clip: Clip, frame: int, sample_id: str = "") -> np.ndarray:
        """(240, 320, 3) uint8 RGB of a frame, from the extracted-frames cache."""
        entry = self.extract_frames(clip, sample_id)
        return read_image(entry / f"{frame:04d}.jpg", sample_id)

    def frames_entry(self, clip: Clip) -> Path:
        video = clip.path(".mp4")
        if not video.is_file():
            raise missing(video, f"SURREAL video of clip {clip.name}", LAYOUT)
        key = source_key(video, self.data_root)
        return entry_dir(self.cache_root, FRAMES_STEP, FRAMES_CACHE_VERSION, key)

    def extract_frames(self, clip: Clip, sample_id: str = "") -> Path:
        """Decode a clip's mp4 into the cache once (JPEG q95, `%04d.jpg`); return the entry."""
        entry = self.frames_entry(clip)
        if is_complete(entry):
            return entry
        video, sample = clip.path(".mp4"), sample_id or clip.name
        frames = decode_video(video, sample)
        if frames.shape[0] != clip.num_frames or frames.shape[1:3] != IMAGE_SIZE:
            raise DataError(
                f"{video} (sample {sample}): {frames.shape[0]} frames of {frames.shape[1:3]} "
                f"decoded, but {clip.path('_info.mat').name} has {clip.num_frames} frames of "
                f"{IMAGE_SIZE} (truncated or wrong video)"
            )
        with build_entry(entry) as tmp:
            for t, image in enumerate(frames):
                write_image(tmp / f"{t:04d}.jpg", image, quality=95)
        return entry

    def _add_segmentation(self, record: SceneRecord, path: Path, clip: Clip, frame: int) -> None:
        self._check_maps(path, "segm_", clip, record.sample_id)
        segm = _mat_frame(path, f"segm_{frame + 1}", record.sample_id)
        if segm.max(initial=0) > 24:
            raise DataError(
                f"{path} (sample {record.sample_id}): field 'segm_{frame + 1}' "
                f"holds label {segm.max()} (> 24)"
            )
        record.part_segm = SEGM_FLIP[segm.astype(np.int64)]
        record.mask = record.part_segm > 0
        record.instance_map = record.mask.astype(np.uint8)

    def _add_depth(self, record: SceneRecord, path: Path, clip: Clip, frame: int) -> None:
        self._check_maps(path, "depth_", clip, record.sample_id)
        depth = _mat_frame(path, f"depth_{frame + 1}", record.sample_id).astype(np.float32)
        record.extra_maps["depth"] = np.where(depth > FOREGROUND_DEPTH_LIMIT, np.inf, depth)

    def _check_maps(self, path: Path, prefix: str, clip: Clip, sample: str) -> None:
        if path not in self._checked_maps:
            _check_frame_keys(path, prefix, clip.num_frames, sample)
            self._checked_maps.add(path)

    def check(self) -> list[str]:
        problems = super().check()
        expected = EXPECTED_CLIPS.get(self.split)
        if not self.synthetic and expected is not None and len(self.clips) != expected:
            problems.append(
                f"{self.split_dir}: {len(self.clips)} clips, the release has {expected}"
            )
        return problems


def _clips_in_folder(run: int, seq_dir: Path) -> list[tuple[int, str, int, Path]]:
    """(run, sequence, number, folder) of the clips in one sequence folder, by clip number;
    MissingDataError for an mp4 without its `_info.mat`."""
    kinds: dict[int, set[str]] = {}
    for path in seq_dir.iterdir():
        match = _CLIP_FILE.match(path.name)
        if match and match.group("seq") == seq_dir.name:
            kinds.setdefault(int(match.group("clip")), set()).add(match.group("kind"))
    for number, present in sorted(kinds.items()):
        if "_info.mat" not in present:
            info = seq_dir / f"{seq_dir.name}_c{number:04d}_info.mat"
            raise missing(info, f"annotations of {seq_dir.name}_c{number:04d}.mp4", LAYOUT)
    return [(run, seq_dir.name, number, seq_dir) for number in sorted(kinds)]


def _index_clip(info_path: Path) -> tuple[int, list[int]]:
    """(T, non-blank frames) of one clip, from its validated `_info.mat`."""
    info = load_info(info_path)
    blank = blank_frames(info["joints2D"], info["joints3D"])
    return int(blank.size), [int(t) for t in np.flatnonzero(~blank)]


def _middle_frame_only(clip: Clip) -> Clip:
    middle = math.ceil(clip.num_frames / 2) - 1
    frames = (middle,) if middle in clip.frames else ()
    return Clip(clip.run, clip.sequence, clip.number, clip.folder, clip.num_frames, frames)


def _clips_of_present_splits(ctx: PrepareContext) -> Iterator[tuple[SurrealReader, Clip]]:
    for split in ("train", "val", "test"):  # val_bodynet uses the val clips
        try:
            reader = SurrealReader(ctx.data_root, split, ReaderOptions(cache_root=ctx.cache_root))
        except MissingDataError:
            continue
        for clip in reader.clips:
            yield reader, clip


def prepare_frames(ctx: PrepareContext) -> str:
    """Prepare step `frames`: extract every clip of every present split into the cache."""
    clips = list(_clips_of_present_splits(ctx))
    work = [(reader, clip) for reader, clip in clips if clip.path(".mp4").is_file()]
    cached = sum(is_complete(reader.frames_entry(clip)) for reader, clip in work)
    for reader, clip in tqdm(work, desc="surreal frames", unit="clip", disable=not ctx.progress):
        reader.extract_frames(clip)
    summary = f"{len(work)} clips ({len(work) - cached} extracted, {cached} cached)"
    if len(work) < len(clips):
        summary += f"; {len(clips) - len(work)} clips have no mp4"
    return summary


register_step("surreal", "frames", prepare_frames)
