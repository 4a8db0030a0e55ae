"""The scene sample (CRMH, ROMP, LoCO): a whole record resized and padded to a fixed size.

The image is scaled by s = min(W / w, H / h) (aspect kept) and padded on the right and bottom to
(H, W) with zeros, in one `cv2.warpAffine` built by `geometry.crop_affine` (the box that maps
to the padded canvas is (-0.5, -0.5, W / s - 0.5, H / s - 0.5)), anti-aliased when it shrinks
(`datamodules.crops.warp_image`); K, boxes and 2D keypoints go
through the same map, label maps with nearest sampling. People stay unpadded (P varies per
sample); `collate_scenes` pads them to the batch maximum and adds `person_valid`.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from datamodules.crops import IMAGENET_MEAN, IMAGENET_STD, warp_image
from datamodules.records import IMAGE_FLAGS, NUM_CANONICAL, PERSON_FLAGS, SceneRecord
from geometry.cameras import crop_affine, crop_intrinsics

PERSON_FIELDS = (
    "boxes",
    "keypoints2d",
    "keypoints3d",
    "pose",
    "betas",
    "transl",
    "gender",
    *PERSON_FLAGS,
)


def scene_sample(record: SceneRecord, size: tuple[int, int], normalize: bool = True) -> dict:
    """Record -> scene sample of (H, W) = `size` (module docstring)."""
    if record.image is None:
        raise ValueError(f"{record.sample_id}: scene_sample needs the record's image")
    height, width = size
    h, w = record.image_size
    scale = min(width / w, height / h)
    box = torch.tensor([-0.5, -0.5, width / scale - 0.5, height / scale - 0.5], dtype=torch.float64)
    matrix = crop_affine(box, (width, height)).numpy()
    K = crop_intrinsics(torch.as_tensor(record.K), box, (width, height)).numpy()
    image = warp_image(record.image, matrix, (width, height))
    image = image.astype(np.float32) / 255.0
    if normalize:
        image = (image - IMAGENET_MEAN) / IMAGENET_STD
    sample: dict = {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        "K": torch.as_tensor(K, dtype=torch.float32),
    }
    sample.update(_people(record, matrix))
    for name in ("part_segm", "instance_map", "mask", "ignore_mask"):
        value = getattr(record, name)
        if value is None:
            value = np.zeros((h, w), bool if name in ("mask", "ignore_mask") else np.uint8)
        warped = cv2.warpAffine(
            value.astype(np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST
        )
        dtype = torch.bool if name in ("mask", "ignore_mask") else torch.int64
        sample[name] = torch.from_numpy(warped).to(dtype)
    for name in IMAGE_FLAGS:
        sample[name] = torch.tensor(bool(record.flags.get(name, False)))
    sample["meta"] = {
        "dataset": record.dataset,
        "sample_id": record.sample_id,
        "image_path": str(record.image_path),
        "image_size": record.image_size,
        "scale": scale,
    }
    return sample


def _people(record: SceneRecord, matrix: np.ndarray) -> dict[str, torch.Tensor]:
    linear, offset = matrix[:, :2], matrix[:, 2]
    fields: dict[str, list] = {name: [] for name in PERSON_FIELDS}
    for person in record.people:
        keypoints2d = person.keypoints2d.copy()
        keypoints2d[:, :2] = keypoints2d[:, :2] @ linear.T + offset
        corners = person.box.reshape(2, 2) @ linear.T + offset
        fields["boxes"].append(corners.reshape(4))
        fields["keypoints2d"].append(keypoints2d)
        fields["keypoints3d"].append(person.keypoints3d)
        fields["pose"].append(np.zeros(72) if person.pose is None else person.pose)
        fields["betas"].append(np.zeros(10) if person.betas is None else person.betas)
        fields["transl"].append(np.zeros(3) if person.transl is None else person.transl)
        fields["gender"].append(person.gender)
        for flag in PERSON_FLAGS:
            fields[flag].append(person.flags.get(flag, False))
    result = {}
    for name, values in fields.items():
        dtype = torch.int64 if name == "gender" else torch.float32
        dtype = torch.bool if name in PERSON_FLAGS else dtype
        shape_tail = {"boxes": (4,), "pose": (72,), "betas": (10,), "transl": (3,)}.get(name, ())
        if values:
            result[name] = torch.as_tensor(np.stack(values), dtype=dtype)
        elif name in ("keypoints2d", "keypoints3d"):
            width = 3 if name == "keypoints2d" else 4
            result[name] = torch.zeros((0, NUM_CANONICAL, width))
        else:
            result[name] = torch.zeros((0, *shape_tail), dtype=dtype)
    return result


def collate_scenes(samples: list[dict]) -> dict:
    """Stack scene samples; per-person fields padded to the batch maximum P with zeros, and
    `person_valid` (B, P) bool marks the real people."""
    most = max((s["gender"].shape[0] for s in samples), default=0)
    batch: dict = {"meta": [s["meta"] for s in samples]}
    for name in samples[0]:
        if name == "meta":
            continue
        if name in PERSON_FIELDS:
            batch[name] = torch.stack([_pad(s[name], most) for s in samples])
        else:
            batch[name] = torch.stack([s[name] for s in samples])
    valid = torch.zeros(len(samples), most, dtype=torch.bool)
    for index, sample in enumerate(samples):
        valid[index, : sample["gender"].shape[0]] = True
    batch["person_valid"] = valid
    return batch


def _pad(value: torch.Tensor, size: int) -> torch.Tensor:
    padding = value.new_zeros((size - value.shape[0], *value.shape[1:]))
    return torch.cat([value, padding])
