"""Learnability smoke test of the `ci` world (issue 5), independent of any method.

A small CNN regresses root-relative 3D joints from un-augmented 64 x 64 crops of the `ci`
training splits (SURREAL, 3DPW, Human3.6M) for a fixed number of steps, with the usual
training-time augmentation done on the batch (horizontal flip with the left/right joint swap,
in-plane rotation applied to the 3D joints about the camera axis, scale, shift, per-channel
colour gain). It must reach at most 0.8 x the MPJPE of the training-mean pose on the held-out
splits (SURREAL val, 3DPW test, Human3.6M protocol 1). If it cannot, the world is too hard or
broken and the methods' learning tests would fail later: fix the world, not the bound. Each
held-out dataset must also stay below 0.9 x its own mean-pose error, so that one broken reader
cannot hide behind the others.

Measured here (2 cores with native bf16, 2,961 training crops, 2,000 steps of batch 64 in about
65 s; fp32 on an AVX2-only CPU, where bf16 is emulated, takes about 0.15 s a step): 0.737
and 0.721 x the mean-pose MPJPE for training seeds 0 and 1 (SURREAL 0.74 / 0.72, 3DPW 0.76 /
0.76, Human3.6M 0.68 / 0.66). Flip averaging at test time takes about 0.02 off; 1,000 steps
reach only about 0.82, 3,000 steps at half the learning rate 0.71 to 0.73.

Joints: the canonical keypoints every crop has (confidence > 0 in all of them), relative to
their centroid (datasets differ in which root they annotate). Both the model and the baseline
are scored on the same joints in metres.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from body.joint_sets import canonical_flip_permutation
from datamodules.base import BodyModels, ReaderOptions, reader_class
from datamodules.datasets import CropDataset

pytestmark = pytest.mark.slow

CROP = 64
TRAIN = (("surreal", "train"), ("pw3d", "train"), ("h36m", "train"))
HELD_OUT = (("surreal", "val"), ("pw3d", "test"), ("h36m", "p1"))
STEPS, BATCH, LR = 2000, 64, 4e-3
# bf16 autocast only where the CPU computes bf16 natively: emulated (AVX2-only CPUs) it is
# about 9 x slower than fp32 for this network.
NATIVE_BF16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
BOUND = 0.8  # the bound, pooled over the held-out splits
PER_DATASET_BOUND = 0.9  # a broken reader or split shows as about 1.0


def _load(world, body_models_root, splits) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{dataset: (images (N, 3, S, S) uint8, keypoints3d (N, K, 4))} of un-augmented crops."""
    options = ReaderOptions(body_models=BodyModels(body_models_root), render_part_labels=False)

    def keep(sample: dict) -> dict:
        image = (sample["image"] * 255).round().to(torch.uint8)
        return {"image": image, "keypoints3d": sample["keypoints3d"]}

    out = {}
    for dataset_id, split in splits:
        reader = reader_class(dataset_id)(world, split, options)
        crops = CropDataset(reader, CROP, target_transform=keep, normalize=False)
        loader = DataLoader(crops, batch_size=128, num_workers=2)
        batches = list(loader)
        out[dataset_id] = (
            torch.cat([b["image"] for b in batches]),
            torch.cat([b["keypoints3d"] for b in batches]),
        )
    return out


def _shared_joints(*parts: dict) -> torch.Tensor:
    """Indices of the canonical joints with confidence > 0 in every crop, closed under the
    left/right swap (so flipping stays within them)."""
    valid = torch.stack(
        [(k[..., 3] > 0).all(dim=0) for part in parts for _, k in part.values()]
    ).all(dim=0)
    flip = torch.as_tensor(canonical_flip_permutation())
    valid &= valid[flip]
    return torch.nonzero(valid).squeeze(1)


