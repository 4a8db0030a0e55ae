"""PARE's occlusion sensitivity analysis (paper section 3; Figures 1, 2, 3, 5 and 6).

A grey square of `patch` x `patch` pixels slides over each crop, the model regresses the body
for every position, and the 3D error of each joint is recorded as a function of where the
occluder was. Everything is in pixels of the crop the network sees; the paper's numbers are a
224 x 224 crop, a 40-pixel patch and a stride of 8.

Positions: top-left corners (x0, y0) with x0, y0 in range(0, S - patch + 1, stride), that is
(S - patch) // stride + 1 per side, (224 - 40) // 8 + 1 = 24 per side and 576 positions at the
paper's numbers; every occluder lies wholly inside the crop. (The authors' released
`scripts/occlusion_analysis.py` rounds the count up instead, adding a last row and column of
clipped occluders when S - patch is not a multiple of the stride; at 224 / 40 / 8 both give 24.)
Position k is row k // side, column k % side, rows along y: an (N, ...) array reshapes to
(side, side, ...) as an image does. The value at position k belongs to the occluder's centre,
pixel x0 + (patch - 1) / 2 (integer coordinates are pixel centres), and the maps are drawn that
way: cells `stride` pixels wide around the centres, not stretched over the whole crop.

Grey: `OCCLUDER_VALUE` = 0 in the normalised image, i.e. the ImageNet mean colour (0.485,
0.456, 0.406), as the authors' script (`--pixel 0`, applied to the normalised image).

Error (`centred_joint_errors`): per joint of `joint_set` (default SMPL's 24), the Euclidean
distance in mm between prediction and ground truth over the joints the sample has (confidence
> 0 and available from the body model), each pose centred on the mean of those joints: the
protocol-free check of PAREModule's validation, not a benchmark protocol (the paper measured
with its 3DPW evaluation; a benchmark's joints can be chosen with `joint_set`). The aggregate
map (Figure 1 d/g) is the MPJPE (mean over those joints) per position, averaged over images;
the per-joint maps (Figure 2) average each joint's error over the images that have it.

Occlusion sensitivity meshes (Figures 3 and 5), as the paper describes them: "we overlay the
estimated body on the heatmap to transfer the per-pixel error to visible vertices ... pool the
per-vertex error across the dataset". The unoccluded prediction's mesh is projected with the
prediction's K; a vertex is visible when it projects into the crop and lies within
`VISIBILITY_TOLERANCE` of the rendered depth at its pixel. It takes the map's value there
(bilinear between occluder centres; outside them the border value, since the border occluders
still cover those pixels). Values are averaged per vertex over the images where it is visible
(one mesh per joint and one for the aggregate) and drawn on the template body (mean shape,
T-pose) from the front and the back; vertices never visible are grey.

Outputs of `write_outputs` (all under one folder):
    occlusion.json             the numbers (`summary` documents the keys)
    occlusion_vertices.npz     per-joint and aggregate per-vertex sensitivities (mm)
    joint_heatmaps.png         Figure 2 over the set: one map per joint, its range in the title
    image_<i>_joints.png       Figure 2 for the first few crops, the crop under each map
    aggregate.png              Figure 1 d/g: the first crop, its aggregate map, the set's
    vertex_sensitivity.png     Figure 5: the aggregate sensitivity mesh, front and back
    vertex_sensitivity_joints.png  Figure 3: one sensitivity mesh per joint
`bar_chart` draws Figure 6 from several runs' `occlusion.json`.

Cost: per crop one forward pass per position plus one unoccluded (577 at the paper's numbers),
run as one batch (or chunks of `max_batch`): a GPU job on a real benchmark.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colorbar import Colorbar
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import ScalarFormatter
from torch import Tensor
from torch.nn import functional
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from body.joint_sets import canonical_indices, joint_names
from datamodules.datasets import collate_crops
from experiments.figures import (
    Predictor,
    finite_ranges,
    render_vertex_values,
    unnormalize_image,
)
from geometry.cameras import project_points
from geometry.drawing import heatmap_grid, save_png
from geometry.render import render_depth
from lightning_modules.pare.losses import centre_on_shared

OCCLUDER_VALUE = 0.0  # normalised units: the ImageNet mean colour (module docstring)
VISIBILITY_TOLERANCE = 0.03  # metres behind the rendered surface a vertex still counts visible
DEFAULT_JOINT_SET = "smpl_24"
EXAMPLE_IMAGES = 4  # crops kept (image and maps) for the per-image figures
JSON_NAME = "occlusion.json"
COLORMAP = "jet"
MAP_COLUMNS = 6  # cells per row of the per-joint figures
MAP_CELL_SIZE = 160  # pixels: a cell is the crop size times the smallest integer reaching this


class _PosedBody(Protocol):
    vertices: Tensor  # (B, V, 3)


class _BodyModelLike(Protocol):
    canonical_available: Tensor  # (K,) bool

    @property
    def faces(self) -> Tensor: ...

    def __call__(self, pose: Tensor) -> _PosedBody: ...


class OcclusionModule(Predictor, Protocol):
    """A module `analyse` can run: PAREModule (PARE and HMR-EFT) is one."""

    @property
    def body_model(self) -> _BodyModelLike: ...


# -------------------------------------------------------------------------------------------
# occluder grid


def positions_per_side(size: int, patch: int, stride: int) -> int:
    """Occluder positions along one side of a `size` crop: (size - patch) // stride + 1."""
    if not 0 < patch <= size or stride <= 0:
        raise ValueError(f"need 0 < patch <= size and stride > 0; got {patch=}, {size=}, {stride=}")
    return (size - patch) // stride + 1


