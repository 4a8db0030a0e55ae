"""CMU Panoptic Studio (panoptic-toolbox layout, datasets.md 5) -> scene records of HD frames.

Layout (datasets.md 5.1, read untouched), one folder per sequence under `panoptic/`:

    panoptic/<seq>/calibration_<seq>.json
    panoptic/<seq>/hdPose3d_stage1_coco19/body3DScene_%08d.json    (or hdPose3d_stage1/ with
                                                                    the legacy `joints15`)
    panoptic/<seq>/hdImgs/<cam>/<cam>_%08d.jpg                     0-based HD frame numbers
    panoptic/zanfir_frames/<seq>.txt                               optional: the protocol's
                                                                    frames, one number per line

Named splits (records sorted by sequence, camera, frame):
- `all`: every sequence folder with a calibration file, every HD camera with an image folder,
  every frame with both a skeleton file and the image.
- `zanfir`: the evaluation protocol of Zanfir et al. 2018 as CRMH and ROMP use it (datasets.md
  5.4): sequences `ZANFIR_SEQUENCES`, HD cameras 00_16 and 00_30. The authors' frame lists are
  not public, so the frames come from `panoptic/zanfir_frames/<seq>.txt` when the user has it
  (it replaces the default for that sequence), else from the default rule: every
  `ZANFIR_STRIDE`-th HD frame (frame % 10 == 0) with a skeleton file, at most
  `ZANFIR_MAX_FRAMES` per sequence (about SMAP's 2,400 images per sequence over two cameras).
  `meta["frame_list"]` says which rule chose a record's frame. On a synthetic root a sequence
  of the protocol may be absent; on a real root `check()` reports it.

Records. Image: the HD JPEG (1920 x 1080), size from the calibration's `resolution`, checked
when pixels are read. K: the camera's `K` (`has_camera`); the lens distortion `distCoef`
(OpenCV's k1, k2, p1, p2, k3) is **not** undone: the image stays as recorded, and
`meta["distortion"]` carries the coefficients, with `meta["R"]`, `meta["t"]` (world to camera,
t in centimetres as in the file). People: the bodies of the skeleton file with `id` >= 0 (the
toolbox's outliers have negative ids) and at least one joint of confidence > `MIN_CONFIDENCE`
(0.1, the toolboxes' threshold); others are dropped and counted (`dropped_people`).
- keypoints3d: the 19 coco19 joints (`panoptic_19`; `panoptic_15` for `joints15` files) moved
  to the camera frame in metres, X_cam = (R X_world + t) / 100 (the file is in centimetres,
  y down), confidence 1 where c > 0.1, else 0 with the coordinates kept.
- keypoints2d: the camera-frame joints projected with K *and* the lens distortion
  (`cv2.projectPoints`), since the image is distorted; confidence as in 3D and 0 behind the
  camera. So keypoints3d projected with the pinhole K alone differ from keypoints2d by the
  distortion (up to tens of pixels near the image borders of HD cameras).
- box: the tight box of the confident 2D joints widened by `BOX_MARGIN` of its larger side;
  track_id: the file's body `id`. No SMPL, masks or part labels in the release.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from body.joint_sets import joint_names
from datamodules.base import DatasetReader, register_reader
from datamodules.io import DataError, missing, read_image, read_json
from datamodules.records import (
    PersonRecord,
    SceneRecord,
    canonical_keypoints,
    image_flags,
    joint_box,
    person_flags,
)

ZANFIR_SEQUENCES = ("160422_ultimatum1", "160422_haggling1", "160906_pizza1", "160422_mafia2")
ZANFIR_CAMERAS = ("00_16", "00_30")
ZANFIR_STRIDE, ZANFIR_MAX_FRAMES = 10, 1200
ZANFIR_LISTS = "zanfir_frames"
MIN_CONFIDENCE = 0.1
BOX_MARGIN = 0.1
SKELETON_DIRS = {"hdPose3d_stage1_coco19": ("joints19", "panoptic_19"),
                 "hdPose3d_stage1": ("joints15", "panoptic_15")}  # fmt: skip
FRAME_FILE = re.compile(r"body3DScene_(\d{8})\.json")
LAYOUT = (
    "panoptic/<seq>/calibration_<seq>.json, panoptic/<seq>/hdPose3d_stage1_coco19/"
    "body3DScene_%08d.json, panoptic/<seq>/hdImgs/<cam>/<cam>_%08d.jpg"
)


@dataclass(frozen=True)
class Camera:
    """One calibrated camera: world (cm) to camera x = R X + t, pinhole K, OpenCV distortion."""

    name: str
    K: np.ndarray
    dist: np.ndarray  # (5,) k1, k2, p1, p2, k3
    R: np.ndarray
    t: np.ndarray  # (3,) centimetres
    size: tuple[int, int]  # (H, W)


@dataclass(frozen=True)
class Item:
    sequence: str
    camera: str
    frame: int
    frame_list: str  # "all", "default" or the list file's name


def read_calibration(path: Path) -> dict[str, Camera]:
    """The HD cameras of a `calibration_<seq>.json`, by name; DataError naming file and field."""
    data = read_json(path)
    cameras = data.get("cameras")
    if not isinstance(cameras, list):
        raise DataError(f"{path}: field 'cameras' missing or not a list")
    result = {}
    for entry in cameras:
        if entry.get("type") != "hd":
            continue
        name = str(entry.get("name"))
        try:
            K = np.asarray(entry["K"], np.float64).reshape(3, 3)
            dist = np.asarray(entry["distCoef"], np.float64).reshape(5)
            R = np.asarray(entry["R"], np.float64).reshape(3, 3)
            t = np.asarray(entry["t"], np.float64).reshape(3)
            width, height = (int(v) for v in entry["resolution"])
        except KeyError as error:
            raise DataError(f"{path} (camera {name}): field {error.args[0]!r} missing") from error
        except (TypeError, ValueError) as error:
            raise DataError(f"{path} (camera {name}): bad camera field ({error})") from error
        if not all(np.isfinite(a).all() for a in (K, dist, R, t)):
            raise DataError(f"{path} (camera {name}): NaN/inf in K, distCoef, R or t")
        result[name] = Camera(name, K, dist, R, t, (height, width))
    return result


def world_to_camera(points_cm: np.ndarray, camera: Camera) -> np.ndarray:
    """(N, 3) Panoptic world centimetres -> camera-frame metres."""
    return (points_cm @ camera.R.T + camera.t) / 100.0


def project_distorted(points: np.ndarray, camera: Camera) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) pixels with K and the lens distortion (OpenCV)."""
    pixels, _ = cv2.projectPoints(
        points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K, camera.dist
    )
    return pixels.reshape(-1, 2)


