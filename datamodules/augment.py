"""Augmentation, in one place, selected by name from the experiment config.

- `jitter`: shift of the crop box, uniform in +-`shift` (0.1) of the side, per axis.
- `scale`: size of the crop box, clip(1 + N(0, `scale`), 1 - `scale`, 1 + `scale`), `scale` 0.25.
- `rotation`: in-plane, clip(N(0, 30 deg), +-60 deg) with probability 0.6, else 0 (SPIN).
- `flip`: horizontal, probability 0.5; keypoints through the flip permutation, SMPL pose
  mirrored, part labels swapped (`crop_from_scene`).
- `color`: per-channel gain uniform in [1 - 0.4, 1 + 0.4] (SPIN's `noise_factor`).
- `occlusion`: probability 0.5, one object of 20-60 % of the box side pasted in the person's
  box; procedural objects, or a user's occluder bank (`datamodules.occluders`), standing in for
  PARE's Pascal VOC segments.
- `partial_crop`: PARE's random crop, probability 0.3: the person's box loses 30-50 % of its
  height or width from one side (a truncated view), and the crop follows the smaller box.

Geometric choices are drawn into one `CropParams` (applied by the single warp of
`crop_from_scene`); photometric ones act on the uint8 crop afterwards. Annotation maps are not
changed by occluders (they describe the body, as a real dataset's do). Schedules (PARE starts
`partial_crop` after a configured step) belong to the method; it switches the name on with
`enable`, which reaches DataLoader workers at their next epoch (workers are not persistent).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datamodules.crops import CropParams
from datamodules.occluders import load_occluder_bank, paste_occluder

NAMES = ("jitter", "scale", "rotation", "flip", "color", "occlusion", "partial_crop")


class Augmentation:
    """Draws augmentation for one crop. Args: `names` to enable (see the module table) and the
    strength of each (defaults as in the table)."""

    def __init__(
        self,
        names: Sequence[str] = (),
        shift: float = 0.1,
        scale: float = 0.25,
        rotation_deg: float = 30.0,
        rotation_prob: float = 0.6,
        flip_prob: float = 0.5,
        color: float = 0.4,
        occlusion_prob: float = 0.5,
        occluder_bank: str | None = None,
        partial_crop_prob: float = 0.3,
        partial_crop_range: tuple[float, float] = (0.3, 0.5),
    ) -> None:
        unknown = sorted(set(names) - set(NAMES))
        if unknown:
            raise ValueError(f"unknown augmentation {unknown}; valid names: {NAMES}")
        self.names = set(names)
        self.shift, self.scale = shift, scale
        self.rotation, self.rotation_prob = np.deg2rad(rotation_deg), rotation_prob
        self.flip_prob, self.color = flip_prob, color
        self.occlusion_prob, self.occluder_bank_path = occlusion_prob, occluder_bank
        self.partial_crop_prob, self.partial_crop_range = partial_crop_prob, partial_crop_range
        self._bank: list | None = None

    def enable(self, name: str, on: bool = True) -> None:
        if name not in NAMES:
            raise ValueError(f"unknown augmentation {name!r}; valid names: {NAMES}")
        (self.names.add if on else self.names.discard)(name)

    def crop_params(self, rng: np.random.Generator) -> CropParams:
        """The geometric part of one draw."""
        shift = tuple(rng.uniform(-self.shift, self.shift, 2)) if "jitter" in self.names else (0, 0)
        scale = 1.0
        if "scale" in self.names:
            scale = float(np.clip(1 + rng.normal(0, self.scale), 1 - self.scale, 1 + self.scale))
        rotation = 0.0
        if "rotation" in self.names and rng.uniform() < self.rotation_prob:
            rotation = float(
                np.clip(rng.normal(0, self.rotation), -2 * self.rotation, 2 * self.rotation)
            )
        flip = "flip" in self.names and rng.uniform() < self.flip_prob
        return CropParams(
            scale=scale,
            shift=(float(shift[0]), float(shift[1])),
            rotation=rotation,
            flip=bool(flip),
        )

    def partial_box(self, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """PARE's random crop: the box with 30-50 % cut from one side (or the box unchanged)."""
        if "partial_crop" not in self.names or rng.uniform() >= self.partial_crop_prob:
            return box
        cut = rng.uniform(*self.partial_crop_range)
        x0, y0, x1, y1 = box
        side = rng.integers(4)
        if side == 0:
            y1 = y1 - cut * (y1 - y0)  # keep the top (upper body)
        elif side == 1:
            y0 = y0 + cut * (y1 - y0)
        elif side == 2:
            x1 = x1 - cut * (x1 - x0)
        else:
            x0 = x0 + cut * (x1 - x0)
        return np.array([x0, y0, x1, y1])

    def photometric(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Colour gain and occluder on a (S, S, 3) uint8 crop (the person fills its middle)."""
        if "occlusion" in self.names and rng.uniform() < self.occlusion_prob:
            size = image.shape[0]
            inner = np.array([size * 0.15, size * 0.15, size * 0.85, size * 0.85])
            image = paste_occluder(image, inner, rng, self._occluders())
        if "color" in self.names:
            gain = rng.uniform(1 - self.color, 1 + self.color, 3)
            image = np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        return image

    def _occluders(self) -> list | None:
        if self.occluder_bank_path and self._bank is None:
            self._bank = load_occluder_bank(Path(self.occluder_bank_path))
        return self._bank
