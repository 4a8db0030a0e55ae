"""MuPoTS-3D (Mehta et al. 3DV 2018, datasets.md 8.2) -> scene records of its 20 test sequences.

Layout (as distributed, read untouched):

    mupots/MultiPersonTestSet/TS<k>/img_%06d.jpg    k = 1..20, 0-based frame numbers
    mupots/MultiPersonTestSet/TS<k>/annot.mat       `annotations` cell (frames x people)
    mupots/MultiPersonTestSet/TS<k>/occlusion.mat   `occlusion_labels` cell (frames x people)
    mupots/MuPoTS-3D.json                           optional: 3DMPPE's COCO-style file (also
                                                    looked for in MultiPersonTestSet/)

Named split `test`: the sequences TS1..TS20, every annotated frame, records sorted by sequence
then frame. On a real root `check()` reports a missing sequence; a synthetic root may hold a
few.

Annotations. Each cell of `annotations` is a struct with `annot2` (2 x 17 px), `annot3`
(3 x 17 mm, camera frame), `univ_annot3` (3 x 17 mm, the pose retargeted to the "universal"
skeleton of MPI-INF-3DHP) and `isValidFrame`; each cell of `occlusion_labels` a 1 x 17 0/1
row. A person whose `isValidFrame` is 0 (or whose cell is empty) in a frame is dropped from that
frame and counted (`dropped_people`), as the official evaluation skips them. Records:
- people: the valid columns of the frame, track_id = the column (the subject's index);
  keypoints2d = `annot2`, keypoints3d = `annot3` / 1000 (metres), in `mupots_17`, confidence 1
  for every joint (MuPoTS annotates occluded and off-image joints too; `meta["occluded"]`
  holds `occlusion_labels` as one (17,) bool array per kept person);
  `meta["univ_keypoints3d"]` holds `univ_annot3` / 1000 as (17, 3) arrays in `mupots_17` order,
  which the official 3DPCK script compares against; box = the joints' tight box widened by
  `BOX_MARGIN` of its larger side.
- K (`has_camera`). `annot.mat` carries no intrinsics. When `MuPoTS-3D.json` is present its
  per-image `intrinsic` [fx, fy, cx, cy] is used (one camera per sequence; images of a
  sequence that disagree are a DataError). Otherwise K is fitted per sequence by linear least
  squares from every valid person and joint: u = fx X / Z + cx and v = fy Y / Z + cy with
  `annot3` = (X, Y, Z) and `annot2` = (u, v) (`fit_intrinsics`). `meta["intrinsics"]` says
  which ("MuPoTS-3D.json" or "fitted") and `meta["intrinsics_rms_px"]` is the reprojection RMS
  of the annotations through that K (the annotations are consistent pinhole projections when
  it is small; the reader does not undo any distortion).
- image size: read from the first image of each sequence (TS1..TS5 are 2048 x 2048, TS6..TS20
  1920 x 1080 in the release) and checked when pixels are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datamodules.base import DatasetReader, register_reader
from datamodules.io import DataError, load_mat, missing, read_image, read_json
from datamodules.records import (
    PersonRecord,
    SceneRecord,
    canonical_keypoints,
    image_flags,
    joint_box,
    person_flags,
)
from geometry.cameras import project_points

NUM_SEQUENCES, NUM_JOINTS = 20, 17
SET_FOLDER = "MultiPersonTestSet"
JSON_NAME = "MuPoTS-3D.json"
BOX_MARGIN = 0.1
MM_PER_M = 1000.0
IMAGE_FILE = re.compile(r"img_(\d{6})\.jpg")
LAYOUT = (
    "mupots/MultiPersonTestSet/TS<k>/{annot.mat, occlusion.mat, img_%06d.jpg} (k = 1..20); "
    "optional mupots/MuPoTS-3D.json"
)


@dataclass(frozen=True)
class ParsedSequence:
    """One parsed sequence: dense per-(frame, person) arrays of its annotation cells."""

    name: str
    keypoints2d: np.ndarray  # (F, P, 17, 2) px
    keypoints3d: np.ndarray  # (F, P, 17, 3) m, camera frame
    universal3d: np.ndarray  # (F, P, 17, 3) m
    valid: np.ndarray  # (F, P) bool
    occluded: np.ndarray  # (F, P, 17) bool
    K: np.ndarray
    intrinsics: str  # "MuPoTS-3D.json" or "fitted"
    rms_px: float
    image_size: tuple[int, int]  # (H, W)


def fit_intrinsics(points2d: np.ndarray, points3d: np.ndarray) -> np.ndarray:
    """(3, 3) K fitted by least squares to (N, 2) pixels and (N, 3) camera-frame points (module
    docstring); ValueError if the points cannot determine it."""
    front = points3d[:, 2] > 0
    if front.sum() < 2:
        raise ValueError(f"{int(front.sum())} points in front of the camera; need 2 or more")
    ratios = points3d[front, :2] / points3d[front, 2:]
    K = np.eye(3)
    for axis in (0, 1):
        design = np.column_stack([ratios[:, axis], np.ones(len(ratios))])
        if np.linalg.matrix_rank(design) < 2:
            raise ValueError("the points all lie on one viewing ray per axis")
        (focal, centre), *_ = np.linalg.lstsq(design, points2d[front, axis], rcond=None)
        K[axis, axis], K[axis, 2] = focal, centre
    return K


def reprojection_rms(K: np.ndarray, points2d: np.ndarray, points3d: np.ndarray) -> float:
    """RMS distance (px) between (N, 2) pixels and the pinhole projections of (N, 3) points."""
    front = points3d[:, 2] > 0
    if not front.any():
        return float("nan")
    projected = project_points(torch.as_tensor(points3d[front]), torch.as_tensor(K)).numpy()
    return float(np.sqrt(((projected - points2d[front]) ** 2).sum(axis=1).mean()))


def _struct_field(cell: np.ndarray, key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A numeric field of a loadmat struct cell (a (1, 1) structured array), checked."""
    if cell.dtype.names is None or key not in cell.dtype.names:
        raise DataError(f"{where}: field {key!r} missing (fields: {cell.dtype.names})")
    try:
        value = np.asarray(cell[key].reshape(-1)[0], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: field {key!r} is not numeric ({error})") from error
    if value.size != int(np.prod(shape)):
        raise DataError(f"{where}: field {key!r} has shape {value.shape}, expected {shape}")
    value = value.reshape(shape)
    if not np.isfinite(value).all():
        raise DataError(f"{where}: NaN/inf in field {key!r}")
    return value


def _cells(path: Path, key: str) -> np.ndarray:
    data = load_mat(path)
    cells = data.get(key)
    if not isinstance(cells, np.ndarray) or cells.dtype != object or cells.ndim != 2:
        raise DataError(f"{path}: variable {key!r} missing or not a (frames x people) cell array")
    return cells


def read_annotations(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints2d px, keypoints3d m, universal m, valid) of an `annot.mat`, dense
    (F, P, 17, ...) arrays; DataError naming the file, frame, person and field."""
    cells = _cells(path, "annotations")
    frames, people = cells.shape
    points2d = np.zeros((frames, people, NUM_JOINTS, 2))
    points3d = np.zeros((frames, people, NUM_JOINTS, 3))
    universal = np.zeros((frames, people, NUM_JOINTS, 3))
    valid = np.zeros((frames, people), bool)
    for f in range(frames):
        for p in range(people):
            cell = cells[f, p]
            if not isinstance(cell, np.ndarray) or cell.size == 0:
                continue  # no annotation: not a valid person in this frame
            where = f"{path} (frame {f}, person {p})"
            valid[f, p] = bool(_struct_field(cell, "isValidFrame", (1,), where)[0])
            if not valid[f, p]:
                continue
            points2d[f, p] = _struct_field(cell, "annot2", (2, NUM_JOINTS), where).T
            points3d[f, p] = _struct_field(cell, "annot3", (3, NUM_JOINTS), where).T / MM_PER_M
            universal[f, p] = (
                _struct_field(cell, "univ_annot3", (3, NUM_JOINTS), where).T / MM_PER_M
            )
    return points2d, points3d, universal, valid


def read_occlusion(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(F, P, 17) bool of an `occlusion.mat` whose cell array must have `shape` (F, P)."""
    if not path.is_file():
        raise missing(path, "MuPoTS-3D occlusion labels", LAYOUT)
    cells = _cells(path, "occlusion_labels")
    if cells.shape != shape:
        raise DataError(f"{path}: 'occlusion_labels' is {cells.shape}, annot.mat's cells {shape}")
    occluded = np.zeros((*shape, NUM_JOINTS), bool)
    for (f, p), cell in np.ndenumerate(cells):
        values = np.asarray(cell, dtype=np.float64).reshape(-1)
        if values.size == 0:
            continue
        if values.size != NUM_JOINTS:
            raise DataError(f"{path} (frame {f}, person {p}): {values.size} labels, expected 17")
        occluded[f, p] = values > 0
    return occluded


def json_intrinsics(path: Path) -> dict[str, np.ndarray]:
    """Sequence name -> K from 3DMPPE's `MuPoTS-3D.json` (`images[*].intrinsic`)."""
    images = read_json(path).get("images")
    if not isinstance(images, list):
        raise DataError(f"{path}: field 'images' missing or not a list")
    result: dict[str, np.ndarray] = {}
    for image in images:
        name = str(image.get("file_name", ""))
        try:
            fx, fy, cx, cy = (float(v) for v in image["intrinsic"])
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path} (image {name!r}): bad or missing 'intrinsic'") from error
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        sequence = name.split("/")[0]
        if sequence in result and not np.allclose(result[sequence], K, atol=1e-6):
            raise DataError(f"{path} (image {name!r}): intrinsic differs from the other images "
                            f"of {sequence}")  # fmt: skip
        result[sequence] = K
    return result