@register_reader
class PanopticReader(DatasetReader):
    """CMU Panoptic HD frames with 3D skeletons (module docstring)."""

    dataset_id = "panoptic"
    folder = "panoptic"
    joint_set = "panoptic_19"
    splits = ("all", "zanfir")
    layout = LAYOUT

    def _open(self) -> None:
        sequences = ZANFIR_SEQUENCES if self.split == "zanfir" else self._sequence_names()
        self.cameras: dict[str, dict[str, Camera]] = {}
        self.missing_sequences: list[str] = []
        self.items: list[Item] = []
        self._dropped: set[tuple[str, int, int]] = set()
        for sequence in sequences:
            folder = self.root / sequence
            if not (folder / f"calibration_{sequence}.json").is_file():
                self.missing_sequences.append(sequence)
                continue
            self.cameras[sequence] = read_calibration(folder / f"calibration_{sequence}.json")
            self.items += self._sequence_items(sequence)
        if not self.items:
            raise missing(self.root, f"Panoptic frames of split {self.split!r}", LAYOUT)

    def _sequence_names(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir() if (p / f"calibration_{p.name}.json").is_file()
        )

    def _skeleton_dir(self, sequence: str) -> tuple[Path, str, str] | None:
        for name, (key, joint_set) in SKELETON_DIRS.items():
            if (self.root / sequence / name).is_dir():
                return self.root / sequence / name, key, joint_set
        return None

    def _sequence_items(self, sequence: str) -> list[Item]:
        found = self._skeleton_dir(sequence)
        if found is None:
            return []
        frames = sorted(
            int(m.group(1)) for f in found[0].iterdir() if (m := FRAME_FILE.fullmatch(f.name))
        )
        cameras = (
            ZANFIR_CAMERAS if self.split == "zanfir" else tuple(sorted(self.cameras[sequence]))
        )
        rule = "all"
        if self.split == "zanfir":
            frames, rule = self._zanfir_frames(sequence, frames)
        items = []
        for camera in cameras:
            if camera not in self.cameras[sequence]:
                raise DataError(f"{self._calibration(sequence)}: no HD camera {camera!r}")
            images = self.root / sequence / "hdImgs" / camera
            if not images.is_dir():
                continue
            present = {int(p.stem.rsplit("_", 1)[-1]) for p in images.glob(f"{camera}_*.jpg")}
            items += [Item(sequence, camera, f, rule) for f in frames if f in present]
        return items

    def _zanfir_frames(self, sequence: str, frames: list[int]) -> tuple[list[int], str]:
        listed = self.root / ZANFIR_LISTS / f"{sequence}.txt"
        if listed.is_file():
            try:
                chosen = [int(line) for line in listed.read_text().split()]
            except ValueError as error:
                raise DataError(
                    f"{listed}: frame numbers expected, one per line ({error})"
                ) from error
            available = set(frames)
            return [f for f in chosen if f in available], listed.name
        default = [f for f in frames if f % ZANFIR_STRIDE == 0][:ZANFIR_MAX_FRAMES]
        return default, "default"

    def _calibration(self, sequence: str) -> Path:
        return self.root / sequence / f"calibration_{sequence}.json"

    def __len__(self) -> int:
        return len(self.items)

    @functools.lru_cache(maxsize=64)  # noqa: B019  (small parsed skeleton files, per reader)
    def _bodies(self, sequence: str, frame: int) -> tuple[str, list[tuple[int, np.ndarray]]]:
        """(joint set, [(id, (J, 4) world cm + confidence)]) of a frame's kept bodies."""
        found = self._skeleton_dir(sequence)
        assert found is not None
        folder, key, joint_set = found
        path = folder / f"body3DScene_{frame:08d}.json"
        bodies = read_json(path).get("bodies")
        if not isinstance(bodies, list):
            raise DataError(f"{path}: field 'bodies' missing or not a list")
        count = len(joint_names(joint_set))
        kept = []
        for position, body in enumerate(bodies):
            joints = np.asarray(body.get(key, []), np.float64)
            if joints.size != count * 4 or not np.isfinite(joints).all():
                raise DataError(
                    f"{path} (body id {body.get('id')}): field {key!r} must hold {count * 4} "
                    f"finite numbers, has {joints.size}"
                )
            joints = joints.reshape(count, 4)
            if int(body.get("id", -1)) < 0 or not (joints[:, 3] > MIN_CONFIDENCE).any():
                self._dropped.add((sequence, frame, position))
                continue
            kept.append((int(body["id"]), joints))
        return joint_set, kept

    @property
    def dropped_people(self) -> int:
        """Bodies dropped so far (outlier ids or no confident joint) in the frames read."""
        return len(self._dropped)

    def num_people(self, index: int) -> int:
        self._check_index(index)
        item = self.items[index]
        return len(self._bodies(item.sequence, item.frame)[1])

    def record(self, index: int, load_image: bool = True) -> SceneRecord:
        self._check_index(index)
        item = self.items[index]
        camera = self.cameras[item.sequence][item.camera]
        path = (
            self.root
            / item.sequence
            / "hdImgs"
            / item.camera
            / f"{item.camera}_{item.frame:08d}.jpg"
        )
        sample_id = f"{item.sequence}/{item.camera}/{item.frame:08d}"
        image = read_image(path, sample_id) if load_image else None
        if image is not None and image.shape[:2] != camera.size:
            raise DataError(f"{path} (sample {sample_id}): image is {image.shape[:2]}, the "
                            f"calibration says {camera.size}")  # fmt: skip
        joint_set, bodies = self._bodies(item.sequence, item.frame)
        people = [self._person(joints, body_id, camera, joint_set) for body_id, joints in bodies]
        return SceneRecord(
            dataset=self.dataset_id, split=self.split, index=index, sample_id=sample_id,
            image_path=path, image_size=camera.size, K=camera.K.copy(), joint_set=joint_set,
            people=people, flags=image_flags(has_camera=True), image=image,
            meta={"sequence": item.sequence, "camera": item.camera, "frame": item.frame,
                  "frame_list": item.frame_list, "distortion": camera.dist.copy(),
                  "R": camera.R.copy(), "t": camera.t.copy()},
        )  # fmt: skip

    def _person(
        self, joints: np.ndarray, body_id: int, camera: Camera, joint_set: str
    ) -> PersonRecord:
        valid = (joints[:, 3] > MIN_CONFIDENCE).astype(np.float64)
        points = world_to_camera(joints[:, :3], camera)
        pixels = project_distorted(points, camera)
        in_front = (points[:, 2] > 0).astype(np.float64)
        keypoints2d = canonical_keypoints(np.column_stack([pixels, valid * in_front]), joint_set)
        keypoints3d = canonical_keypoints(np.column_stack([points, valid]), joint_set)
        return PersonRecord(
            keypoints2d=keypoints2d, keypoints3d=keypoints3d,
            box=joint_box(keypoints2d, BOX_MARGIN),
            flags=person_flags(has_keypoints2d=bool((keypoints2d[:, 2] > 0).any()),
                               has_keypoints3d=True),
            track_id=body_id,
        )  # fmt: skip

    def check(self) -> list[str]:
        problems = super().check()
        if not self.synthetic:
            problems += [
                f"{self.root / s}: protocol sequence missing" for s in self.missing_sequences
            ]
        return problems
