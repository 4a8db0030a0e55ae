"""Occluders pasted over images: procedural shapes, or patches from a user's occluder bank.

PARE's SynthOcc pastes object segments from Pascal VOC, which the suite does not have (and
cannot download); it generates textured objects procedurally instead: ellipses, rotated
rectangles and random polygons, each filled with a gradient and a stripe or noise texture and
given a soft edge. A user with VOC segments can supply them as an occluder bank: an `.npz`
file with `images` (N, h, w, 3) uint8 and `masks` (N, h, w) bool (or uint8), one object per
entry (e.g. written by a script over VOC's `SegmentationObject` maps); `load_occluder_bank`
reads it and `paste_occluder` then draws from it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from datamodules.io import DataError, field, load_npz


def random_color(rng: np.random.Generator) -> np.ndarray:
    """(3,) float RGB in [0, 1] with varied hue, saturation and value."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 255), rng.uniform(40, 255)]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0] / 255.0


def procedural_occluder(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured object of about `size` pixels: (size, size, 3) float RGB, (size, size) alpha."""
    alpha = np.zeros((size, size), np.uint8)
    centre = (size // 2, size // 2)
    kind = rng.integers(3)
    if kind == 0:
        axes = (int(size * rng.uniform(0.2, 0.5)), int(size * rng.uniform(0.1, 0.5)))
        cv2.ellipse(alpha, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1)
    elif kind == 1:
        width, height = size * rng.uniform(0.2, 0.95), size * rng.uniform(0.15, 0.6)
        box = cv2.boxPoints((centre, (width, height), rng.uniform(0, 180)))
        cv2.fillPoly(alpha, [box.astype(np.int32)], 255)
    else:
        count = rng.integers(3, 8)
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = size * rng.uniform(0.15, 0.5, count)
        points = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)])
        cv2.fillPoly(alpha, [points.T.astype(np.int32)], 255)
    soft = cv2.GaussianBlur(alpha, (3, 3), 0).astype(np.float32) / 255.0
    return textured_fill(rng, (size, size)), soft


def gradient_fill(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """(H, W, 3) float RGB gradient between two random colours along a random direction, and
    that direction's angle (radians)."""
    height, width = shape
    first, second = random_color(rng), random_color(rng)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = (np.cos(angle) * xs + np.sin(angle) * ys) / max(height, width, 1)
    along = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    return first * (1 - along[..., None]) + second * along[..., None], float(angle)


def textured_fill(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float RGB: a two-colour gradient times a stripe or blotch texture."""
    height, width = shape
    image, angle = gradient_fill(rng, shape)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.uniform() < 0.5:
        period = rng.uniform(3, 20)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xs * np.sin(angle) - ys * np.cos(angle)) / period)
        image = image * (1 - 0.35 * stripes[..., None])
    else:
        coarse = rng.uniform(0.6, 1.0, size=(max(2, height // 8), max(2, width // 8), 1))
        image = image * cv2.resize(coarse, (width, height))[..., None]
    return np.clip(image, 0, 1).astype(np.float32)


def load_occluder_bank(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Objects of an occluder bank `.npz` (module docstring) as (RGB float, alpha) pairs."""
    data = load_npz(path)
    images = field(data, "images", path, (None, None, None, 3))
    masks = field(data, "masks", path, (None, images.shape[1], images.shape[2]))
    if images.dtype != np.uint8:
        raise DataError(f"{path}: field 'images' must be uint8, got {images.dtype}")
    return [
        (image.astype(np.float32) / 255.0, (mask > 0).astype(np.float32))
        for image, mask in zip(images, masks, strict=True)
    ]


def paste_occluder(
    image: np.ndarray,
    box: np.ndarray,
    rng: np.random.Generator,
    bank: list[tuple[np.ndarray, np.ndarray]] | None = None,
    size_range: tuple[float, float] = (0.2, 0.6),
) -> np.ndarray:
    """Copy of (H, W, 3) uint8 `image` with one occluder of `size_range` x the box side pasted
    at a random point of `box` (x0, y0, x1, y1)."""
    side = float(max(box[2] - box[0], box[3] - box[1], 8.0))
    size = max(4, int(side * rng.uniform(*size_range)))
    if bank:
        rgb, alpha = bank[rng.integers(len(bank))]
        rgb, alpha = cv2.resize(rgb, (size, size)), cv2.resize(alpha, (size, size))
    else:
        rgb, alpha = procedural_occluder(rng, size)
    cx = int(rng.uniform(box[0], box[2])) - size // 2
    cy = int(rng.uniform(box[1], box[3])) - size // 2
    return _blend(image, rgb, alpha, cx, cy)


def _blend(image: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int) -> np.ndarray:
    height, width = image.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + rgb.shape[1], width), min(y + rgb.shape[0], height)
    result = image.copy()
    if x1 <= x0 or y1 <= y0:
        return result
    patch = rgb[y0 - y : y1 - y, x0 - x : x1 - x] * 255.0
    weight = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    region = result[y0:y1, x0:x1].astype(np.float32)
    result[y0:y1, x0:x1] = (region * (1 - weight) + patch * weight).round().astype(np.uint8)
    return result