def occluder_positions(size: int, patch: int, stride: int) -> np.ndarray:
    """(N, 2) int64 top-left corners (x0, y0) in pixels, row-major (y outer, x inner), N =
    `positions_per_side` squared: 576 for size 224, patch 40, stride 8."""
    starts = stride * np.arange(positions_per_side(size, patch, stride), dtype=np.int64)
    y0, x0 = np.meshgrid(starts, starts, indexing="ij")
    return np.stack([x0.ravel(), y0.ravel()], axis=1)


def occluder_centres(size: int, patch: int, stride: int) -> np.ndarray:
    """(side,) float64 centre coordinate of the occluders along one axis, x0 + (patch - 1) / 2
    in pixels (pixel centres at integers); the same for x and y."""
    side = positions_per_side(size, patch, stride)
    return stride * np.arange(side, dtype=np.float64) + (patch - 1) / 2.0


def occlude(
    image: Tensor, positions: np.ndarray, patch: int, value: float | Tensor = OCCLUDER_VALUE
) -> Tensor:
    """The occluded variants of one crop.

    Args:
        image: (3, S, S) normalised crop (not modified).
        positions: (N, 2) top-left corners (x0, y0) in pixels.
        patch: side of the square in pixels.
        value: the occluder's normalised value, one for all channels or (3,) per channel.

    Returns:
        (N, 3, S, S): variant k is the crop with pixels [y0, y0 + patch) x [x0, x0 + patch)
        set to ``value``, on the image's device.
    """
    size = image.shape[-1]
    coords = torch.arange(size, device=image.device)
    x0, y0 = (torch.as_tensor(positions[:, i], device=image.device) for i in (0, 1))
    inside_x = (coords >= x0[:, None]) & (coords < x0[:, None] + patch)  # (N, S)
    inside_y = (coords >= y0[:, None]) & (coords < y0[:, None] + patch)  # (N, S)
    mask = inside_y[:, None, :, None] & inside_x[:, None, None, :]  # (N, 1, S, S)
    fill = torch.as_tensor(value, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
    return torch.where(mask, fill.expand(3, 1, 1), image)


# -------------------------------------------------------------------------------------------
# errors and their transfer to vertices


def centred_joint_errors(predicted: Tensor, truth: Tensor, visible: Tensor) -> Tensor:
    """Per-joint 3D error of several predictions of one person (module docstring "Error").

    Args:
        predicted: (N, J, 3) metres.
        truth: (J, 3) metres.
        visible: (J,) bool, the joints the ground truth has.

    Returns:
        (N, J) float64 mm after centring each pose on the mean of its visible joints; NaN for
        the joints that are not visible.
    """
    shared = visible.expand(predicted.shape[0], -1)  # (N, J)
    pred = centre_on_shared(predicted.double(), shared)
    target = centre_on_shared(truth.double().expand_as(predicted), shared)
    errors = 1000.0 * (pred - target).norm(dim=-1)
    return torch.where(shared, errors, torch.nan)


def visible_vertex_pixels(
    vertices: Tensor,
    faces: Tensor,
    K: Tensor,
    size: int,
    tolerance: float = VISIBILITY_TOLERANCE,
) -> tuple[Tensor, Tensor]:
    """Where a mesh's vertices land in an S x S crop and which of them are seen.

    Args:
        vertices: (V, 3) camera frame, metres. faces: (F, 3) int64. K: (3, 3) of the crop.

    Returns:
        uv (V, 2) pixel coordinates; visible (V,) bool: in front of the camera, inside the
        crop, and at most ``tolerance`` metres behind the rendered depth at its pixel.
    """
    depth = render_depth(vertices[None], faces, K[None], (size, size))[0]  # (S, S)
    uv = project_points(vertices, K, eps=1e-6)
    pixel = uv.round().long()
    inside = (vertices[:, 2] > 0) & ((pixel >= 0) & (pixel < size)).all(dim=1)
    pixel = pixel.clamp(0, size - 1)
    surface = depth[pixel[:, 1], pixel[:, 0]]
    return uv, inside & (vertices[:, 2] <= surface + tolerance)


def sample_position_maps(maps: Tensor, uv: Tensor, size: int, patch: int, stride: int) -> Tensor:
    """Values of per-position maps at pixels (module docstring "sensitivity meshes").

    Args:
        maps: (C, side, side) per occluder position, rows along y.
        uv: (P, 2) pixel coordinates (x, y) in the crop.

    Returns:
        (C, P): bilinear between occluder centres, the border value beyond them.
    """
    centres = occluder_centres(size, patch, stride)
    span = max(centres[-1] - centres[0], 1e-9)
    grid = (uv.to(maps.dtype) - centres[0]) / span * 2.0 - 1.0  # [-1, 1] across the centres
    sampled = functional.grid_sample(
        maps[None], grid[None, None], mode="bilinear", padding_mode="border", align_corners=True
    )  # (1, C, 1, P)
    return sampled[0, :, 0]


# -------------------------------------------------------------------------------------------
# the analysis


@dataclass
class OcclusionExample:
    """One analysed crop kept for the per-image figures: image (S, S, 3) uint8; joint_errors
    (N, J) mm per position (NaN for absent joints); mpjpe (N,) mm; unoccluded (J,) mm."""

    sample_id: str
    image: np.ndarray
    joint_errors: np.ndarray
    mpjpe: np.ndarray
    unoccluded: np.ndarray


@dataclass
class OcclusionResult:
    """Sums and counts over the analysed crops (NaN-free), from which every mean follows.

    N positions, J joints, V vertices; vertex channels are the J joints, then the aggregate.
    """

    size: int
    patch: int
    stride: int
    joint_set: str
    num_vertices: int
    num_images: int = 0
    joint_names: tuple[str, ...] = field(init=False)  # of joint_set
    error_sum: np.ndarray = field(init=False)  # (N, J) mm
    error_count: np.ndarray = field(init=False)  # (N, J)
    mpjpe_sum: np.ndarray = field(init=False)  # (N,) mm
    mpjpe_count: np.ndarray = field(init=False)  # (N,)
    unoccluded_sum: np.ndarray = field(init=False)  # (J,) mm
    unoccluded_count: np.ndarray = field(init=False)  # (J,)
    unoccluded_mpjpe_sum: np.ndarray = field(init=False)  # (1,) mm
    unoccluded_mpjpe_count: np.ndarray = field(init=False)  # (1,)
    vertex_sum: np.ndarray = field(init=False)  # (J + 1, V) mm
    vertex_count: np.ndarray = field(init=False)  # (J + 1, V)
    examples: list[OcclusionExample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.joint_names = joint_names(self.joint_set)
        n, j = self.num_positions, len(self.joint_names)
        self.error_sum, self.error_count = np.zeros((n, j)), np.zeros((n, j), np.int64)
        self.mpjpe_sum, self.mpjpe_count = np.zeros(n), np.zeros(n, np.int64)
        self.unoccluded_sum, self.unoccluded_count = np.zeros(j), np.zeros(j, np.int64)
        self.unoccluded_mpjpe_sum, self.unoccluded_mpjpe_count = np.zeros(1), np.zeros(1, np.int64)
        self.vertex_sum = np.zeros((j + 1, self.num_vertices))
        self.vertex_count = np.zeros((j + 1, self.num_vertices), np.int64)

    @property
    def side(self) -> int:
        return positions_per_side(self.size, self.patch, self.stride)

    @property
    def num_positions(self) -> int:
        return self.side**2

    @property
    def positions(self) -> np.ndarray:
        return occluder_positions(self.size, self.patch, self.stride)

    def add(
        self, joint_errors: np.ndarray, unoccluded: np.ndarray, vertex_values: np.ndarray
    ) -> None:
        """Accumulate one crop: joint_errors (N, J) and unoccluded (J,) mm with NaN for absent
        joints; vertex_values (J + 1, V) mm with NaN where not visible or not measured."""
        self.num_images += 1
        _accumulate(self.error_sum, self.error_count, joint_errors)
        _accumulate(self.mpjpe_sum, self.mpjpe_count, _nanmean(joint_errors, axis=1))
        _accumulate(self.unoccluded_sum, self.unoccluded_count, unoccluded)
        unoccluded_mpjpe = _nanmean(unoccluded[None], axis=1)
        _accumulate(self.unoccluded_mpjpe_sum, self.unoccluded_mpjpe_count, unoccluded_mpjpe)
        _accumulate(self.vertex_sum, self.vertex_count, vertex_values)

    def joint_maps(self) -> np.ndarray:
        """(J, side, side) mm: each joint's error per position, mean over images."""
        maps = _ratio(self.error_sum, self.error_count).T
        return maps.reshape(-1, self.side, self.side)

    def aggregate_map(self) -> np.ndarray:
        """(side, side) mm: MPJPE per position, mean over images (Figure 1 d/g)."""
        return _ratio(self.mpjpe_sum, self.mpjpe_count).reshape(self.side, self.side)

    def mpjpe_occluded(self) -> float:
        """mm: the crops' MPJPE averaged over every occluder position and crop."""
        return float(_ratio(self.mpjpe_sum.sum(), self.mpjpe_count.sum()))

    def mpjpe_unoccluded(self) -> float:
        """mm: the crops' MPJPE without occluder, averaged over crops."""
        return float(_ratio(self.unoccluded_mpjpe_sum, self.unoccluded_mpjpe_count)[0])

    def per_joint_occluded(self) -> np.ndarray:
        """(J,) mm: each joint's error over every position and image (Figure 6)."""
        return _ratio(self.error_sum.sum(axis=0), self.error_count.sum(axis=0))

    def per_joint_unoccluded(self) -> np.ndarray:
        """(J,) mm: each joint's error without occluder."""
        return _ratio(self.unoccluded_sum, self.unoccluded_count)

    def vertex_means(self) -> np.ndarray:
        """(J + 1, V) mm: per-vertex sensitivity, mean over the images where it is visible."""
        return _ratio(self.vertex_sum, self.vertex_count)


def _accumulate(total: np.ndarray, count: np.ndarray, values: np.ndarray) -> None:
    finite = np.isfinite(values)
    total += np.where(finite, values, 0.0)
    count += finite


def _ratio(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    return _ratio(np.where(finite, values, 0.0).sum(axis=axis), count)


def _predict(module: OcclusionModule, images: Tensor, max_batch: int | None) -> Tensor:
    """(N, 3, S, S) -> (N, K, 3) canonical keypoints (camera frame, metres), in chunks."""
    chunk = max_batch or images.shape[0]
    keypoints = [
        module.predict_step({"image": images[i : i + chunk]}).keypoints3d[:, 0]
        for i in range(0, images.shape[0], chunk)
    ]
    return torch.cat(keypoints)


def analyse_image(
    module: OcclusionModule,
    image: Tensor,
    truth: Tensor,
    visible: Tensor,
    patch: int,
    stride: int,
    joints: Sequence[int],
    value: float | Tensor = OCCLUDER_VALUE,
    max_batch: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One crop's analysis (module docstring), under the caller's inference mode.

    Args:
        image: (3, S, S) normalised, on the module's device. truth: (J, 3) metres of the
            `joints` (canonical indices); visible: (J,) bool.

    Returns:
        joint_errors (N, J) mm per position, unoccluded (J,) mm (NaN for absent joints), and
        vertex_values (J + 1, V) mm: the J maps and the MPJPE map at each visible vertex of the
        unoccluded prediction (NaN elsewhere).
    """
    size = image.shape[-1]
    plain = module.predict_step({"image": image[None]})
    assert plain.vertices is not None, "the occlusion meshes need predicted vertices"
    positions = occluder_positions(size, patch, stride)
    occluded = _predict(module, occlude(image, positions, patch, value), max_batch)
    errors = centred_joint_errors(occluded[:, joints], truth, visible)  # (N, J)
    unoccluded = centred_joint_errors(plain.keypoints3d[:, 0, joints], truth, visible)[0]
    side = positions_per_side(size, patch, stride)
    mpjpe = errors.nanmean(dim=1)  # (N,) NaN when no joint is visible
    maps = torch.cat([errors.T, mpjpe[None]]).reshape(-1, side, side)  # (J + 1, side, side)
    vertices = plain.vertices[0, 0].float()
    uv, seen = visible_vertex_pixels(vertices, module.body_model.faces, plain.K[0].float(), size)
    on_vertices = sample_position_maps(maps, uv, size, patch, stride)  # (J + 1, V)
    on_vertices = torch.where(seen[None], on_vertices, torch.nan)
    return errors.cpu().numpy(), unoccluded.cpu().numpy(), on_vertices.cpu().numpy()


def analyse(
    module: OcclusionModule,
    batches: Iterable[dict],
    patch: int,
    stride: int,
    *,
    joint_set: str = DEFAULT_JOINT_SET,
    value: float | Tensor = OCCLUDER_VALUE,
    max_batch: int | None = None,
    keep_examples: int = EXAMPLE_IMAGES,
    progress: bool = True,
    total: int | None = None,
) -> OcclusionResult:
    """Run the occlusion sensitivity analysis over crop batches (module docstring).

    Args:
        module: put in eval mode; its predictions run under ``torch.inference_mode``.
        batches: collated crop batches (`collate_crops`) with ``image`` (B, 3, S, S),
            ``keypoints3d`` (B, K, 4) and ``has_keypoints3d`` (B,); ``meta`` is optional.
        patch, stride: occluder side and step in pixels of the crop.
        joint_set: the joints measured (their canonical indices and names).
        value: the occluder's normalised value.
        max_batch: forward passes per chunk of one crop's variants (None: all in one batch).
        keep_examples: crops whose images and maps are kept for the per-image figures.
        total: number of crops, for the progress bar.
    """
    module.eval()
    joints = canonical_indices(joint_set)
    available = module.body_model.canonical_available.bool()[joints]
    result: OcclusionResult | None = None
    bar = tqdm(total=total, desc="occlusion analysis", unit="crop", disable=not progress)
    with torch.inference_mode(), bar:
        for batch in batches:
            for index in range(batch["image"].shape[0]):
                image = batch["image"][index].to(module.device)
                if result is None:
                    result = OcclusionResult(
                        image.shape[-1],
                        patch,
                        stride,
                        joint_set,
                        _num_vertices(module),
                    )
                if image.shape[-1] != result.size:
                    raise ValueError(f"crops of size {image.shape[-1]} and {result.size} mixed")
                target = batch["keypoints3d"][index, joints].to(module.device)
                visible = (target[:, 3] > 0) & available.to(module.device)
                visible = visible & bool(batch["has_keypoints3d"][index])
                outputs = analyse_image(
                    module, image, target[:, :3], visible, patch, stride, joints, value, max_batch
                )
                result.add(*outputs)
                if len(result.examples) < keep_examples:
                    result.examples.append(_example(batch, index, image, *outputs[:2]))
                bar.update(1)
    if result is None:
        raise ValueError("no crops to analyse")
    return result


def _num_vertices(module: OcclusionModule) -> int:
    available = module.body_model.canonical_available
    template = module.body_model(torch.zeros(1, 72, device=available.device))
    return int(template.vertices.shape[1])


def _example(
    batch: dict, index: int, image: Tensor, errors: np.ndarray, unoccluded: np.ndarray
) -> OcclusionExample:
    metas = batch.get("meta")
    sample_id = str(metas[index].get("sample_id", "")) if metas else ""
    return OcclusionExample(
        sample_id, unnormalize_image(image), errors, _nanmean(errors, axis=1), unoccluded
    )


# -------------------------------------------------------------------------------------------
# outputs


def summary(result: OcclusionResult) -> dict:
    """The numbers of `occlusion.json` (millimetres; null where nothing was measured):
    image_size, patch, stride, positions_per_side, num_positions, positions_xy (N top-left
    corners, row-major), centres_px (occluder centres along x and along y), num_images,
    joint_set, joint_names, error (its definition), unoccluded and occluded {mpjpe_mm (mean
    of the crops' MPJPE), per_joint_mm {name: mm}}, aggregate_map_mm (side x side, rows y),
    joint_maps_mm {name: side x side}, vertex_sensitivity_mm (V, the aggregate mesh) and
    vertex_images (V, crops where each vertex was visible)."""
    names = result.joint_names
    occluded, unoccluded = result.per_joint_occluded(), result.per_joint_unoccluded()
    return {
        "image_size": result.size,
        "patch": result.patch,
        "stride": result.stride,
        "positions_per_side": result.side,
        "num_positions": result.num_positions,
        "positions_xy": result.positions.tolist(),
        "centres_px": occluder_centres(result.size, result.patch, result.stride).tolist(),
        "num_images": result.num_images,
        "joint_set": result.joint_set,
        "joint_names": list(names),
        "error": "per-joint 3D error (mm), poses centred on the mean of the ground-truth joints",
        "unoccluded": {
            "mpjpe_mm": _number(result.mpjpe_unoccluded()),
            "per_joint_mm": dict(zip(names, _numbers(unoccluded), strict=True)),
        },
        "occluded": {
            "mpjpe_mm": _number(result.mpjpe_occluded()),
            "per_joint_mm": dict(zip(names, _numbers(occluded), strict=True)),
        },
        "aggregate_map_mm": _numbers(result.aggregate_map()),
        "joint_maps_mm": dict(zip(names, _numbers(result.joint_maps()), strict=True)),
        "vertex_sensitivity_mm": _numbers(result.vertex_means()[-1]),
        "vertex_images": result.vertex_count[-1].tolist(),
    }


def _number(value: float | np.ndarray) -> float | None:
    value = float(value)
    return round(value, 3) if math.isfinite(value) else None


def _numbers(values: np.ndarray) -> list:
    """Nested lists of rounded floats, None for NaN (JSON has no NaN)."""
    return [_numbers(row) for row in values] if values.ndim > 1 else [_number(v) for v in values]


def write_outputs(
    result: OcclusionResult, out_dir: str | Path, template_vertices: Tensor, faces: Tensor
) -> Path:
    """Write the files of the module docstring under `out_dir`; return the JSON's path.

    Args:
        template_vertices: (V, 3) the body the sensitivity meshes are drawn on, in SMPL's rest
            frame (y up, facing +z): the mean shape in T-pose. faces: (F, 3) int64.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / JSON_NAME
    path.write_text(json.dumps(summary(result), indent=1, allow_nan=False) + "\n")
    vertex_means = result.vertex_means()
    np.savez_compressed(
        out / "occlusion_vertices.npz",
        joint_vertex_mm=vertex_means[:-1],
        aggregate_vertex_mm=vertex_means[-1],
        joint_names=np.array(result.joint_names),
    )
    save_png(out / "joint_heatmaps.png", _map_grid(result, result.joint_maps()))
    for index, example in enumerate(result.examples):
        maps = example.joint_errors.T.reshape(-1, result.side, result.side)
        save_png(out / f"image_{index}_joints.png", _map_grid(result, maps, example.image))
    _aggregate_figure(result, out / "aggregate.png")
    _vertex_figures(result, vertex_means, template_vertices, faces, out)
    return path


def position_maps_to_pixels(maps: np.ndarray, size: int, patch: int, stride: int) -> np.ndarray:
    """Per-position maps (C, side, side) -> (C, S, S) over the crop: each pixel takes the value
    of the occluder whose centre is nearest, within stride / 2 of it along both axes; NaN in
    the margin no occluder centre reaches (about (patch - stride) / 2 pixels wide)."""
    centres = occluder_centres(size, patch, stride)
    pixels = np.arange(size, dtype=np.float64)
    nearest = np.clip(np.round((pixels - centres[0]) / stride), 0, len(centres) - 1).astype(int)
    reached = np.abs(pixels - centres[nearest]) <= stride / 2.0  # (S,)
    values = maps[:, nearest][:, :, nearest]  # (C, S, S), rows y then columns x
    covered = reached[:, None] & reached[None, :]
    return np.where(covered, values, np.nan)


def _range_label(name: str, values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    return f"{name} {finite.min():.1f}-{finite.max():.1f}mm" if finite.size else f"{name} n/a"


def _map_grid(
    result: OcclusionResult, maps: np.ndarray, image: np.ndarray | None = None
) -> np.ndarray:
    """Figure 2: one cell per joint map (J, side, side) drawn over the crop pixels it belongs
    to, each scaled to its own range (in the label, mm); the crop under every cell if given,
    the uncovered margin dark."""
    pixels = position_maps_to_pixels(maps, result.size, result.patch, result.stride)
    low, high = finite_ranges(maps.reshape(len(maps), -1)).T[:, :, None, None]  # (J, 1, 1) each
    scaled = (pixels - low) / np.maximum(high - low, 1e-9)
    # Upsampled here by whole pixels, so heatmap_grid's own resize is the identity and cell
    # borders stay sharp (a linear resize would draw mid-range colours between cells).
    factor = math.ceil(MAP_CELL_SIZE / result.size)
    scaled = scaled.repeat(factor, axis=1).repeat(factor, axis=2)
    labels = [_range_label(n, m) for n, m in zip(result.joint_names, maps, strict=True)]
    return heatmap_grid(
        scaled, image, MAP_COLUMNS, scaled.shape[-1], labels, normalize=False, colormap=COLORMAP
    )


def _draw_map(ax, result: OcclusionResult, values: np.ndarray, image: np.ndarray | None):
    """Draw a (side, side) map on a matplotlib axis in crop pixels, cells centred on the
    occluder centres; the crop underneath when given. Returns the map's AxesImage."""
    centres = occluder_centres(result.size, result.patch, result.stride)
    low, high = centres[0] - result.stride / 2.0, centres[-1] + result.stride / 2.0
    bounds = (-0.5, result.size - 0.5, result.size - 0.5, -0.5)
    if image is not None:
        ax.imshow(image, extent=bounds, interpolation="nearest")
    else:
        ax.add_patch(Rectangle((-0.5, -0.5), result.size, result.size, color="0.2", zorder=0))
    finite = values[np.isfinite(values)]
    low_value, high_value = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    shown = ax.imshow(
        np.ma.masked_invalid(values),
        extent=(low, high, high, low),
        cmap=COLORMAP,
        vmin=low_value,
        vmax=max(high_value, low_value + 1e-6),
        alpha=0.55 if image is not None else 1.0,
        interpolation="nearest",
    )
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    _hide_axes(ax)
    return shown


def _no_offset(colorbar: Colorbar) -> None:
    """Tick labels in plain mm (no '+1.9e2' offset on nearly flat maps)."""
    formatter = colorbar.ax.yaxis.get_major_formatter()
    if isinstance(formatter, ScalarFormatter):
        formatter.set_useOffset(False)


def _hide_axes(ax) -> None:
    """No ticks and no frame (cheaper to lay out than ``set_axis_off``)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _aggregate_figure(result: OcclusionResult, path: Path) -> None:
    """Figure 1 d/g: the first crop, its MPJPE per occluder position over it, and the set's
    mean map, with colour bars in mm; a white square in the corner shows the occluder's size."""
    maps: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    first = result.examples[0] if result.examples else None
    if first is not None:
        maps.append((f"crop {first.sample_id}", first.mpjpe.reshape(result.side, -1), first.image))
    maps.append((f"mean over {result.num_images} crops", result.aggregate_map(), None))
    columns = len(maps) + (first is not None)
    figure = Figure(figsize=(3.8 * columns, 3.6))
    figure.subplots_adjust(left=0.02, right=0.93, bottom=0.03, top=0.82, wspace=0.25)
    if first is not None:
        ax = figure.add_subplot(1, columns, 1)
        ax.imshow(first.image)
        _hide_axes(ax)
        ax.set_title("input crop", fontsize=9)
    for index, (title, values, image) in enumerate(maps, start=columns - len(maps) + 1):
        ax = figure.add_subplot(1, columns, index)
        shown = _draw_map(ax, result, values, image)
        square = (0.5, 0.5), result.patch, result.patch
        ax.add_patch(Rectangle(*square, fill=False, edgecolor="white", linewidth=1.5))
        ax.set_title(f"MPJPE per occluder position\n{title}", fontsize=9)
        _no_offset(figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="mm"))
    figure.suptitle(f"{result.patch} px occluder, stride {result.stride} px", fontsize=9)
    figure.savefig(path, dpi=100)


def _vertex_figures(
    result: OcclusionResult,
    vertex_means: np.ndarray,
    template_vertices: Tensor,
    faces: Tensor,
    out: Path,
) -> None:
    """Figures 5 (aggregate, with a colour bar in mm) and 3 (one mesh per joint, its range in
    the title): occlusion sensitivity meshes, front and back."""
    pictures, ranges = render_vertex_values(template_vertices, faces, vertex_means)
    figure = Figure(figsize=(6.4, 3.6))
    figure.subplots_adjust(left=0.01, right=0.86, bottom=0.03, top=0.86)
    ax = figure.add_subplot(1, 1, 1)
    ax.imshow(np.concatenate(list(pictures[-1]), axis=1))
    _hide_axes(ax)
    ax.set_title(
        f"MPJPE when the vertex is occluded\n(front, back; {result.num_images} crops)", fontsize=9
    )
    norm = Normalize(vmin=ranges[-1, 0], vmax=max(ranges[-1, 1], ranges[-1, 0] + 1e-6))
    mappable = ScalarMappable(norm=norm, cmap=COLORMAP)
    _no_offset(figure.colorbar(mappable, ax=ax, fraction=0.04, shrink=0.8, label="mm"))
    figure.savefig(out / "vertex_sensitivity.png", dpi=100)
    rows = math.ceil(len(result.joint_names) / MAP_COLUMNS)
    figure = Figure(figsize=(2.6 * MAP_COLUMNS, 1.7 * rows))
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.3)
    for index, name in enumerate(result.joint_names):
        ax = figure.add_subplot(rows, MAP_COLUMNS, index + 1)
        ax.imshow(np.concatenate(list(pictures[index]), axis=1))
        _hide_axes(ax)
        ax.set_title(_range_label(name, vertex_means[index]), fontsize=8)
    figure.savefig(out / "vertex_sensitivity_joints.png", dpi=100)


def load_per_joint(path: str | Path) -> dict[str, float]:
    """{joint name: mm} of the occluded per-joint errors in an `occlusion.json` (None -> NaN)."""
    per_joint = json.loads(Path(path).read_text())["occluded"]["per_joint_mm"]
    return {name: math.nan if value is None else float(value) for name, value in per_joint.items()}


def bar_chart(
    per_model: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str = "Per-joint occlusion sensitivity",
) -> Path:
    """Figure 6: per-joint mean error under occlusion, one bar per model in each joint's group.

    Args:
        per_model: {model label: {joint name: mm}} (`load_per_joint` of each run); joints in
            the first model's order, then any others'; a missing or NaN value leaves a gap.
        path: the PNG to write.
    """
    if not per_model:
        raise ValueError("bar_chart needs at least one model")
    names: list[str] = []
    for errors in per_model.values():
        names += [name for name in errors if name not in names]
    width = 0.8 / len(per_model)
    figure = Figure(figsize=(max(6.0, 0.45 * len(names) * max(1, len(per_model) / 2)), 3.8))
    ax = figure.add_subplot(1, 1, 1)
    for index, (label, errors) in enumerate(per_model.items()):
        heights = [errors.get(name, math.nan) for name in names]
        offsets = np.arange(len(names)) + (index - (len(per_model) - 1) / 2) * width
        ax.bar(offsets, heights, width=width, label=label)
    ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("mean 3D joint error\nunder occlusion (mm)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


# -------------------------------------------------------------------------------------------
# entry point for the command line


def run_occlusion_analysis(
    module: OcclusionModule,
    dataset: Dataset,
    out_dir: str | Path,
    patch: int = 40,
    stride: int = 8,
    limit: int | None = None,
    max_batch: int | None = None,
    progress: bool = True,
    joint_set: str = DEFAULT_JOINT_SET,
    num_workers: int = 0,
) -> Path:
    """Analyse the first `limit` crops (all if None) of a crop dataset and write the outputs
    (module docstring) under `out_dir`; return the path of `occlusion.json`."""
    count = len(dataset) if limit is None else min(limit, len(dataset))  # type: ignore[arg-type]
    if count == 0:
        raise ValueError("the dataset has no crops to analyse")
    loader = DataLoader(
        Subset(dataset, range(count)),
        batch_size=1,
        collate_fn=collate_crops,
        num_workers=num_workers,
    )
    result = analyse(
        module,
        loader,
        patch,
        stride,
        joint_set=joint_set,
        max_batch=max_batch,
        progress=progress,
        total=count,
    )
    body_model = module.body_model
    with torch.inference_mode():
        pose = torch.zeros(1, 72, device=body_model.canonical_available.device)
        template = body_model(pose).vertices[0]
    return write_outputs(result, out_dir, template.cpu(), body_model.faces.cpu())
