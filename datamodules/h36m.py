"""Human3.6M in SPIN's preprocessed layout (datasets.md 7.2, 7.3): extracted frames, SPIN npz
files and a camera file.

    h36m/images/<S>/<S>_<Action>.<cam>/<imgname>   (or images/<imgname>; mmpose's sample layout
                                                    and SPIN's flat one)
    h36m/h36m_train.npz              split "train"
    h36m/h36m_valid_protocol1.npz    split "p1"
    h36m/h36m_valid_protocol2.npz    split "p2" (optional: derived from protocol 1)
    h36m/cameras.h5 | h36m/cameras.pkl | h36m/annotation_body3d/cameras.pkl

Splits, in this order (SPIN/HMR protocols, datasets.md 7.6; every 5th video frame, i.e. frame
index i with i % 5 == 0, named with the 1-based number i + 1):
- "train": `h36m_train.npz`, subjects S1, S5, S6, S7, S8, all 4 cameras.
- "p1": `h36m_valid_protocol1.npz`, protocol 1: S9, S11, all 4 cameras.
- "p2": protocol 2: S9, S11, camera 60457274 only. From `h36m_valid_protocol2.npz` when present;
  otherwise derived from protocol 1 by keeping its camera 60457274 rows (in file order), which
  is how SPIN's preprocessing builds protocol 2.
Records follow the npz rows in file order, one person each.

Images. `imgname` is bare in the real sample (`S1_Directions_1.54138969_000001.jpg`) and prefixed
with `images/` in SPIN's files; subject, action (the sequence name, spaces already underscores),
camera and frame are parsed from the file name `<S>_<Action>.<cam>_<frame>.jpg` whatever folder
it carries. The image is the first existing one of `images/<imgname>`,
`images/<subject>/<subject>_<Action>.<cam>/<file name>`, `<imgname>` (datasets.md 7.3). The image
size comes from the file's header (pixels are decoded only with `load_image`): it is not a
function of the camera alone (the real sample has camera 55011271 at 1000 x 1002 in an S7 frame
and at 1000 x 1000 in an S8 frame, where datasets.md 7.1 says 1000 x 1000).

Cameras. The npz files carry no intrinsics: K comes from the first camera file found, in the
order of the layout above: Martinez's `cameras.h5` (group `subject<N>/camera<1..4>`: `R` stored
transposed, `T` camera centre in mm, `f`, `c`, `k`, `p`, `Name` = the camera id's character
codes) or mmpose's `cameras.pkl` (dict `(subject, camera id)` -> `R` (also the transposed
world-to-camera rotation), `T` centre in metres, `f`, `c`, `k`, `p`, `w`, `h`, read with the
restricted unpickler). K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]. Lens distortion is **not**
applied: K is the pinhole part of the camera. The distortion coefficients travel in
`meta["distortion"]` (`k` radial 3, `p` tangential 2, in Martinez's convention: x_d = x (1 + k1 r^2
+ k2 r^4 + k3 r^6 + p1 y + p2 x) + (p2, p1) r^2); on the real sample `part` equals `S` projected
with that distortion to 0.02 px, and to about 0.4-1.2 px (mean; up to 3.4 px at the image edges)
with K alone, so projection checks on real data need a pixel or two of tolerance.

Annotations (native joint set `spin_24`, SPIN's J24, datasets.md 0.2):
- keypoints2d from `part` (24, 3), confidence = column 2; absent (has_keypoints2d False) when a
  file has no `part`, as SPIN's protocol files do.
- keypoints3d from `S` (24, 4) in metres, confidence = column 3. `S` is *not* assumed
  root-centred: SPIN's preprocessing writes root-centred joints, the real sample absolute
  camera-frame ones (datasets.md 7.3 "Correction"). A file counts as root-relative when the median
  over its rows of |z| of the pelvis (row 14; the mean |z| of the row's valid joints where the
  pelvis is absent) is below 0.5 m (one decision per file, so a single odd row cannot flip it);
  then `keypoints3d_root_relative` is True for all its records.
- SMPL when the file has `pose` (72) and `shape` (10) (row by row where it has `has_smpl`): the
  pose is in the camera frame as stored (SPIN rotated MoSh's fits into each camera) and gender
  is unknown (-1, the neutral model; a `gender` field of 'm'/'f' is honoured). The file has no
  translation: it is derived by least squares, aligning the body model's `spin_24` keypoints with
  zero translation to the valid rows of an absolute `S` that the body model provides (keypoints
  are affine in transl with weights = the regressor rows' sums, 1 up to rounding, so this is the
  mean offset). On the real sample with the mannequin the posed keypoints then lie 4-6 cm (mean)
  from `S`, which confirms the camera-frame pose. The fit runs once per npz file and body
  model, for all rows in batches (`fit_transl`), and is kept in the cache (step `h36m_transl`),
  so loading a record costs no body-model pass. This needs `ReaderOptions.body_models`; the
  mannequin is refused on a real root unless allowed (`datamodules.base`). When `S` is
  root-relative, or no body models are configured, transl cannot be derived: the record keeps
  pose and betas but has transl None and `has_smpl` False (so nothing uses SMPL it cannot place;
  losses on 3D joints still work).
- box: SPIN's (`center`, `scale`) is a square of side 0.9 x the longer side of the ground-truth
  mask box (datasets.md 0.1); the record's box is the square of side scale x 200 / 0.9 (the mask
  box's longer side) about `center`. SPIN's box centre is the midpoint of [min x, max x + 1], half
  a pixel right of (and below) the pixel-centre midpoint; it is kept as stored.
- part labels, mask and instance map: rendered from the SMPL ground truth with the configured
  body model (`datamodules.part_labels`, cached per frame, keyed by the npz file and the image
  name) when the record has SMPL with transl and `load_image` is True (`prepare h36m` renders
  them ahead of time: `datamodules.readers` registers the shared part-label step).

Expected split sizes (commonly cited 109 867 / 27 558 images for P1 / P2) are unverified, so
`check()` does not compare counts; it reports rows whose subject or camera do not belong to the
split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from body.joint_sets import canonical_indices, root_index
from datamodules.base import BodyModels, DatasetReader, body_model_sha256, register_reader
from datamodules.cache import build_entry, entry_dir, is_complete, source_key
from datamodules.io import (
    DataError,
    MissingDataError,
    check_finite,
    load_npz,
    missing,
    read_image,
    read_pickle,
)
from datamodules.part_labels import cached_part_maps
from datamodules.records import (
    GENDER_CODES,
    PersonRecord,
    SceneRecord,
    canonical_keypoints,
    image_flags,
    person_flags,
)
from geometry.cameras import box_center_scale_to_xyxy

CAMERAS = ("54138969", "55011271", "58860488", "60457274")  # camera index 1..4
PROTOCOL2_CAMERA = "60457274"
TRANSL_STEP, TRANSL_CACHE_VERSION = "h36m_transl", 1
SPLIT_SUBJECTS = {
    "train": ("S1", "S5", "S6", "S7", "S8"),
    "p1": ("S9", "S11"),
    "p2": ("S9", "S11"),
}
NPZ_FILES = {
    "train": "h36m_train.npz",
    "p1": "h36m_valid_protocol1.npz",
    "p2": "h36m_valid_protocol2.npz",
}
CAMERA_FILES = ("cameras.h5", "cameras.pkl", "annotation_body3d/cameras.pkl")
PELVIS_ROW = root_index("spin_24")  # J24 row 14, "Pelvis (MPII)"
ROOT_RELATIVE_DEPTH = 0.5  # metres: a root-centred S has |z| of the pelvis far below this
MASK_BOX_FACTOR = 0.9
NUM_J24 = 24
IMAGE_NAME = re.compile(r"^(?P<subject>S\d+)_(?P<action>.+)\.(?P<camera>\d+)_(?P<frame>\d+)\.jpg$")
LAYOUT = (
    "h36m/images/<S>/<S>_<Action>.<cam>/<imgname> (or images/<imgname>), h36m/h36m_train.npz, "
    "h36m/h36m_valid_protocol1.npz, [h36m/h36m_valid_protocol2.npz], and a camera file "
    "h36m/cameras.h5 (Martinez) or h36m/cameras.pkl (mmpose)"
)


@dataclass(frozen=True)
class Camera:
    """One Human3.6M camera: world-to-camera R (3, 3), centre (3,) world metres, focal (2,)
    and principal point (2,) pixels, radial k (3,) and tangential p (2,) distortion."""

    R: np.ndarray
    centre: np.ndarray
    focal: np.ndarray
    principal: np.ndarray
    k: np.ndarray
    p: np.ndarray

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 pinhole intrinsics (distortion not applied)."""
        (fx, fy), (cx, cy) = self.focal, self.principal
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _camera(R: np.ndarray, centre_m: np.ndarray, values: dict) -> Camera:
    def vector(key: str, size: int) -> np.ndarray:
        return np.asarray(values[key], np.float64).reshape(size)

    return Camera(
        R=np.asarray(R, np.float64).reshape(3, 3).T,
        centre=np.asarray(centre_m, np.float64).reshape(3),
        focal=vector("f", 2),
        principal=vector("c", 2),
        k=vector("k", 3),
        p=vector("p", 2),
    )