def _centred(keypoints3d: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
    points = keypoints3d[:, joints, :3]
    return points - points.mean(dim=1, keepdim=True)


class Regressor(nn.Module):
    """Four stride-2 stages (conv 3x3 s2 + conv 3x3 s1, batch norm, ReLU), a 1x1 reduction
    and a linear layer on the flattened 4 x 4 map (keeps where things are)."""

    def __init__(self, outputs: int, widths=(16, 32, 64, 128)) -> None:
        super().__init__()
        layers, channels = [], 3
        for width in widths:
            layers += [_conv(channels, width, 2), _conv(width, width, 1)]
            channels = width
        layers += [_conv(channels, 64, 1, kernel=1)]
        self.features = nn.Sequential(*layers)
        side = CROP // 2 ** len(widths)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * side**2, outputs))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((image - 0.45) / 0.25))


def _conv(cin: int, cout: int, stride: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _augment(images, targets, flip, generator):
    """Batch augmentation: flip (image mirrored, x negated, left/right swapped), rotation
    within +-30 degrees for 60% of the crops (3D joints rotated about the camera's z axis
    like the image), scale in [0.85, 1.15], shift within +-4 px, colour gain in [0.6, 1.4]."""
    n = images.shape[0]
    mirror = torch.rand(n, generator=generator) < 0.5
    images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
    flipped = targets[:, flip] * torch.tensor([-1.0, 1.0, 1.0])
    targets = torch.where(mirror[:, None, None], flipped, targets)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(30)
    angle = torch.where(torch.rand(n, generator=generator) < 0.6, angle, torch.zeros(n))
    scale = 0.85 + 0.3 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (4 / (CROP / 2))
    cos, sin = torch.cos(angle), torch.sin(angle)
    # grid_sample reads the input at theta @ output: R(-angle) / scale moves the content by
    # R(angle) (x right, y down, as in the camera frame), the rotation applied to the joints.
    theta = torch.stack(
        [
            torch.stack([cos / scale, sin / scale, shift[:, 0]], dim=1),
            torch.stack([-sin / scale, cos / scale, shift[:, 1]], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    rotation = torch.zeros(n, 3, 3)
    rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0] = cos, -sin, sin
    rotation[:, 1, 1], rotation[:, 2, 2] = cos, 1.0
    targets = targets @ rotation.transpose(1, 2)
    gain = 0.6 + 0.8 * torch.rand(n, 3, 1, 1, generator=generator)
    return (images * gain).clamp(0, 1), targets


def _train(images, targets, flip, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = Regressor(targets[0].numel())
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LR, total_steps=STEPS)
    model.train()
    for _ in range(STEPS):
        batch = torch.randint(0, len(images), (BATCH,), generator=generator)
        image, target = _augment(images[batch].float() / 255, targets[batch], flip, generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=NATIVE_BF16):
            prediction = model(image)
        loss = F.l1_loss(prediction.float(), target.flatten(1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def _predict(model, images, flip) -> torch.Tensor:
    """(N, J, 3) predictions, averaged with those of the mirrored crops (mirrored back)."""
    out = []
    for start in range(0, len(images), 256):
        image = images[start : start + 256].float() / 255
        direct = model(image).reshape(len(image), -1, 3)
        mirrored = model(image.flip(-1)).reshape(len(image), -1, 3)
        out.append((direct + mirrored[:, flip] * torch.tensor([-1.0, 1.0, 1.0])) / 2)
    return torch.cat(out)


@pytest.fixture(scope="module")
def ci_crops(ci_world, body_models_root):
    return _load(ci_world, body_models_root, TRAIN), _load(ci_world, body_models_root, HELD_OUT)


def test_small_cnn_beats_the_mean_pose_on_held_out_ci_crops(ci_crops):
    train, held_out = ci_crops
    joints = _shared_joints(train, held_out)
    assert len(joints) >= 10, f"only {len(joints)} joints shared by every crop"
    position = {int(j): i for i, j in enumerate(joints)}
    flip = torch.as_tensor([position[canonical_flip_permutation()[int(j)]] for j in joints])
    images = torch.cat([im for im, _ in train.values()])
    targets = torch.cat([_centred(k, joints) for _, k in train.values()])
    mean_pose = targets.mean(dim=0)
    model = _train(images, targets, flip)

    errors = {}  # dataset -> (model, mean pose) per-crop errors in metres
    for dataset_id, (im, k) in held_out.items():
        truth = _centred(k, joints)
        model_error = (_predict(model, im, flip) - truth).norm(dim=-1).mean(dim=1)
        mean_error = (mean_pose - truth).norm(dim=-1).mean(dim=1)
        errors[dataset_id] = model_error, mean_error
    model_mpjpe = torch.cat([m for m, _ in errors.values()]).mean()
    mean_mpjpe = torch.cat([b for _, b in errors.values()]).mean()
    ratio = float(model_mpjpe / mean_mpjpe)
    report = {d: (round(1000 * float(m.mean())), round(1000 * float(b.mean())), len(m))
              for d, (m, b) in errors.items()}  # fmt: skip
    message = (
        f"held-out MPJPE {1000 * model_mpjpe:.0f} mm vs mean pose {1000 * mean_mpjpe:.0f} mm: "
        f"ratio {ratio:.3f} (bound {BOUND}); per dataset (model mm, mean-pose mm, crops): "
        f"{report}; {len(images)} training crops, {len(joints)} joints"
    )
    print(message)
    assert ratio <= BOUND, message
    for dataset_id, (model_error, mean_error) in errors.items():
        dataset_ratio = float(model_error.mean() / mean_error.mean())
        assert dataset_ratio <= PER_DATASET_BOUND, f"{dataset_id} {dataset_ratio:.3f}: {message}"
