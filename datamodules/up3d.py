"""UP-3D (Unite the People, Lassner et al. CVPR 2017) with up-s31 and upi-s1h (datasets.md 2).

Layout under `data_root/up3d/`, as distributed:

    up-3d/{train,val,test,trainval}.txt          lines `/NNNNN_image.png`
    up-3d/NNNNN_image.png, _body.pkl, _joints.npy, _fit_crop_info.txt, _dataset_info.txt,
          _quality_info.txt, _render_light.png
    up-s31/s31/{train,val,trainval,test}_31_500_pkg_dorder.txt
          lines `/31/500/pkg_dorder/NNNNN_image.png /31/500/pkg_dorder/NNNNN_ann.png <scale>`
    up-s31/s31/NNNNN_image.png, NNNNN_ann.png, NNNNN_ann_vis.png
    upi-s1h/lsp/im%04d_segmentation.png, im%04d_part_segmentation.png

Splits, each in its list's line order: `train`, `val`, `test`, `trainval` (`up-3d/<split>.txt`);
`lsp_test`, the `test` images whose `_dataset_info.txt` source is `lsp` (BodyNet's
`namesUPlsp.txt` and GraphCMR's `up_3d_lsp_test.npz`, 639 images; that this is the papers'
"T1" is **unverified**, datasets.md 2.4); `s31_train`, `s31_val`, `s31_test` (the 31-part
segmentation set, `up-s31/s31/<split>_31_500_pkg_dorder.txt`).

UP-3D records (one person each, `joint_set` `lsp_14`):

- keypoints2d: `_joints.npy` (3, 14) rows x, y, visibility in `_image.png` pixels, LSP-14 order
  (datasets.md 0.4); the confidence is the visibility value as stored. Whether these are the
  source dataset's annotations or DeepCut detections is **unverified**. No 3D keypoints.
- SMPL: `_body.pkl` (restricted unpickler) holds `pose` (72), `betas` (10), `trans` (3),
  `rt` (3, Rodrigues), `t` (3), `f` (focal length in pixels) and `j2d` (not read). The fit was
  rendered with OpenDR's ProjectPoints: x_cam = R(rt) (M(pose, betas) + trans) + t. The
  camera-frame SMPL of the record is therefore global orientation R(rt) R_global and
  transl R(rt) (J0 + trans) + t - J0, where J0 is the rest-pose root joint (SMPL rotates about
  it; datasets.md 9.4b). trans and rt are zeros in the real files (datasets.md 2.1), so
  transl = t and J0 cancels; only a file with a non-zero rt needs the body model (for J0).
- Gender: UP-3D fits use SMPLify's gender-neutral model, so `gender` is 0 (neutral): the model
  these parameters must be posed with. The person's own gender is not annotated, so
  `has_gender` is False.
- K: the fit camera is f = `f` (5000 in practice) with the principal point at the centre of
  the fit crop, (w / 2, h / 2). We read OpenDR's pixel coordinates as the suite's (integer
  coordinates are pixel centres; OpenDR's renderer offsets its frustum by half a pixel so that
  pixel i is centred at i, recalled from OpenDR's `renderer.py`, not rechecked here), so the
  principal point is exactly (w / 2, h / 2), half a pixel right of and below the crop's
  geometric centre. `_fit_crop_info.txt` = `h w y0 y1 x0 x1`: the h x w fit crop is resized to
  (y1 - y0) x (x1 - x0) and pasted at rows y0:y1, cols x0:x1 of the image. The resize is taken
  edge to edge (cv2/PIL convention: crop edge -0.5 maps to x0 - 0.5), so
  u_image = x0 - 0.5 + (u_fit + 0.5) (x1 - x0) / w, and K = A K_fit describes `_image.png`.
  `has_camera` is False: f = 5000 is the fitting's assumption, not a calibration; but K is the
  camera that projects the fit onto the image.
- box: the tight box of the non-white pixels (min channel < 255) of `_render_light.png`, the
  rendered fit, as SPIN, GraphCMR and mmhuman3d do; the keypoint box if that file has no
  such pixel.
- meta: `up3d_id`, `source` and `source_index` (`_dataset_info.txt`), `quality`
  (`_quality_info.txt`, kept as written: `high` is the label ROMP keeps; others are presumably
  `medium`/`low`, **unverified**), `fit_crop`, `fit_focal`.
- Maps, only for `lsp`-sourced images: upi-s1h's manual masks of LSP image `im%04d` with the
  `_dataset_info.txt` index as is (BodyNet's `preprocess_up_segm.m` does the same; that the
  UP image is that LSP image unchanged is **unverified**, so the masks are attached only when
  their size equals the image's). `extra_maps["silhouette"]` (bool, 255 = person), also the
  record's `mask` (`has_mask`), and `extra_maps["parts6"]` (uint8 0 background, 1..6 parts,
  255 unlabelled, kept so that losses can ignore it). That the part ids follow the UP 6-part
  grouping below is **unverified**. No instance map.
- Part labels (`part_segm`, `has_part_segm`): the 24 SMPL parts of the fit, rendered with the
  fit camera K at the image size by `datamodules.part_labels` (cached per image, keyed by the
  `_body.pkl`), as BodyNet obtains UP-3D's training segmentations "from the provided 3D SMPL
  fits" (section 4.5); they need `ReaderOptions.body_models`, and a reader without them or
  with `render_part_labels` False gives none (`has_part_segm` False).

up-s31 records: `NNNNN_image.png` with `extra_maps["parts31"]` (`NNNNN_ann.png`, uint8 0 background,
1..31 regions of `REGIONS_31`) and `extra_maps["parts6"]` (the UP 6-part grouping of
`SIX_PART_GROUPS` applied to parts31); `mask` = parts31 > 0 (`has_mask`); the box is the mask's.
classner's `create_dataset.py` resizes the UP-3D image by the list's scale factor (500 /
`robust_person_size(joints)`; scipy's imresize: size floor(W s) x floor(H s)) and crops it to at
most 513 x 513 around the visible joints' mean (`s31_crop`); it names its outputs by a running index
over train + val + test, but the released val list holds `08130` (quoted in BodyNet's
`preprocess_up_segm.m`), beyond any val running index (5703..7125), so the release follows BodyNet's
assumption that the 5-digit prefix is the UP-3D id (**unverified**). The reader checks that
assumption per image: when the UP-3D files of that id exist, their joints give exactly the list's
scale factor, and the predicted resized and cropped size is the s31 image's, the UP-3D keypoints,
SMPL and K are mapped into the s31 image (keypoints that land outside it get confidence 0; meta
`up3d_id`); otherwise the record has no keypoints or SMPL and a default K (f = 5000, principal point
at the image centre), with `has_camera` False either way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from body import joint_sets
from datamodules.base import DatasetReader, register_reader
from datamodules.io import DataError, MissingDataError, field, missing, read_image, read_pickle
from datamodules.part_labels import cached_part_maps
from datamodules.records import (
    NUM_CANONICAL,
    PersonRecord,
    SceneRecord,
    canonical_keypoints,
    image_flags,
    keypoint_box,
    mask_box,
    person_flags,
)
from geometry.cameras import world_to_camera_smpl
from geometry.rotations import axis_angle_to_matrix

UP3D_DIR = "up-3d"
S31_DIR = "up-s31/s31"
UPI_LSP_DIR = "upi-s1h/lsp"
SOURCES = ("lsp", "lspext", "mpii", "fashionpose")
UP3D_SPLITS = ("train", "val", "test", "trainval")
S31_SPLITS = {"s31_train": "train", "s31_val": "val", "s31_test": "test"}
S31_LIST = "{}_31_500_pkg_dorder.txt"
S31_TARGET_PERSON_SIZE = 500.0  # the `500` of the list names: person height in pixels
S31_MAX_SIZE = 513  # create_dataset.py's --crop
DEFAULT_FOCAL = 5000.0
GENDER_NEUTRAL = 0
# Split sizes of the release (datasets.md 2.1, 2.4); checked on real roots only.
EXPECTED_COUNTS = {
    "train": 5703, "val": 1423, "test": 1389, "trainval": 7126, "lsp_test": 639,
    "s31_train": 5703, "s31_val": 1423, "s31_test": 1389,
}  # fmt: skip

# up-s31 region ids 1..31 (classner's up_tools/model.py `regions`; `crotch` is merged into
# rlbody), and the UP 6-part grouping (`six_region_groups`): part k + 1 = group k.
REGIONS_31 = (
    "rhand", "rwrist", "rlarm", "relbow", "ruarm", "rshoulder", "rubody", "rlbody", "ruleg",
    "rknee", "rlleg", "rankle", "rfoot", "lhand", "lwrist", "llarm", "lelbow", "luarm",
    "lshoulder", "lubody", "llbody", "luleg", "lknee", "llleg", "lankle", "lfoot", "luhead",
    "ruhead", "rlhead", "llhead", "neck",
)  # fmt: skip
SIX_PART_GROUPS = (
    ("head", ("ruhead", "rlhead", "luhead", "llhead")),
    ("torso", ("neck", "rubody", "rlbody", "lubody", "llbody", "rshoulder", "lshoulder")),
    ("right_arm", ("ruarm", "relbow", "rlarm", "rwrist", "rhand")),
    ("left_arm", ("luarm", "lelbow", "llarm", "lwrist", "lhand")),
    ("right_leg", ("ruleg", "rknee", "rlleg", "rankle", "rfoot")),
    ("left_leg", ("luleg", "lknee", "llleg", "lankle", "lfoot")),
)


def _parts31_to_parts6() -> np.ndarray:
    """(32,) uint8 lookup: region id (0 background, 1..31) -> 6-part id (0 background, 1..6)."""
    table = np.zeros(len(REGIONS_31) + 1, dtype=np.uint8)
    for part, (_, regions) in enumerate(SIX_PART_GROUPS, start=1):
        for region in regions:
            table[REGIONS_31.index(region) + 1] = part
    return table


PARTS31_TO_PARTS6 = _parts31_to_parts6()

LAYOUT = (
    "up3d/{up-3d/{train,val,test,trainval}.txt + NNNNN_{image.png,body.pkl,joints.npy,"
    "fit_crop_info.txt,dataset_info.txt,quality_info.txt,render_light.png}, "
    "up-s31/s31/{train,val,trainval,test}_31_500_pkg_dorder.txt + NNNNN_{image,ann,ann_vis}.png, "
    "upi-s1h/lsp/im%04d_{segmentation,part_segmentation}.png}"
)


# ----------------------------------------------------------------------------------------------
# small files


def read_split_list(path: Path) -> list[str]:
    """The 5-digit ids of an `up-3d/<split>.txt` list (lines `/NNNNN_image.png`), in order."""
    if not path.is_file():
        raise missing(path, f"UP-3D split list {path.name}", LAYOUT)
    ids = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            ids.append(_image_id(line.strip(), path, number))
    return ids


def _image_id(entry: str, path: Path, number: int) -> str:
    match = re.fullmatch(r"(\d{5})_image\.png", entry.rsplit("/", 1)[-1])
    if match is None:
        raise DataError(f"{path}: line {number} {entry!r} is not '/NNNNN_image.png'")
    return match.group(1)


def read_s31_list(path: Path) -> list[tuple[str, float]]:
    """(id, scale factor) per line of an up-s31 list, in order."""
    if not path.is_file():
        raise missing(path, f"up-s31 split list {path.name}", LAYOUT)
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            scale = float(tokens[2]) if len(tokens) == 3 else math.nan
        except ValueError:
            scale = math.nan
        if not (math.isfinite(scale) and scale > 0):
            raise DataError(f"{path}: line {number} {line!r} is not 'IMAGE ANNOTATION SCALE'")
        entries.append((_image_id(tokens[0], path, number), scale))
    return entries


def _read_line(path: Path, what: str) -> str:
    if not path.is_file():
        raise MissingDataError(f"{path}: UP-3D {what} file not found")
    return path.read_text().strip()


@dataclass(frozen=True)
class FitCrop:
    """`_fit_crop_info.txt`: the h x w fit crop, pasted resized at rows y0:y1, cols x0:x1."""

    h: int
    w: int
    y0: int
    y1: int
    x0: int
    x1: int

    def image_from_fit(self) -> np.ndarray:
        """(3, 3) affine from fit-crop pixels to image pixels (edge-to-edge resize)."""
        sx, sy = (self.x1 - self.x0) / self.w, (self.y1 - self.y0) / self.h
        return np.array(
            [[sx, 0.0, self.x0 - 0.5 + 0.5 * sx], [0.0, sy, self.y0 - 0.5 + 0.5 * sy], [0, 0, 1]]
        )

    def as_list(self) -> list[int]:
        return [self.h, self.w, self.y0, self.y1, self.x0, self.x1]


def read_fit_crop(path: Path, image_size: tuple[int, int]) -> FitCrop:
    """Parse and check `h w y0 y1 x0 x1` against the image size (H, W)."""
    text = _read_line(path, "fit crop info")
    try:
        crop = FitCrop(*(int(token) for token in text.split()))
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: expected 6 integers 'h w y0 y1 x0 x1', got {text!r}") from error
    height, width = image_size
    if not (
        crop.h > 0 and crop.w > 0 and 0 <= crop.y0 < crop.y1 <= height
        and 0 <= crop.x0 < crop.x1 <= width
    ):  # fmt: skip
        raise DataError(f"{path}: crop {text!r} does not fit the {height}x{width} image")
    return crop


def read_dataset_info(path: Path) -> tuple[str, int]:
    """(`source`, `index`) of `_dataset_info.txt`, e.g. ('lsp', 1002). The sources known are
    `SOURCES`; another name is kept as written (it is just not `lsp`)."""
    text = _read_line(path, "dataset info")
    tokens = text.split()
    if len(tokens) != 2 or not tokens[1].isdigit():
        raise DataError(f"{path}: expected '<source> <index>' (source one of {SOURCES}): {text!r}")
    return tokens[0], int(tokens[1])


def read_joints(path: Path) -> np.ndarray:
    """(3, 14) float64 `_joints.npy`: x, y, visibility rows, LSP-14 order, image pixels."""
    if not path.is_file():
        raise MissingDataError(f"{path}: UP-3D joints file not found")
    try:
        joints = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: cannot read .npy ({error})") from error
    return field({"joints": joints}, "joints", path, (3, 14)).astype(np.float64)


_BODY_FIELDS = {"pose": (72,), "betas": (10,), "trans": (3,), "rt": (3,), "t": (3,)}


def read_body(path: Path) -> dict[str, np.ndarray]:
    """The fit of `_body.pkl`: float64 pose (72,), betas (10,), trans, rt, t (3,), f (2,)."""
    data = read_pickle(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict, got {type(data).__name__}")
    body = {key: field(data, key, path, shape).astype(np.float64)
            for key, shape in _BODY_FIELDS.items()}  # fmt: skip
    focal = field(data, "f", path).astype(np.float64).reshape(-1)
    if focal.size not in (1, 2) or (focal <= 0).any():
        raise DataError(f"{path}: field 'f' must be one or two positive focal lengths: {focal}")
    body["f"] = np.broadcast_to(focal, (2,)).copy()
    return body


def read_label_map(path: Path, sample_id: str) -> np.ndarray:
    """(H, W) uint8 values of a PNG label map (channel 0 of a colour file)."""
    if not path.is_file():
        raise MissingDataError(f"{path} (sample {sample_id}): label map not found")
    try:
        with Image.open(path) as image:
            image.load()
            values = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path} (sample {sample_id}): cannot decode ({error})") from error
    if values.dtype == bool:
        values = values.astype(np.uint8) * 255
    if values.ndim == 3:
        values = values[..., 0]
    if values.dtype != np.uint8:
        raise DataError(f"{path} (sample {sample_id}): expected 8-bit labels, got {values.dtype}")
    return np.ascontiguousarray(values)


def png_size(path: Path, sample_id: str) -> tuple[int, int]:
    """(H, W) of an image from its header, without decoding the pixels."""
    if not path.is_file():
        raise MissingDataError(f"{path} (sample {sample_id}): image file not found")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path} (sample {sample_id}): cannot read header ({error})") from error
    return height, width


# ----------------------------------------------------------------------------------------------
# cameras and bodies


def fit_intrinsics(focal: np.ndarray, crop: FitCrop) -> np.ndarray:
    """(3, 3) OpenDR fit camera: focal (fx, fy), principal point (w / 2, h / 2), fit-crop pixels."""
    return np.array([[focal[0], 0.0, crop.w / 2.0], [0.0, focal[1], crop.h / 2.0], [0, 0, 1.0]])


def default_intrinsics(image_size: tuple[int, int]) -> np.ndarray:
    """(3, 3) f = 5000 and the principal point at (W / 2, H / 2): the UP fitting convention."""
    height, width = image_size
    return np.array([[DEFAULT_FOCAL, 0, width / 2.0], [0, DEFAULT_FOCAL, height / 2.0], [0, 0, 1]])


def camera_frame_smpl(
    body: dict[str, np.ndarray], root_joint: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(pose (72,), transl (3,)) in the camera frame of the OpenDR fit (module docstring).

    `root_joint(betas)` gives the rest-pose root joint J0; it is called only when rt != 0.
    """
    pose = body["pose"].copy()
    if not body["rt"].any():
        return pose, body["trans"] + body["t"]
    tensors = {key: torch.as_tensor(body[key]) for key in ("rt", "trans", "t")}
    orient, transl = world_to_camera_smpl(
        torch.as_tensor(pose[:3]),
        tensors["trans"],
        torch.as_tensor(root_joint(body["betas"]), dtype=torch.float64),
        axis_angle_to_matrix(tensors["rt"]),
        tensors["t"],
    )
    pose[:3] = orient.numpy()
    return pose, transl.numpy()


