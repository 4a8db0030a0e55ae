"""Prediction panels: what a person looks at to judge a mesh regressor, one row per crop.

A row is [input crop | predicted mesh over the crop | the mesh from the side | attention]:
the overlay is the predicted camera-frame mesh rendered with the prediction's own intrinsics
(`Prediction.K`, scaled to the panel size); the side view looks at the mesh along the camera's
x axis (`geometry.drawing.scene_views`), so depth errors invisible in the overlay show; the
attention cell (PARE) is the per-pixel maximum over the joints of each joint's attention map
divided by its own maximum, over the crop (a method without attention has no such cell).

A volumetric prediction (BodyNet: `extras["occupancy"]` and `extras["root_depth"]`) adds
[isosurface over the crop | isosurface from the side], the marching-cubes surface of the
occupancy at 0.5 in the crop's camera (`geometry.volumes.bodynet_grid_to_camera`) coloured by
the confidence of the voxels it bounds (viridis: dark = 0.5, yellow = 1; the paper's Figure
5), and with `part_occupancy` [parts over the crop] coloured by the most probable of the six
parts around each surface point (Figure 6). The mesh cells then show the SMPL body fitted to
the prediction when one is given (`predict` fits it: `experiments.fitting`).

Used by the `ValidationImages` callback (a grid logged every validation, to wandb and as PNG in
the run folder) and by `python -m experiments predict` (overlay PNGs of held-out crops).
Nothing here reads a config.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from experiments.figures import unnormalize_image
from geometry.drawing import heatmap_grid, overlay_mesh, save_png, scene_views
from lightning_modules.common.prediction import Prediction

log = logging.getLogger(__name__)

PANEL_SIZE = 128  # pixels of each cell: small crops (64 px) are upsampled so meshes read


def predict_with_attention(module: Any, batch: dict) -> Prediction:
    """`module.predict_step(batch)`, asking for attention maps when the method has them."""
    parameters = inspect.signature(module.predict_step).parameters
    if "with_attention" in parameters:
        return module.predict_step(batch, 0, with_attention=True)
    return module.predict_step(batch, 0)


def prediction_row(
    image: Tensor,
    vertices: Tensor | None,
    faces: Tensor,
    K: Tensor,
    attention: Tensor | None = None,
    size: int = PANEL_SIZE,
) -> np.ndarray:
    """One crop's row (module docstring): (size, cells * size, 3) uint8.

    Args:
        image: (3, S, S) ImageNet-normalised crop.
        vertices: (V, 3) camera-frame mesh in metres, or None (the row shows the crop only).
        faces: (F, 3) int64.
        K: (3, 3) intrinsics of the crop.
        attention: (J, h, w) attention maps, or None.
        size: pixels of each square cell.
    """
    crop = unnormalize_image(image)
    picture = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    cells = [picture]
    if vertices is not None:
        K_panel = panel_camera(K, crop.shape[1], size)
        mesh = vertices.detach().float().cpu()
        cells.append(overlay_mesh(picture, mesh, faces.cpu(), K_panel))
        cells.append(scene_views([(mesh, faces.cpu())], (size, size))["side"])
    if attention is not None:
        maps = attention.detach().float().cpu()
        peak = maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
        summary = (maps / peak).amax(0, keepdim=True)
        cells.append(heatmap_grid(summary, image=picture, columns=1, cell_size=size, labels=[""]))
    return np.concatenate(cells, axis=1)


PART_COLORS = np.array([
    [0.5, 0.5, 0.5], [0.95, 0.75, 0.2], [0.3, 0.6, 0.9], [0.9, 0.3, 0.3],
    [0.3, 0.8, 0.4], [0.8, 0.4, 0.9], [0.2, 0.8, 0.8],
], dtype=np.float32)  # fmt: skip  # bodynet_7: background, head, torso, arms, legs


def panel_camera(K: Tensor, crop_side: int, size: int) -> Tensor:
    """The crop's intrinsics for a panel of `size` pixels (cv2's pixel-centre rule)."""
    scale = size / crop_side
    K_panel = K.detach().double().cpu().clone()
    K_panel[:2] *= scale
    K_panel[:2, 2] += 0.5 * (scale - 1.0)
    return K_panel


def volume_cells(
    picture: np.ndarray,
    occupancy: Tensor,
    K: Tensor,
    root_depth: float,
    crop_side: int,
    part_occupancy: Tensor | None = None,
) -> list[np.ndarray]:
    """[isosurface over the crop | from the side (| parts over the crop)] (module docstring).

    Args:
        picture: (size, size, 3) the crop at panel size.
        occupancy: (R, R, R) probabilities; part_occupancy: (K, R, R, R) class probabilities.
        K: (3, 3) crop intrinsics; root_depth: the depth the grid is centred on; crop_side: S.
    """
    import matplotlib

    from body.fitting import isosurface
    from geometry.volumes import bodynet_grid_to_camera

    size, resolution = picture.shape[0], occupancy.shape[-1]
    points, faces, confidence = (t.cpu() for t in isosurface(occupancy.float()))
    if len(faces) == 0:  # nothing above 0.5: the crop alone, so the row keeps its width
        return [picture] * (3 if part_occupancy is not None else 2)
    mesh = bodynet_grid_to_camera(points, K.cpu(), root_depth, crop_side, resolution).float()
    shade = ((confidence.numpy() - 0.5) / 0.5).clip(0.0, 1.0)
    colors = matplotlib.colormaps["viridis"](shade)[:, :3].astype(np.float32)
    K_panel = panel_camera(K, crop_side, size)
    cells = [overlay_mesh(picture, mesh, faces, K_panel, colors),
             scene_views([(mesh, faces)], (size, size))["side"]]  # fmt: skip
    if part_occupancy is not None:
        neighbourhood = torch.nn.functional.avg_pool3d(part_occupancy.float().cpu()[None], 3, 1, 1)
        cell = points.floor().long().clamp(0, resolution - 1)
        labels = neighbourhood[0, 1:, cell[:, 2], cell[:, 1], cell[:, 0]].argmax(0) + 1
        cells.append(overlay_mesh(picture, mesh, faces, K_panel, PART_COLORS[labels.numpy()]))
    return cells


def prediction_rows(
    module: Any,
    batch: dict,
    faces: Tensor,
    size: int = PANEL_SIZE,
    fit: Callable[[Prediction, dict], Tensor | None] | None = None,
) -> list[np.ndarray]:
    """One row per crop of `batch` (its first person): `prediction_row` of the predicted
    mesh (or, for a prediction without one, of `fit(prediction, batch)`: (B, V, 3)
    camera-frame vertices of a body fitted to it), then the volume cells of a volumetric
    prediction."""
    with torch.inference_mode():
        prediction = predict_with_attention(module, batch)
    attention = prediction.extras.get("attention")
    if prediction.vertices is not None:
        vertices: Tensor | None = prediction.vertices[:, 0]
    else:
        vertices = None if fit is None else fit(prediction, batch)
    rows = []
    for index in range(len(batch["image"])):
        row = prediction_row(
            batch["image"][index],
            None if vertices is None else vertices[index],
            faces,
            prediction.K[index],
            None if attention is None else attention[index, 0],
            size,
        )
        if "occupancy" in prediction.extras and "root_depth" in prediction.extras:
            picture = row[:, :size]
            parts = prediction.extras.get("part_occupancy")
            cells = volume_cells(
                picture, prediction.extras["occupancy"][index, 0], prediction.K[index],
                float(prediction.extras["root_depth"][index, 0]), int(batch["image"].shape[-1]),
                None if parts is None else parts[index, 0],
            )  # fmt: skip
            row = np.concatenate([row, *cells], axis=1)
        rows.append(row)
    return rows


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows one under another, narrower ones padded with black on the right."""
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows]
    return np.concatenate(padded, axis=0)


