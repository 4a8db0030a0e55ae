"""The crop sample and the scene sample: the one `crop_from_scene` and `scene_sample`.

`crop_from_scene` cuts one person out of a native-resolution `SceneRecord` with a single
`cv2.warpAffine` from the original image; the same 2x3 matrix moves keypoints, and (with
nearest sampling) masks, part labels and the other maps. Its geometry, in order:

1. Box. A square of side `box_factor x max(w, h)` (SPIN's 1.2 for keypoint boxes) around the
   person's box centre, then scaled by `params.scale` and shifted by `params.shift` (fractions of
   the side).
2. In-plane rotation by `params.rotation` (radians, positive turns the image content clockwise on
   screen, i.e. about the camera's +z axis). It turns the image about the principal point with
   A = K R_z K^-1 (an affine map, exact also when fx != fy) and rotates `keypoints3d`, the
   global orientation and `transl` about the camera z axis (transl' = R_z (J0 + t) - J0, with J0
   the shaped body's rest root joint). The crop box follows the rotated box centre. K is only
   ever scaled and shifted (`geometry.crop_intrinsics`), never rotated.
3. Resize to `out_size` x `out_size` (`geometry.crop_affine`). When the crop shrinks the image
   by a factor d > 1 (the usual case: a 1080p person to 224 or 64 pixels), the part of the
   image the warp reads is first blurred with a Gaussian of sigma = (d - 1) / 2 (the
   anti-aliasing rule of scikit-image's `rescale`; 4D-Humans blurs its crops the same way), so
   textures do not alias into noise. Maps are sampled nearest, without blur.
4. Horizontal flip (`params.flip`): the crop is mirrored (u -> S - 1 - u). The 3D annotations are
   mirrored about the camera's x = 0 plane (x -> -x), which keeps K's focal lengths and moves its
   principal point to S - 1 - cx; left and right keypoints swap (the canonical flip permutation),
   the SMPL pose is mirrored (`body.flip_smpl_pose`, the root included), transl follows
   (t' = M (J0 + t) - J0, M = diag(-1, 1, 1)), and part labels swap sides.

Keypoints keep their confidence when they leave the crop (losses decide what to do with them).
`to_tensors` normalises the image with ImageNet's mean and standard deviation and returns the
crop sample of DESIGN.md as tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from body.joint_sets import SMPL_FLIP_PERMUTATION, canonical_flip_permutation
from datamodules.records import IMAGE_FLAGS, PERSON_FLAGS, SceneRecord
from geometry.cameras import crop_affine, crop_intrinsics

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_CANONICAL_FLIP = np.array(canonical_flip_permutation())
# Part label k (1..24) of the mirrored body is the other side's label; 0 stays background.
_PART_FLIP = np.array([0, *(p + 1 for p in SMPL_FLIP_PERMUTATION)], dtype=np.uint8)
_MIRROR = np.diag([-1.0, 1.0, 1.0])
# Shrink factors up to this are warped without the anti-aliasing blur (sigma <= 0.05 px).
ANTIALIAS_MIN_SHRINK = 1.1


@dataclass
class CropParams:
    """Augmentation of one crop: box scale and shift (fractions of the side), in-plane rotation
    (radians), horizontal flip. The default is the plain, centred crop."""

    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    rotation: float = 0.0
    flip: bool = False


@dataclass
class Crop:
    """A crop of one person, NumPy arrays (module docstring); `to_tensors` makes the sample."""

    image: np.ndarray  # (S, S, 3) uint8 RGB
    K: np.ndarray  # (3, 3)
    keypoints2d: np.ndarray  # (K, 3) crop pixels and confidence
    keypoints3d: np.ndarray  # (K, 4) camera-frame metres and confidence
    pose: np.ndarray  # (72,)
    betas: np.ndarray  # (10,)
    transl: np.ndarray  # (3,)
    gender: int
    part_segm: np.ndarray  # (S, S) int64
    mask: np.ndarray  # (S, S) bool
    flags: dict[str, bool]
    meta: dict
    extra_maps: dict[str, np.ndarray] = field(default_factory=dict)


def square_box(box: np.ndarray, factor: float) -> tuple[np.ndarray, float]:
    """(centre (2,), side) of the square of side factor x max(w, h) around a box."""
    centre = (box[:2] + box[2:]) / 2.0
    side = float(max(box[2] - box[0], box[3] - box[1])) * factor
    return centre, max(side, 1.0)


def rotation_z(angle: float) -> np.ndarray:
    """(3, 3) rotation about the camera's z axis by `angle` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def crop_matrix(
    K: np.ndarray, box: np.ndarray, out_size: int, params: CropParams, box_factor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M (3, 3) full-image pixels -> crop pixels, K_crop (3, 3), R (3, 3) 3D rotation+mirror)."""
    rotation = rotation_z(params.rotation)
    image_rotation = K @ rotation @ np.linalg.inv(K)  # affine: R_z leaves z alone
    centre, side = square_box(box, box_factor)
    side *= params.scale
    centre = centre + np.asarray(params.shift) * side
    centre = (image_rotation @ np.append(centre, 1.0))[:2]
    square = torch.as_tensor(np.concatenate([centre - side / 2.0, centre + side / 2.0]))
    crop = np.eye(3)
    crop[:2] = crop_affine(square, (out_size, out_size)).numpy()
    K_crop = crop_intrinsics(torch.as_tensor(K), square, (out_size, out_size)).numpy()
    matrix = crop @ image_rotation
    rotation_3d = rotation
    if params.flip:
        flip = np.array([[-1.0, 0.0, out_size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = flip @ matrix
        K_crop = K_crop.copy()
        K_crop[0, 2] = out_size - 1.0 - K_crop[0, 2]
        rotation_3d = _MIRROR @ rotation
    return matrix, K_crop, rotation_3d


def crop_from_scene(
    record: SceneRecord,
    person: int,
    out_size: int,
    params: CropParams | None = None,
    box_factor: float = 1.2,
    root_joint: np.ndarray | None = None,
    box: np.ndarray | None = None,
) -> Crop:
    """Crop person `person` of `record` (which must hold its image) to `out_size` pixels.

    Args:
        params: augmentation (default: none).
        box_factor: side of the square crop relative to the larger side of the person's box.
        root_joint: (3,) J0 of this person's shaped body (`BodyModels.rest_root_joint`); needed
            to rotate or flip SMPL parameters (ValueError if missing then).
        box: override of the person's box (x0, y0, x1, y1), e.g. PARE's partial-body crop.
    """
    params = params or CropParams()
    if record.image is None:
        raise ValueError(f"{record.sample_id}: crop_from_scene needs the record's image")
    target = record.people[person]
    box = target.box if box is None else np.asarray(box, dtype=np.float64)
    if not np.isfinite(box).all():
        raise ValueError(f"{record.sample_id}: person {person} has no box")
    matrix, K_crop, rotation = crop_matrix(record.K, box, out_size, params, box_factor)
    image = warp_image(record.image, matrix, (out_size, out_size))
    part_segm, mask = _person_maps(record, person, matrix, out_size)
    pose, transl = _move_smpl(target, rotation, params, root_joint, record.sample_id)
    keypoints2d = target.keypoints2d.copy()
    keypoints2d[:, :2] = keypoints2d[:, :2] @ matrix[:2, :2].T + matrix[:2, 2]
    keypoints3d = target.keypoints3d.copy()
    keypoints3d[:, :3] = keypoints3d[:, :3] @ rotation.T
    if params.flip:
        keypoints2d, keypoints3d = keypoints2d[_CANONICAL_FLIP], keypoints3d[_CANONICAL_FLIP]
        part_segm = _PART_FLIP[part_segm]
    extra = {
        name: _warp(value, matrix, out_size, cv2.INTER_NEAREST)
        for name, value in record.extra_maps.items()
    }
    flags = {**record.flags, **target.flags}
    meta = {
        "dataset": record.dataset,
        "split": record.split,
        "sample_id": record.sample_id,
        "person": person,
        "image_path": str(record.image_path),
        "crop_matrix": matrix,
        "image_size": record.image_size,
        **{key: value for key, value in record.meta.items() if key != "poses2d"},
    }
    return Crop(
        image=image,
        K=K_crop,
        keypoints2d=keypoints2d,
        keypoints3d=keypoints3d,
        pose=pose,
        betas=np.zeros(10) if target.betas is None else np.asarray(target.betas, np.float64),
        transl=transl,
        gender=target.gender,
        part_segm=part_segm.astype(np.int64),
        mask=mask,
        flags=flags,
        meta=meta,
        extra_maps=extra,
    )


def warp_image(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear warp of an RGB image to `size` (W, H) by the 2x3 (or 3x3) affine `matrix`,
    anti-aliased when it shrinks the image (module docstring, step 3). Crops and scene samples
    both warp through here.

    Only the region the output reads (plus 3 sigma) is blurred, so the cost does not grow with
    the image; the warp then reads the blurred region with the matrix shifted to its origin.
    """
    matrix = np.asarray(matrix, np.float64)[:2]
    shrink = 1.0 / np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if shrink <= ANTIALIAS_MIN_SHRINK:
        return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR)
    sigma = (shrink - 1.0) / 2.0
    inverse = cv2.invertAffineTransform(matrix)
    width, height = size
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float64)
    source = corners @ inverse[:, :2].T + inverse[:, 2]
    margin = int(np.ceil(3.0 * sigma)) + 2
    x0, y0 = np.maximum(np.floor(source.min(axis=0)).astype(int) - margin, 0)
    x1 = min(int(np.ceil(source[:, 0].max())) + margin, image.shape[1])
    y1 = min(int(np.ceil(source[:, 1].max())) + margin, image.shape[0])
    if x1 <= x0 or y1 <= y0:  # the output lies wholly outside the image
        return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR)
    region = cv2.GaussianBlur(image[y0:y1, x0:x1], (0, 0), sigma)
    shifted = matrix.copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)
    return cv2.warpAffine(region, shifted, size, flags=cv2.INTER_LINEAR)