def _lsp_index(name: str) -> int:
    return joint_sets.joint_names("lsp_14").index(name)


# LSP limbs of classner's `robust_person_size`, in its order, with the factor that turns the
# limb's length into a person height; neck-shoulder limbs are never used (too unstable).
_PERSON_SIZE_LIMBS = (
    ("lsp_head_top", "lsp_neck", 6.0), ("lsp_neck", "right_shoulder", None),
    ("lsp_neck", "left_shoulder", None), ("right_shoulder", "right_elbow", 5.4),
    ("right_elbow", "right_wrist", 5.8), ("left_shoulder", "left_elbow", 5.4),
    ("left_elbow", "left_wrist", 5.8), ("right_shoulder", "lsp_right_hip", 3.4),
    ("lsp_right_hip", "right_knee", 4.0), ("right_knee", "right_ankle", 4.4),
    ("left_shoulder", "lsp_left_hip", 3.4), ("lsp_left_hip", "left_knee", 4.0),
    ("left_knee", "left_ankle", 4.4),
)  # fmt: skip


def robust_person_size(joints: np.ndarray) -> float | None:
    """classner's person-height estimate (pixels) from (3, 14) LSP joints, or None.

    The longest limb whose two joints have visibility >= 1 (neck-shoulder limbs excluded),
    times its limb factor; None when no limb qualifies.
    """
    best, best_length = None, -1.0
    for first, second, factor in _PERSON_SIZE_LIMBS:
        a, b = _lsp_index(first), _lsp_index(second)
        if factor is None or joints[2, a] < 1 or joints[2, b] < 1:
            continue
        length = float(np.linalg.norm(joints[:2, a] - joints[:2, b]))
        if length > best_length:
            best, best_length = factor, length
    return None if best is None else best * best_length