def prediction_grid(
    module: Any, batch: dict, faces: Tensor, count: int = 4, size: int = PANEL_SIZE
) -> np.ndarray:
    """Rows of `prediction_row` for the first `count` crops of `batch`, stacked."""
    first = {k: v[:count] if torch.is_tensor(v) else v for k, v in batch.items()}
    return stack_rows(prediction_rows(module, first, faces, size))


class ValidationImages(pl.Callback):
    """Every validation: a `prediction_grid` of the first batch of the first validation split,
    logged to each logger that takes images (wandb: `val/images`) and written to
    `<dirpath>/val_step<N>.png`.

    Args:
        dirpath: folder of the PNGs (the run folder's `images/`).
        body_model_root, body_model_name: the body model whose faces the meshes use.
        count: crops per grid.
        size: pixels of each cell.
    """

    def __init__(
        self,
        dirpath: str,
        body_model_root: str,
        body_model_name: str = "mannequin",
        count: int = 4,
        size: int = PANEL_SIZE,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.body_model_root, self.body_model_name = body_model_root, body_model_name
        self.count, self.size = count, size
        self._faces: Tensor | None = None
        self._batch: dict | None = None

    def faces(self) -> Tensor:
        if self._faces is None:
            from body import BodyModel

            model = BodyModel(self.body_model_root, self.body_model_name, "neutral")
            self._faces = model.faces.detach().to(torch.int64)
        return self._faces

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and not trainer.sanity_checking:
            count = self.count
            self._batch = {k: v[:count] if torch.is_tensor(v) else v for k, v in batch.items()}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batch, self._batch = self._batch, None
        if batch is None or not trainer.is_global_zero:
            return
        grid = prediction_grid(pl_module, batch, self.faces(), self.count, self.size)
        step = trainer.global_step
        save_png(self.dirpath / f"val_step{step:07d}.png", grid)
        for run_logger in trainer.loggers:
            log_image = getattr(run_logger, "log_image", None)
            if callable(log_image):
                log_image(key="val/images", images=[grid], step=step)