@register_reader
class MuPoTSReader(DatasetReader):
    """The MuPoTS-3D test sequences (module docstring)."""

    dataset_id = "mupots"
    folder = "mupots"
    joint_set = "mupots_17"
    splits = ("test",)
    layout = LAYOUT

    def _open(self) -> None:
        folder = self.root / SET_FOLDER
        names = [f"TS{k}" for k in range(1, NUM_SEQUENCES + 1)]
        present = [n for n in names if (folder / n / "annot.mat").is_file()]
        self.missing_sequences = [n for n in names if n not in present]
        if not present:
            raise missing(folder, "MuPoTS-3D sequences (TS<k>/annot.mat)", LAYOUT)
        self.json_path = next(
            (p for p in (self.root / JSON_NAME, folder / JSON_NAME) if p.is_file()), None
        )
        from_json = json_intrinsics(self.json_path) if self.json_path else {}
        self.sequences = {name: self._read_sequence(name, from_json) for name in present}
        self.items = [
            (name, frame)
            for name, sequence in self.sequences.items()
            for frame in range(sequence.valid.shape[0])
        ]
        self._dropped = {
            (name, f, p)
            for name, sequence in self.sequences.items()
            for f, p in zip(*np.nonzero(~sequence.valid), strict=True)
        }

    def _read_sequence(self, name: str, from_json: dict[str, np.ndarray]) -> ParsedSequence:
        folder = self.root / SET_FOLDER / name
        points2d, points3d, universal, valid = read_annotations(folder / "annot.mat")
        occluded = read_occlusion(folder / "occlusion.mat", valid.shape)
        pairs2d, pairs3d = points2d[valid].reshape(-1, 2), points3d[valid].reshape(-1, 3)
        if name in from_json:
            K, source = from_json[name], JSON_NAME
        else:
            try:
                K, source = fit_intrinsics(pairs2d, pairs3d), "fitted"
            except ValueError as error:
                raise DataError(f"{folder / 'annot.mat'}: cannot fit intrinsics ({error}); "
                                f"provide {JSON_NAME}") from error  # fmt: skip
        return ParsedSequence(
            name, points2d, points3d, universal, valid, occluded, K, source,
            reprojection_rms(K, pairs2d, pairs3d), self._image_size(folder),
        )  # fmt: skip

    def _image_size(self, folder: Path) -> tuple[int, int]:
        images = sorted(p for p in folder.glob("img_*.jpg") if IMAGE_FILE.fullmatch(p.name))
        first = images[0] if images else None
        if first is None:
            raise missing(folder, "MuPoTS-3D images (img_%06d.jpg)", LAYOUT)
        try:
            with Image.open(first) as image:
                width, height = image.size
        except OSError as error:
            raise DataError(f"{first}: cannot read image header ({error})") from error
        return height, width

    def image_path(self, name: str, frame: int) -> Path:
        return self.root / SET_FOLDER / name / f"img_{frame:06d}.jpg"

    def __len__(self) -> int:
        return len(self.items)

    @property
    def dropped_people(self) -> int:
        """(frame, person) cells dropped because the annotation marks them invalid."""
        return len(self._dropped)

    def num_people(self, index: int) -> int:
        self._check_index(index)
        name, frame = self.items[index]
        return int(self.sequences[name].valid[frame].sum())

    def record(self, index: int, load_image: bool = True) -> SceneRecord:
        self._check_index(index)
        name, frame = self.items[index]
        sequence = self.sequences[name]
        path = self.image_path(name, frame)
        sample_id = f"{name}/img_{frame:06d}"
        image = read_image(path, sample_id) if load_image else None
        if image is not None and image.shape[:2] != sequence.image_size:
            raise DataError(f"{path} (sample {sample_id}): image is {image.shape[:2]}, the "
                            f"sequence's first image is {sequence.image_size}")  # fmt: skip
        kept = [int(p) for p in np.flatnonzero(sequence.valid[frame])]
        return SceneRecord(
            dataset=self.dataset_id, split=self.split, index=index, sample_id=sample_id,
            image_path=path, image_size=sequence.image_size, K=sequence.K.copy(),
            joint_set=self.joint_set,
            people=[self._person(sequence, frame, p) for p in kept],
            flags=image_flags(has_camera=True), image=image,
            meta={"sequence": name, "frame": frame, "intrinsics": sequence.intrinsics,
                  "intrinsics_rms_px": sequence.rms_px,
                  "occluded": [sequence.occluded[frame, p].copy() for p in kept],
                  "univ_keypoints3d": [sequence.universal3d[frame, p].copy() for p in kept]},
        )  # fmt: skip

    def _person(self, sequence: ParsedSequence, frame: int, person: int) -> PersonRecord:
        ones = np.ones((NUM_JOINTS, 1))
        keypoints2d = canonical_keypoints(
            np.hstack([sequence.keypoints2d[frame, person], ones]), self.joint_set
        )
        keypoints3d = canonical_keypoints(
            np.hstack([sequence.keypoints3d[frame, person], ones]), self.joint_set
        )
        return PersonRecord(
            keypoints2d=keypoints2d, keypoints3d=keypoints3d,
            box=joint_box(keypoints2d, BOX_MARGIN),
            flags=person_flags(has_keypoints2d=True, has_keypoints3d=True), track_id=person,
        )  # fmt: skip

    def check(self) -> list[str]:
        problems = super().check()
        problems += [
            f"{self.image_path(n, f)}: image not found"
            for n, f in self.items
            if not self.image_path(n, f).is_file()
        ]
        if not self.synthetic:
            problems += [
                f"{self.root / SET_FOLDER / n}: test sequence missing"
                for n in self.missing_sequences
            ]
        return problems