def s31_scale(joints: np.ndarray) -> float | None:
    """The up-s31 scale factor 500 / robust_person_size (None if no limb is visible)."""
    size = robust_person_size(joints)
    return None if size is None else S31_TARGET_PERSON_SIZE / size


def s31_crop(size: tuple[int, int], centre: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of classner's `get_crop`: at most 513 px per axis around `centre`.

    size: (H, W) of the resized image; centre: (x, y) person centre in its pixels.
    """
    y0, y1 = _crop_axis(size[0], centre[1])
    x0, x1 = _crop_axis(size[1], centre[0])
    return y0, y1, x0, x1


def _crop_axis(length: int, centre: float) -> tuple[int, int]:
    if length <= S31_MAX_SIZE:
        return 0, length
    start = math.floor(centre) - S31_MAX_SIZE // 2
    end = start + S31_MAX_SIZE
    before, after = start, length - end
    if before < after and before < 0 < after:
        shift = min(after, -before)
    elif before >= after and after < 0 < before:
        shift = -min(before, -after)
    else:
        shift = 0
    return start + shift, end + shift


def s31_transform(
    joints: np.ndarray, image_size: tuple[int, int], scale: float, s31_size: tuple[int, int]
) -> np.ndarray | None:
    """(3, 3) affine from UP-3D image pixels to s31 image pixels, or None if inconsistent.

    The image of size (H, W) is resized to floor((H, W) * scale) (pixel-centre aligned), then
    cropped by `s31_crop` around the visible joints' mean; None when the predicted size differs
    from `s31_size` (by more than one pixel along an uncropped axis, the list's 6-decimal scale).
    """
    resized = (int(image_size[0] * scale), int(image_size[1] * scale))  # floor, as scipy's
    visible = joints[2] == 1
    if not visible.any():
        return None
    y0, y1, x0, x1 = s31_crop(resized, joints[:2, visible].mean(axis=1) * scale)
    ratios = []
    for axis, (start, end) in enumerate(((y0, y1), (x0, x1))):
        cropped = resized[axis] > S31_MAX_SIZE
        if cropped and end - start != s31_size[axis]:
            return None
        if not cropped and abs(resized[axis] - s31_size[axis]) > 1:
            return None
        # Along an uncropped axis the s31 image's own size is exact (the list rounds the scale).
        ratios.append((resized[axis] if cropped else s31_size[axis]) / image_size[axis])
    sy, sx = ratios
    return np.array([[sx, 0.0, 0.5 * sx - 0.5 - x0], [0.0, sy, 0.5 * sy - 0.5 - y0], [0, 0, 1]])


# ----------------------------------------------------------------------------------------------
# the reader


@dataclass
class _Fit:
    """One UP-3D image's fit, in the image's pixels and camera frame."""

    image_path: Path
    image_size: tuple[int, int]
    K: np.ndarray
    joints: np.ndarray  # (3, 14)
    pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    crop: FitCrop
    focal: np.ndarray


def _person(keypoints_lsp: np.ndarray | None, box: np.ndarray, fit: _Fit | None) -> PersonRecord:
    """The record's person: keypoints (14, 3) LSP-14 or None, SMPL from `fit` or None."""
    if keypoints_lsp is None:
        keypoints2d = np.zeros((NUM_CANONICAL, 3))
    else:
        keypoints2d = canonical_keypoints(keypoints_lsp, "lsp_14")
    return PersonRecord(
        keypoints2d=keypoints2d,
        keypoints3d=np.zeros((NUM_CANONICAL, 4)),
        box=box,
        pose=None if fit is None else fit.pose,
        betas=None if fit is None else fit.betas,
        transl=None if fit is None else fit.transl,
        gender=GENDER_NEUTRAL,
        flags=person_flags(has_keypoints2d=bool(keypoints2d[:, 2].any()), has_smpl=fit is not None),
    )


@register_reader
class UP3DReader(DatasetReader):
    """UP-3D, up-s31 and upi-s1h (module docstring): one person per image."""

    dataset_id = "up3d"
    folder = "up3d"
    joint_set = "lsp_14"
    splits = (*UP3D_SPLITS, "lsp_test", *S31_SPLITS)
    layout = LAYOUT

    def _open(self) -> None:
        self.up_dir = self.root / UP3D_DIR
        self.s31_dir = self.root / S31_DIR
        self.entries: list[tuple[str, float]] = []
        if self.split in S31_SPLITS:
            self.entries = read_s31_list(self.s31_dir / S31_LIST.format(S31_SPLITS[self.split]))
            return
        list_name = "test" if self.split == "lsp_test" else self.split
        ids = read_split_list(self.up_dir / f"{list_name}.txt")
        if self.split == "lsp_test":
            ids = [i for i in ids if self._dataset_info(i)[0] == "lsp"]
        self.entries = [(up_id, 1.0) for up_id in ids]

    def __len__(self) -> int:
        return len(self.entries)

    def record(self, index: int, load_image: bool = True) -> SceneRecord:
        self._check_index(index)
        if self.split in S31_SPLITS:
            return self._s31_record(index, load_image)
        return self._up3d_record(index, load_image)

    def check(self) -> list[str]:
        problems = super().check()
        expected = EXPECTED_COUNTS[self.split]
        if not self.synthetic and len(self) != expected:
            problems.append(
                f"{self.root}: split {self.split} has {len(self)} images; the release has "
                f"{expected}"
            )
        return problems

    # -- UP-3D -----------------------------------------------------------------------------

    def _path(self, up_id: str, suffix: str) -> Path:
        return self.up_dir / f"{up_id}_{suffix}"

    def _dataset_info(self, up_id: str) -> tuple[str, int]:
        return read_dataset_info(self._path(up_id, "dataset_info.txt"))

    def _root_joint(self, betas: np.ndarray) -> np.ndarray:
        return self.body_models.rest_root_joint(betas, GENDER_NEUTRAL)

    def _fit(self, up_id: str) -> _Fit:
        """The fit of one UP-3D image, moved into the image's camera (module docstring)."""
        image_path = self._path(up_id, "image.png")
        image_size = png_size(image_path, f"up3d/{up_id}")
        crop = read_fit_crop(self._path(up_id, "fit_crop_info.txt"), image_size)
        body = read_body(self._path(up_id, "body.pkl"))
        pose, transl = camera_frame_smpl(body, self._root_joint)
        K = crop.image_from_fit() @ fit_intrinsics(body["f"], crop)
        joints = read_joints(self._path(up_id, "joints.npy"))
        return _Fit(image_path, image_size, K, joints, pose, body["betas"], transl, crop,
                    body["f"])  # fmt: skip

    def _fit_box(self, up_id: str, keypoints: np.ndarray) -> np.ndarray:
        """Box of the rendered fit's non-white pixels, else of the (14, 3) keypoints."""
        render = read_image(self._path(up_id, "render_light.png"), f"up3d/{up_id}")
        box = mask_box(render.min(axis=2) < 255)
        return box if np.isfinite(box).all() else keypoint_box(keypoints)

    @property
    def _renders_parts(self) -> bool:
        return self.options.render_part_labels and self.options.body_models is not None

    def _up3d_record(self, index: int, load_image: bool) -> SceneRecord:
        up_id = self.entries[index][0]
        sample_id = f"up3d/{up_id}"
        fit = self._fit(up_id)
        keypoints = fit.joints.T  # (14, 3)
        person = _person(keypoints, self._fit_box(up_id, keypoints), fit)
        source, source_index = self._dataset_info(up_id)
        masks = self._lsp_mask_paths(source, source_index, fit.image_size, sample_id)
        record = SceneRecord(
            dataset=self.dataset_id, split=self.split, index=index, sample_id=sample_id,
            image_path=fit.image_path, image_size=fit.image_size, K=fit.K,
            joint_set=self.joint_set, people=[person],
            flags=image_flags(has_mask="silhouette" in masks,
                              has_part_segm=self._renders_parts),
            meta={"up3d_id": up_id, "source": source, "source_index": source_index,
                  "quality": _read_line(self._path(up_id, "quality_info.txt"), "quality info"),
                  "fit_crop": fit.crop.as_list(), "fit_focal": fit.focal.tolist()},
        )  # fmt: skip
        if load_image:
            record.image = read_image(fit.image_path, sample_id)
            if "silhouette" in masks:
                record.mask = read_label_map(masks["silhouette"], sample_id) == 255
                record.extra_maps["silhouette"] = record.mask
            if "parts6" in masks:
                record.extra_maps["parts6"] = read_label_map(masks["parts6"], sample_id)
            if self._renders_parts:
                record.part_segm, _ = cached_part_maps(
                    self.cache_root, self.data_root, self._path(up_id, "body.pkl"), up_id,
                    self.body_models, record.people, record.K, record.image_size,
                )  # fmt: skip
        return record

    def _lsp_mask_paths(
        self, source: str, source_index: int, image_size: tuple[int, int], sample_id: str
    ) -> dict[str, Path]:
        """upi-s1h files (`silhouette`, `parts6`) of an `lsp` image that have its size."""
        if source != "lsp":
            return {}
        stem = self.root / UPI_LSP_DIR / f"im{source_index:04d}"
        paths = {"silhouette": Path(f"{stem}_segmentation.png"),
                 "parts6": Path(f"{stem}_part_segmentation.png")}  # fmt: skip
        return {name: path for name, path in paths.items()
                if path.is_file() and png_size(path, sample_id) == image_size}  # fmt: skip

    # -- up-s31 ----------------------------------------------------------------------------

    def _s31_record(self, index: int, load_image: bool) -> SceneRecord:
        s31_id, scale = self.entries[index]
        sample_id = f"up3d/s31/{s31_id}"
        image_path = self.s31_dir / f"{s31_id}_image.png"
        image_size = png_size(image_path, sample_id)
        parts31 = self._read_parts31(s31_id, image_size, sample_id)
        fit, transform = self._s31_fit(s31_id, scale, image_size)
        mapped = fit is not None and transform is not None
        keypoints, K = None, default_intrinsics(image_size)
        if fit is not None and transform is not None:
            keypoints, K = _map_keypoints(fit.joints.T, transform, image_size), transform @ fit.K
        record = SceneRecord(
            dataset=self.dataset_id, split=self.split, index=index, sample_id=sample_id,
            image_path=image_path, image_size=image_size, K=K, joint_set=self.joint_set,
            people=[_person(keypoints, mask_box(parts31 > 0), fit if mapped else None)],
            flags=image_flags(has_mask=True),
            meta={"s31_id": s31_id, "scale_factor": scale, "up3d_id": s31_id if mapped else None},
        )  # fmt: skip
        if load_image:
            record.image = read_image(image_path, sample_id)
            record.mask = parts31 > 0
            record.extra_maps = {"parts31": parts31, "parts6": PARTS31_TO_PARTS6[parts31]}
        return record

    def _read_parts31(self, s31_id: str, image_size: tuple[int, int], sample_id: str) -> np.ndarray:
        """(H, W) uint8 region map `NNNNN_ann.png`, checked against the image size and 0..31."""
        path = self.s31_dir / f"{s31_id}_ann.png"
        parts31 = read_label_map(path, sample_id)
        if parts31.shape != image_size or parts31.max() > len(REGIONS_31):
            raise DataError(
                f"{path} (sample {sample_id}): expected a {image_size} map of 0..31, got "
                f"{parts31.shape} with values up to {parts31.max()}"
            )
        return parts31

    def _s31_fit(
        self, s31_id: str, scale: float, s31_size: tuple[int, int]
    ) -> tuple[_Fit | None, np.ndarray | None]:
        """The UP-3D fit of the same id and the map into the s31 image, if they agree."""
        if not self._path(s31_id, "body.pkl").is_file():
            return None, None
        fit = self._fit(s31_id)
        expected = s31_scale(fit.joints)
        if expected is None or abs(expected - scale) > 1e-5 * scale + 5e-7:
            return None, None
        return fit, s31_transform(fit.joints, fit.image_size, scale, s31_size)


def _map_keypoints(
    keypoints: np.ndarray, transform: np.ndarray, image_size: tuple[int, int]
) -> np.ndarray:
    """(14, 3) keypoints moved by a (3, 3) pixel affine; confidence 0 outside the image."""
    mapped = keypoints.copy()
    mapped[:, :2] = keypoints[:, :2] @ transform[:2, :2].T + transform[:2, 2]
    height, width = image_size
    inside = (
        (mapped[:, 0] >= -0.5) & (mapped[:, 0] <= width - 0.5)
        & (mapped[:, 1] >= -0.5) & (mapped[:, 1] <= height - 0.5)
    )  # fmt: skip
    mapped[~inside, 2] = 0.0
    return mapped