def _warp(image: np.ndarray, matrix: np.ndarray, out_size: int, interpolation: int) -> np.ndarray:
    source = image.astype(np.uint8) if image.dtype == bool else image
    warped = cv2.warpAffine(
        source,
        matrix[:2],
        (out_size, out_size),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return warped.astype(bool) if image.dtype == bool else warped


def _person_maps(
    record: SceneRecord, person: int, matrix: np.ndarray, out_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Part labels and silhouette of this person only (others are background where the
    instance map says so), warped with nearest sampling; zeros when absent."""
    height, width = record.image_size
    owner = None
    if record.instance_map is not None:
        owner = record.instance_map == person + 1
    part = record.part_segm if record.part_segm is not None else np.zeros((height, width), np.uint8)
    if record.mask is not None:
        mask = record.mask
    else:
        mask = part > 0 if record.part_segm is not None else np.zeros((height, width), bool)
    if owner is not None:
        part, mask = np.where(owner, part, 0), mask & owner
    return (
        _warp(part.astype(np.uint8), matrix, out_size, cv2.INTER_NEAREST),
        _warp(mask, matrix, out_size, cv2.INTER_NEAREST),
    )


def _move_smpl(target, rotation, params, root_joint, sample_id) -> tuple[np.ndarray, np.ndarray]:
    """SMPL pose and transl after the crop's 3D rotation (and mirror); zeros when absent."""
    if target.pose is None or target.transl is None:
        return np.zeros(72), np.zeros(3)
    pose = np.asarray(target.pose, np.float64).copy()
    transl = np.asarray(target.transl, np.float64)
    if params.rotation == 0.0 and not params.flip:
        return pose, transl.copy()
    if root_joint is None:
        raise ValueError(f"{sample_id}: rotating or flipping SMPL needs the person's root joint")
    from scipy.spatial.transform import Rotation

    turn = rotation_z(params.rotation)
    orient = Rotation.from_rotvec(pose[:3]).as_matrix()
    pose[:3] = Rotation.from_matrix(turn @ orient).as_rotvec()
    moved = turn @ (root_joint + transl)
    if params.flip:
        per_joint = pose.reshape(24, 3)[SMPL_FLIP_PERMUTATION] * np.array([1.0, -1.0, -1.0])
        pose = per_joint.reshape(72)
        moved = _MIRROR @ moved
    return pose, moved - root_joint


def crop_key(meta: dict) -> str:
    """`<sample_id>#<person>`: what names a crop sample within its split (caches key by it)."""
    return f"{meta['sample_id']}#{meta['person']}"


def to_tensors(crop: Crop, normalize: bool = True) -> dict:
    """The crop sample of DESIGN.md: image (3, S, S) float32 (ImageNet-normalised unless
    `normalize` is False, then in [0, 1]), every field as a tensor, flags as bool tensors."""
    image = crop.image.astype(np.float32) / 255.0
    if normalize:
        image = (image - IMAGENET_MEAN) / IMAGENET_STD
    sample = {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        "K": torch.as_tensor(crop.K, dtype=torch.float32),
        "keypoints2d": torch.as_tensor(crop.keypoints2d, dtype=torch.float32),
        "keypoints3d": torch.as_tensor(crop.keypoints3d, dtype=torch.float32),
        "pose": torch.as_tensor(crop.pose, dtype=torch.float32),
        "betas": torch.as_tensor(crop.betas, dtype=torch.float32),
        "transl": torch.as_tensor(crop.transl, dtype=torch.float32),
        "gender": torch.tensor(crop.gender, dtype=torch.int64),
        "part_segm": torch.from_numpy(crop.part_segm),
        "mask": torch.from_numpy(crop.mask),
        "meta": crop.meta,
    }
    for name in (*PERSON_FLAGS, *IMAGE_FLAGS):
        sample[name] = torch.tensor(bool(crop.flags.get(name, False)))
    return sample