def read_martinez_cameras(path: Path) -> dict[tuple[str, str], Camera]:
    """{(subject, camera id): Camera} from 3d-pose-baseline's `cameras.h5`."""
    import h5py

    cameras = {}
    try:
        with h5py.File(path, "r") as handle:
            for group_name, group in handle.items():
                match = re.fullmatch(r"subject(\d+)", group_name)
                if match is None:
                    continue  # `3dtest`: a test pose, not a camera
                for index, camera_id in enumerate(CAMERAS, start=1):
                    node = group.get(f"camera{index}")
                    if node is None:
                        continue
                    values = {key: node[key][()] for key in ("R", "T", "f", "c", "k", "p")}
                    if "Name" in node:
                        camera_id = "".join(chr(int(c)) for c in np.ravel(node["Name"][()]))
                    centre = np.asarray(values["T"], np.float64) / 1000.0
                    cameras[f"S{match[1]}", camera_id] = _camera(values["R"], centre, values)
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{path}: cannot read the Martinez camera file ({error})") from error
    return cameras


def read_mmpose_cameras(path: Path) -> dict[tuple[str, str], Camera]:
    """{(subject, camera id): Camera} from mmpose's `cameras.pkl` (T in metres)."""
    data = read_pickle(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of cameras, got {type(data).__name__}")
    try:
        return {
            (str(subject), str(camera)): _camera(values["R"], values["T"], values)
            for (subject, camera), values in data.items()
        }
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not an mmpose camera dict ({error!r})") from error


def find_camera_file(root: Path) -> Path:
    """The first camera file of `CAMERA_FILES` under `root` (module docstring)."""
    for name in CAMERA_FILES:
        if (root / name).is_file():
            return root / name
    looked = f"camera file (also looked for {', '.join(CAMERA_FILES[1:])})"
    raise missing(root / CAMERA_FILES[0], looked, LAYOUT)


def read_cameras(path: Path) -> dict[tuple[str, str], Camera]:
    """Cameras of either format, by suffix."""
    return read_martinez_cameras(path) if path.suffix == ".h5" else read_mmpose_cameras(path)


@dataclass(frozen=True)
class ImageName:
    """What a Human3.6M frame name says: subject, action, camera id, 1-based frame."""

    subject: str
    action: str
    camera: str
    frame: int
    file_name: str

    @property
    def sequence(self) -> str:
        return f"{self.subject}_{self.action}.{self.camera}"

    @property
    def stem(self) -> str:
        return Path(self.file_name).stem


def parse_image_name(imgname: str, source: Path, row: int) -> ImageName:
    """Parse `<S>_<Action>.<cam>_<frame>.jpg` (any folder prefix); DataError naming the row."""
    file_name = Path(str(imgname)).name
    match = IMAGE_NAME.match(file_name)
    if match is None:
        raise DataError(
            f"{source}: row {row}: imgname {imgname!r} is not <S>_<Action>.<camera>_<frame>.jpg"
        )
    subject, action, camera = match["subject"], match["action"], match["camera"]
    return ImageName(subject, action, camera, int(match["frame"]), file_name)


def image_candidates(root: Path, imgname: str, name: ImageName) -> list[Path]:
    """Where a frame may be, in the documented order (module docstring)."""
    candidates = [
        root / "images" / imgname,
        root / "images" / name.subject / name.sequence / name.file_name,
        root / imgname,
    ]
    return list(dict.fromkeys(candidates))


def image_size(path: Path, sample_id: str) -> tuple[int, int]:
    """(H, W) from the image header (no decoding); DataError if it is not an image."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"{path} (sample {sample_id}): cannot read image header ({error})"
        ) from error
    return height, width


def is_root_relative(S: np.ndarray) -> bool:
    """Whether (N, 24, 4) J24 joints are root-centred (module docstring)."""
    valid = S[..., 3] > 0
    depth = np.where(valid, np.abs(S[..., 2]), 0.0)
    count = valid.sum(axis=1)
    mean_depth = depth.sum(axis=1) / np.maximum(count, 1)
    reference = np.where(valid[:, PELVIS_ROW], depth[:, PELVIS_ROW], mean_depth)[count > 0]
    reference = reference[np.isfinite(reference)]
    return bool(reference.size) and float(np.median(reference)) < ROOT_RELATIVE_DEPTH


def derive_transl(
    model_keypoints: np.ndarray, unit_keypoints: np.ndarray, S: np.ndarray
) -> np.ndarray | None:
    """(3,) least-squares transl aligning J24 model keypoints to S's valid rows.

    model_keypoints: (24, 3) J24 keypoints of the body with zero transl; unit_keypoints: the same
    with transl (1, 1, 1), so that keypoints(t) = model + w t with w = unit - model (the
    regressor rows' sums, 1 up to rounding); S: (24, 4) target with validity. None if no row is
    valid.
    """
    valid = S[:, 3] > 0
    if not valid.any():
        return None
    weight = (unit_keypoints - model_keypoints)[valid]  # (V, 3)
    offset = S[valid, :3] - model_keypoints[valid]
    return (weight * offset).sum(axis=0) / (weight * weight).sum(axis=0)


def fit_transl(
    models: BodyModels, data: dict[str, np.ndarray], genders: np.ndarray, batch: int = 256
) -> np.ndarray:
    """(rows, 3) `derive_transl` of every row of a SPIN npz with `pose` and `shape`, batched;
    NaN for rows without SMPL or valid `S` joints. keypoints(t) = keypoints(0) + w t with w
    independent of pose and shape (the regressor rows' sums), so w comes from one rest body."""
    rows = len(data["imgname"])
    transl = np.full((rows, 3), np.nan)
    if "pose" not in data:
        return transl
    has_smpl = (
        np.asarray(data["has_smpl"], float) > 0 if "has_smpl" in data else np.ones(rows, bool)
    )
    # Rows with non-finite values are left out here; reading them raises, naming the row.
    finite = np.isfinite(data["pose"]).all(axis=1) & np.isfinite(data["shape"]).all(axis=1)
    finite &= np.isfinite(data["S"]).all(axis=(1, 2))
    indices = canonical_indices("spin_24")
    zeros = np.zeros((1, 72)), np.zeros((1, 10))
    for gender in np.unique(genders):
        available = models.get(int(gender)).canonical_available[indices].cpu().numpy()
        provided = np.where(available, 1.0, 0.0)[:, None]  # S rows the body model can match
        rest = models.keypoints(*zeros, np.zeros((1, 3)), int(gender))[0, indices]
        unit = models.keypoints(*zeros, np.ones((1, 3)), int(gender))[0, indices]
        chosen = np.flatnonzero((genders == gender) & has_smpl & finite)
        for start in range(0, len(chosen), batch):
            part = chosen[start : start + batch]
            pose = np.asarray(data["pose"][part], np.float64)
            betas = np.asarray(data["shape"][part], np.float64)
            posed = models.keypoints(pose, betas, np.zeros((len(part), 3)), int(gender))
            for row, keypoints in zip(part, posed[:, indices], strict=True):
                S = np.asarray(data["S"][row], np.float64) * provided
                fit = derive_transl(keypoints, keypoints + (unit - rest), S)
                if fit is not None:
                    transl[row] = fit
    return transl


@register_reader
class H36MReader(DatasetReader):
    """Human3.6M, SPIN npz + extracted frames + camera file (module docstring)."""

    dataset_id = "h36m"
    folder = "h36m"
    joint_set = "spin_24"
    splits = ("train", "p1", "p2")
    layout = LAYOUT

    def _open(self) -> None:
        self.source = self._split_file()
        data = load_npz(self.source)
        self._check_fields(data)
        names = [parse_image_name(n, self.source, i) for i, n in enumerate(data["imgname"])]
        rows = np.arange(len(names))
        if self.split == "p2" and self.source.name != NPZ_FILES["p2"]:
            rows = np.array([i for i in rows if names[i].camera == PROTOCOL2_CAMERA], dtype=int)
        self._data, self._names, self._rows = data, names, rows
        self.root_relative = is_root_relative(data["S"])
        self.camera_file = find_camera_file(self.root)
        self.cameras = read_cameras(self.camera_file)
        self._check_cameras()
        self._transl_rows: np.ndarray | None = None
        if "pose" in data and not self.root_relative and self.options.body_models is not None:
            self._transl_rows = self._cached_transl()  # here, before DataLoader workers fork

    def _split_file(self) -> Path:
        path = self.root / NPZ_FILES[self.split]
        if path.is_file():
            return path
        fallback = self.root / NPZ_FILES["p1"]
        if self.split == "p2" and fallback.is_file():
            return fallback
        also = f" (nor {fallback.name}, from which it can be derived)" if self.split == "p2" else ""
        raise missing(path, f"SPIN npz of split {self.split!r}{also}", LAYOUT)

    def _check_fields(self, data: dict[str, np.ndarray]) -> None:
        """Presence and shapes (finiteness is checked per record, naming the sample)."""
        if "imgname" not in data:
            raise DataError(f"{self.source}: field 'imgname' missing (has {sorted(data)})")
        count = len(data["imgname"])
        shapes = {"center": (count, 2), "scale": (count,), "S": (count, NUM_J24, 4),
                  "part": (count, NUM_J24, 3), "pose": (count, 72), "shape": (count, 10),
                  "has_smpl": (count,)}  # fmt: skip
        for key in ("center", "scale", "S"):
            if key not in data:
                raise DataError(f"{self.source}: field {key!r} missing (has {sorted(data)})")
        for key, shape in shapes.items():
            if key in data and data[key].shape != shape:
                raise DataError(f"{self.source}: field {key!r} has shape {data[key].shape}, "
                                f"expected {shape}")  # fmt: skip
        if ("pose" in data) != ("shape" in data):
            raise DataError(f"{self.source}: has only one of the fields 'pose' and 'shape'")

    def _check_cameras(self) -> None:
        needed = sorted({(self._names[i].subject, self._names[i].camera) for i in self._rows})
        absent = [pair for pair in needed if pair not in self.cameras]
        if absent:
            subject, camera = absent[0]
            raise DataError(
                f"{self.camera_file}: no camera for subject {subject} camera {camera} (needed by "
                f"{self.source.name}; missing pairs: {absent}; the file has subjects "
                f"{sorted({s for s, _ in self.cameras})})"
            )

    def __len__(self) -> int:
        return len(self._rows)

    def record(self, index: int, load_image: bool = True) -> SceneRecord:
        self._check_index(index)
        row = int(self._rows[index])
        name = self._names[row]
        sample_id = f"h36m/{self.split}/{name.stem}"
        path = self._image_path(row, name, sample_id)
        image = read_image(path, sample_id) if load_image else None
        size = image.shape[:2] if image is not None else image_size(path, sample_id)
        camera = self.cameras[name.subject, name.camera]
        person = self._person(row, sample_id)
        record = SceneRecord(
            dataset=self.dataset_id, split=self.split, index=index, sample_id=sample_id,
            image_path=path, image_size=(int(size[0]), int(size[1])), K=camera.K,
            joint_set=self.joint_set, people=[person], flags=image_flags(has_camera=True),
            image=image, meta=self._meta(row, name, camera),
        )  # fmt: skip
        if load_image and person.transl is not None and self.options.render_part_labels:
            self._add_part_maps(record, name)
        return record

    def _image_path(self, row: int, name: ImageName, sample_id: str) -> Path:
        imgname = str(self._data["imgname"][row])
        candidates = image_candidates(self.root, imgname, name)
        for path in candidates:
            if path.is_file():
                return path
        raise MissingDataError(
            f"{candidates[0]} (sample {sample_id}, {self.source.name} row {row}): image not "
            f"found; looked at {[str(p) for p in candidates]}\n  expected layout: {LAYOUT}"
        )

    def _field(self, key: str, row: int, sample_id: str) -> np.ndarray:
        value = np.asarray(self._data[key][row], np.float64)
        check_finite(value, f"{self.source} (row {row}, sample {sample_id})", key)
        return value

    def _person(self, row: int, sample_id: str) -> PersonRecord:
        S = self._field("S", row, sample_id)
        center, scale = self._field("center", row, sample_id), self._field("scale", row, sample_id)
        has_part = "part" in self._data
        part = self._field("part", row, sample_id) if has_part else np.zeros((NUM_J24, 3))
        pose, betas = self._smpl(row, sample_id)
        gender = self._gender(row)
        transl = None
        if pose is not None and betas is not None and not self.root_relative:
            transl = self._transl(row)
        box = box_center_scale_to_xyxy(
            torch.as_tensor(center), torch.as_tensor(scale / MASK_BOX_FACTOR)
        )
        flags = person_flags(
            has_keypoints2d=has_part and bool((part[:, 2] > 0).any()),
            has_keypoints3d=bool((S[:, 3] > 0).any()),
            keypoints3d_root_relative=self.root_relative,
            has_smpl=transl is not None,
            has_gender=gender != GENDER_CODES["unknown"],
        )
        return PersonRecord(
            keypoints2d=canonical_keypoints(part, self.joint_set),
            keypoints3d=canonical_keypoints(S, self.joint_set),
            box=box.numpy(), pose=pose, betas=betas, transl=transl, gender=gender, flags=flags,
        )  # fmt: skip

    def _smpl(self, row: int, sample_id: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        if "pose" not in self._data:
            return None, None
        if "has_smpl" in self._data and float(self._data["has_smpl"][row]) <= 0:
            return None, None
        return self._field("pose", row, sample_id), self._field("shape", row, sample_id)

    def _gender(self, row: int) -> int:
        if "gender" not in self._data:
            return GENDER_CODES["unknown"]
        code = str(self._data["gender"][row]).strip().lower()[:1]
        return {"m": GENDER_CODES["male"], "f": GENDER_CODES["female"]}.get(
            code, GENDER_CODES["unknown"]
        )

    def _transl(self, row: int) -> np.ndarray | None:
        """Least-squares transl of `row` (module docstring); None without body models."""
        if self._transl_rows is None:  # fitted in _open when body models are configured
            return None
        transl = self._transl_rows[row]
        return None if np.isnan(transl).any() else transl.copy()

    def _cached_transl(self) -> np.ndarray:
        """(rows, 3) transl of every npz row, NaN where undefined; computed once per npz file
        and body model in batches, kept in the cache (the per-row fit costs a body-model
        forward pass, which would dominate loading)."""
        models = self.body_models
        key = source_key(
            self.source, self.data_root, body_model=body_model_sha256(models.model_dir)
        )
        entry = entry_dir(self.cache_root, TRANSL_STEP, TRANSL_CACHE_VERSION, key)
        if is_complete(entry):
            return np.load(entry / "transl.npy")
        transl = fit_transl(models, self._data, self._genders())
        with build_entry(entry) as tmp:
            np.save(tmp / "transl.npy", transl)
        return transl

    def _genders(self) -> np.ndarray:
        return np.array([self._gender(row) for row in range(len(self._data["imgname"]))])

    def _meta(self, row: int, name: ImageName, camera: Camera) -> dict:
        return {
            "subject": name.subject, "action": name.action, "sequence": name.sequence,
            "camera": name.camera, "frame": name.frame, "imgname": str(self._data["imgname"][row]),
            "row": row, "source": str(self.source), "camera_file": str(self.camera_file),
            "distortion": {"k": camera.k.copy(), "p": camera.p.copy()},
        }  # fmt: skip

    def _add_part_maps(self, record: SceneRecord, name: ImageName) -> None:
        """Part labels, instance map and mask rendered from SMPL, through the cache."""
        part, instance = cached_part_maps(
            self.cache_root, self.data_root, self.source, name.stem, self.body_models,
            record.people, record.K, record.image_size,
        )  # fmt: skip
        record.part_segm, record.instance_map, record.mask = part, instance, instance > 0
        record.flags.update(has_part_segm=True, has_mask=True, has_instance_map=True)

    def check(self) -> list[str]:
        problems = super().check()
        subjects = SPLIT_SUBJECTS[self.split]
        cameras: tuple[str, ...] = (PROTOCOL2_CAMERA,) if self.split == "p2" else CAMERAS
        for row in self._rows:
            name = self._names[row]
            if name.subject not in subjects or name.camera not in cameras:
                problems.append(
                    f"{self.source}: row {row} ({name.file_name}) is not in split {self.split} "
                    f"(subjects {subjects}, cameras {cameras})"
                )
        return problems
