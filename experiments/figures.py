"""Paper figures drawn from predictions: PARE's attention maps (Figure 7) and meshes coloured by
per-vertex values (the occlusion sensitivity meshes of Figures 3 and 5).

Pictures are (H, W, 3) uint8 RGB built with `geometry.drawing` (``heatmap_grid``, ``save_png``)
and the suite's rasterizer (``geometry.rasterizer``, ``geometry.render.render_shaded``); nothing
here reads a config. Crop images arrive ImageNet-normalised as the datamodules make them
(`datamodules.crops.IMAGENET_MEAN` / `IMAGENET_STD`); `unnormalize_image` undoes that.

Attention maps (Figure 7): channel j of PARE's attention (B, 1, 24, h, w), a spatial softmax, is
the part of SMPL joint j (parts are in joint order, `body.joint_sets.SMPL_PART_NAMES`), so the
cells are labelled with the `smpl_24` joint names. Each map is divided by its own maximum and
resized to the cell with the image, so map and image stay aligned (both resizes use the
half-pixel convention of cv2). HMR-EFT has no attention: `attention_figures` refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import matplotlib
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from body.joint_sets import joint_names as joint_set_names
from datamodules.crops import IMAGENET_MEAN, IMAGENET_STD
from datamodules.datasets import collate_crops
from geometry.drawing import fit_view_camera, heatmap_grid, save_png
from geometry.rasterizer import interpolate, rasterize
from geometry.render import render_shaded
from lightning_modules.common.prediction import Prediction

ATTENTION_COLUMNS = 6
MIN_CELL_SIZE = 96  # pixels: a cell is the crop size times the smallest integer reaching this
# Rotations (rows: the virtual camera's right, down and forward axes) that view a body in
# SMPL's rest frame (y up, facing +z, the subject's left at +x) from the front and the back.
BODY_VIEW_ROTATIONS = {
    "front": np.diag([1.0, -1.0, -1.0]),
    "back": np.diag([-1.0, -1.0, 1.0]),
}
NO_DATA_COLOR = (0.62, 0.62, 0.62)  # vertices without a value (never visible)
BACKGROUND_COLOR = (1.0, 1.0, 1.0)


class Predictor(Protocol):
    """What the figures need of a module: PAREModule and HMR-EFT are ones."""

    @property
    def device(self) -> torch.device: ...

    def predict_step(
        self, batch: dict, batch_idx: int = 0, with_attention: bool = False
    ) -> Prediction: ...

    def eval(self) -> object: ...


def unnormalize_image(image: Tensor) -> np.ndarray:
    """(3, S, S) ImageNet-normalised float crop -> (S, S, 3) uint8 RGB."""
    values = image.detach().float().cpu().numpy().transpose(1, 2, 0)  # (S, S, 3)
    rgb = values * IMAGENET_STD + IMAGENET_MEAN
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def attention_cell_size(crop_size: int) -> int:
    """Pixels per cell of `attention_figure`: the crop size times the smallest integer that
    makes it at least `MIN_CELL_SIZE`."""
    return crop_size * math.ceil(MIN_CELL_SIZE / crop_size)


def attention_figure(
    image: Tensor,
    attention: Tensor,
    joint_names: Sequence[str],
    path: str | Path,
    columns: int = ATTENTION_COLUMNS,
) -> Path:
    """Figure 7: one cell per joint, its attention map over the image, labelled with its name.

    Args:
        image: (3, S, S) ImageNet-normalised crop.
        attention: (J, h, w) spatial attention of the J joints (any positive scale; each map is
            divided by its maximum).
        joint_names: J names, the cells' labels.
        path: the PNG to write.
        columns: cells per row.

    Returns:
        ``path``; the PNG is (ceil(J / columns) * c, min(J, columns) * c, 3) with
        c = ``attention_cell_size(S)``.
    """
    if attention.ndim != 3 or attention.shape[0] != len(joint_names):
        raise ValueError(
            f"attention {tuple(attention.shape)} must be (J, h, w) with J = {len(joint_names)}"
        )
    picture = heatmap_grid(
        attention.detach().float().cpu(),
        image=unnormalize_image(image),
        columns=columns,
        cell_size=attention_cell_size(image.shape[-1]),
        labels=list(joint_names),
    )
    save_png(path, picture)
    return Path(path)


def attention_figures(
    module: Predictor,
    dataset: Dataset,
    out_dir: str | Path,
    limit: int = 8,
    progress: bool = True,
) -> list[Path]:
    """Write `attention_<i>.png` (Figure 7) for the first `limit` crops of a crop dataset.

    Raises:
        ValueError: the module predicts no attention (HMR-EFT).
    """
    module.eval()
    count = min(limit, len(dataset))  # type: ignore[arg-type]
    loader = DataLoader(Subset(dataset, range(count)), batch_size=1, collate_fn=collate_crops)
    names = joint_set_names("smpl_24")
    paths = []
    with torch.inference_mode():
        for index, batch in enumerate(tqdm(loader, desc="attention", disable=not progress)):
            images = batch["image"].to(module.device)
            prediction = module.predict_step({"image": images}, with_attention=True)
            if "attention" not in prediction.extras:
                raise ValueError("the model predicts no attention maps (HMR-EFT has none)")
            attention = prediction.extras["attention"][0, 0]  # (24, h, w)
            path = Path(out_dir) / f"attention_{index:04d}.png"
            paths.append(attention_figure(images[0], attention, names, path))
    return paths


def render_vertex_values(
    vertices: Tensor,
    faces: Tensor,
    values: np.ndarray,
    image_size: tuple[int, int] = (256, 256),
    value_ranges: np.ndarray | None = None,
    colormap: str = "jet",
    views: Sequence[str] = ("front", "back"),
    margin: float = 0.08,
) -> tuple[np.ndarray, np.ndarray]:
    """A body coloured by per-vertex scalars, seen from the front and the back.

    Args:
        vertices: (V, 3) body in SMPL's rest frame (y up, facing +z), metres, e.g. the template.
        faces: (F, 3) int64.
        values: (C, V) float, one picture per channel; NaN where a vertex has no value
            (drawn in `NO_DATA_COLOR`).
        image_size: (H, W) of each view.
        value_ranges: (C, 2) (low, high) mapped to the colour map's ends; default each
            channel's finite minimum and maximum.
        colormap: matplotlib colour map name.
        views: names in `BODY_VIEW_ROTATIONS`.
        margin: fraction of each view left free around the body.

    Returns:
        pictures (C, len(views), H, W, 3) uint8 on a white background, Lambertian-shaded (a
        light at the virtual camera), the value interpolated over each face and then colour
        mapped; ranges (C, 2) float64, the ranges used (for colour bars).
    """
    values = np.asarray(values, dtype=np.float64)
    ranges = finite_ranges(values) if value_ranges is None else np.asarray(value_ranges, float)
    points = vertices.detach().double().cpu().numpy()
    cameras = [fit_view_camera(points, BODY_VIEW_ROTATIONS[v], image_size, margin) for v in views]
    view_vertices = torch.as_tensor(np.stack([c[0] for c in cameras]), dtype=torch.float32)
    K = torch.as_tensor(np.stack([c[1] for c in cameras]), dtype=torch.float32)
    faces = faces.detach().cpu().to(torch.int64)
    valid = np.isfinite(values)
    channels = np.concatenate([np.where(valid, values, 0.0), valid], axis=0).T  # (V, 2C)
    channel_tensor = torch.as_tensor(channels, dtype=torch.float32)
    fragments = rasterize(view_vertices, faces, K, image_size)
    per_pixel = interpolate(fragments, faces, channel_tensor.expand(len(views), -1, -1)).numpy()
    num_channels = values.shape[0]
    weight = per_pixel[..., num_channels:]  # (views, H, W, C) weight of the valid vertices
    value = per_pixel[..., :num_channels] / np.maximum(weight, 1e-6)  # valid vertices' mean
    white = torch.ones(vertices.shape[0], 3)
    shaded, mask = render_shaded(view_vertices, faces, K, image_size, white)
    shade, covered = shaded[..., 0].numpy()[..., None], mask.numpy()  # (views, H, W, 1)
    pictures = np.empty((num_channels, len(views), *image_size, 3), np.uint8)
    for channel, (low, high) in enumerate(ranges):
        scaled = (value[..., channel] - low) / max(high - low, 1e-9)
        rgb = matplotlib.colormaps[colormap](np.clip(scaled, 0.0, 1.0))[..., :3]
        rgb = np.where(weight[..., channel, None] > 0.5, rgb, NO_DATA_COLOR) * shade
        rgb = np.where(covered[..., None], rgb, BACKGROUND_COLOR)
        pictures[channel] = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    return pictures, ranges


def finite_ranges(values: np.ndarray) -> np.ndarray:
    """(C, V) with NaNs -> (C, 2) finite (min, max) per channel, (0, 1) for an all-NaN one."""
    ranges = np.zeros((values.shape[0], 2))
    ranges[:, 1] = 1.0
    for channel, row in enumerate(values):
        finite = row[np.isfinite(row)]
        if finite.size:
            ranges[channel] = finite.min(), finite.max()
    return ranges
