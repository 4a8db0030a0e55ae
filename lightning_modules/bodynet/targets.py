"""BodyNet's targets from canonical crop samples, and its predictions decoded back.

`BodyNetTargets` is the DataModule's `target_transform` (it runs in the workers) and adds:

- `bodynet_heatmaps2d` (J, h, w) float32: 2D Gaussians (sigma 1 heatmap pixel, as Newell's)
  at the `bodynet_16` joints; `bodynet_joint_weight` (J,): 1 where the joint is labelled and
  inside the crop;
- `bodynet_segm` (h, w) int64: the `bodynet_15` classes of the part labels at heatmap
  resolution, -100 (ignored) without part labels;
- `bodynet_heatmaps3d` (J, bins, h, w) float32: 3D Gaussians (sigma 1 pixel and 1 bin) around
  the root: x, y = the joint's projection, bin = (z - z_root) / bin size + (bins - 1) / 2;
  `bodynet_joint3d_weight` (J,): 1 where the camera-frame 3D joint is labelled (0 for datasets
  with root-relative 3D only);
- `bodynet_voxels` (R, R, R) bool: the posed ground-truth mesh voxelized in BodyNet's
  crop-aligned grid (`geometry.volumes.bodynet_voxelize`, root at the middle depth), and
  `has_bodynet_voxels` (the sample has SMPL in the crop's camera);
- `bodynet_root_depth` () float32: the depth (metres) of the root the grid is centred on, the
  "known" root depth of BodyNet's evaluation (section 4.1): the labelled 3D root joint, else
  the posed SMPL's (UP-3D has SMPL fits but no 3D joints); 0 when there is neither;
- `bodynet_silhouette` (R, R) float32: the front-view target, the body's silhouette averaged
  over each grid cell and thresholded at 0.5 (the paper's ground-truth 2D segmentation): the
  foreground of the part labels where the sample has them (SURREAL's segmentation; UP-3D's
  rendered SMPL fit, the "SMPL silhouettes" BodyNet supervises UP-3D with, appendix A.2), else
  the person mask, else the front view of the ground-truth voxels;
- with `part_voxels`: `bodynet_part_voxels` (R, R, R) int64, the `bodynet_7` class of each
  voxel (`geometry.volumes.voxelize_labels`), and `bodynet_part_front` (R, R) int64, the class
  of each grid column from the part labels.

h = w = S / 4 (S the crop side). Depth: 19 bins of 4.5 cm (datasets.md 1.6: BodyNet's
`stp = 0.045`, about 85 cm). Targets a sample lacks are zeros with weight 0 (or -100 labels),
never guessed.

Voxels are built from the sample's SMPL parameters in the sample's own crop, so they follow the
crop's augmentation: about 14 ms per sample at 32^3 and 60 ms at 128^3 on one CPU core. With
`cache_root` (and `data_root`), the occupancy of a sample whose crop is exactly the test-time
crop (its `meta["crop_matrix"]` equals the cached one: no shift, scale, rotation, flip or
partial crop; colour jitter and occluders leave the geometry alone) is unpacked from the cache
that `python -m experiments prepare surreal --targets bodynet_voxels --voxel-resolution R`
builds (`lightning_modules/bodynet/voxel_cache.py`: SURREAL and UP-3D, keyed by the split's
annotation files, the resolution, crop side, box factor and body model); every other sample,
and every split without an entry, is voxelized on the fly. Part voxels are always built on the
fly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from body.joint_sets import canonical_indices, root_index
from body.part_groups import group_parts, lookup_table
from lightning_modules.bodynet.voxel_cache import VoxelCache
from lightning_modules.common.heatmaps import (
    gaussian_heatmaps,
    heatmap_coordinates,
    heatmap_to_pixels,
)

JOINT_SET = "bodynet_16"
DEPTH_BINS = 19
DEPTH_BIN_SIZE = 0.045  # metres (datasets.md 1.6)
SIGMA = 1.0  # heatmap pixels (and depth bins)
IGNORE = -100


class BodyNetTargets:
    """`target_transform` adding BodyNet's targets to a crop sample (module docstring).

    Args:
        body_model_root, body_model_name: the body model that poses the ground-truth meshes.
        voxel_resolution: R.
        depth_bins, depth_bin_size: the 3D pose volume's depth quantisation.
        part_voxels: also build the 3D part targets (7 classes).
        sigma: Gaussian sigma of the heatmaps, in heatmap pixels and depth bins.
    """

    def __init__(
        self,
        body_model_root: str,
        body_model_name: str = "mannequin",
        voxel_resolution: int = 128,
        depth_bins: int = DEPTH_BINS,
        depth_bin_size: float = DEPTH_BIN_SIZE,
        part_voxels: bool = False,
        sigma: float = SIGMA,
        cache_root: str | None = None,
        data_root: str | None = None,
    ) -> None:
        self.body_model_root, self.body_model_name = body_model_root, body_model_name
        self.voxel_resolution, self.depth_bins = voxel_resolution, depth_bins
        self.depth_bin_size, self.part_voxels, self.sigma = depth_bin_size, part_voxels, sigma
        if cache_root is not None and data_root is None:
            raise ValueError(
                "BodyNetTargets: cache_root needs data_root (cache entries are keyed by the "
                "split's annotation files under it)"
            )
        self.cache = (
            None if cache_root is None else VoxelCache(cache_root, str(data_root), voxel_resolution)
        )
        self.joints = canonical_indices(JOINT_SET)
        self.root = root_index(JOINT_SET)
        self._models: Any = None

    def models(self) -> Any:
        if self._models is None:  # built in the worker, not pickled with the transform
            from datamodules.base import BodyModels

            self._models = BodyModels(self.body_model_root, self.body_model_name)
        return self._models

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_models": None}

    def __call__(self, sample: dict) -> dict:
        side = sample["image"].shape[-1]
        if side % 4:
            raise ValueError(f"BodyNet needs a crop side divisible by 4, got {side}")
        size = side // 4
        out = dict(sample)
        keypoints2d = sample["keypoints2d"][self.joints]
        out["bodynet_heatmaps2d"], out["bodynet_joint_weight"] = heatmaps2d(
            keypoints2d, side, size, self.sigma
        )
        out["bodynet_segm"] = segmentation_target(sample, size)
        out["bodynet_heatmaps3d"], out["bodynet_joint3d_weight"] = self.heatmaps3d(sample, size)
        out.update(self.voxel_targets(sample))
        return out

    def heatmaps3d(self, sample: dict, size: int) -> tuple[Tensor, Tensor]:
        joints = sample["keypoints3d"][self.joints]  # (J, 4) camera metres + confidence
        if self.labelled_root_depth(sample) <= 0:
            empty = torch.zeros(len(self.joints), self.depth_bins, size, size)
            return empty, torch.zeros(len(self.joints))
        side = sample["image"].shape[-1]
        projected = joints[:, :3] @ sample["K"].T
        pixels = projected[:, :2] / projected[:, 2:].clamp_min(1e-6)
        bins = (joints[:, 2] - joints[self.root, 2]) / self.depth_bin_size
        bins = bins + 0.5 * (self.depth_bins - 1)
        weight = (joints[:, 3] > 0).float()
        volume = gaussian_volume(pixels, bins, side, size, self.depth_bins, self.sigma)
        volume = volume * weight[:, None, None, None]
        return volume, weight

    def labelled_root_depth(self, sample: dict) -> float:
        """z (metres) of the labelled camera-frame root joint, 0 when there is none."""
        root = sample["keypoints3d"][self.joints[self.root]]
        usable = bool(sample["has_keypoints3d"]) and not bool(
            sample.get("keypoints3d_root_relative", torch.tensor(False))
        )
        return float(root[2]) if usable and root[3] > 0 and root[2] > 0 else 0.0

    def voxel_targets(self, sample: dict) -> dict[str, Tensor]:
        resolution = self.voxel_resolution
        targets: dict[str, Tensor] = {"has_bodynet_voxels": torch.tensor(has_voxels(sample))}
        voxels = torch.zeros((resolution,) * 3, dtype=torch.bool)
        part_voxels = torch.zeros((resolution,) * 3, dtype=torch.int64)
        root_depth = self.labelled_root_depth(sample)
        if targets["has_bodynet_voxels"]:
            cached = None if self.cache is None else self.cache.grid(sample, self.models())
            if cached is not None and not self.part_voxels and root_depth > 0:
                voxels = cached
            else:
                body = posed_body(self.models(), sample)
                root_depth = body.root_depth
                voxels = cached if cached is not None else body_voxels(body, sample, resolution)
                if self.part_voxels:
                    part_voxels = body_part_voxels(body, sample, resolution)
        targets["bodynet_voxels"] = voxels
        targets["bodynet_root_depth"] = torch.tensor(max(root_depth, 0.0), dtype=torch.float32)
        targets["bodynet_silhouette"] = front_silhouette(sample, voxels)
        if self.part_voxels:
            targets["bodynet_part_voxels"] = part_voxels
            targets["bodynet_part_front"] = part_front_target(sample, resolution)
        return targets


@dataclass
class PosedBody:
    """A sample's ground-truth mesh in the crop's camera: the model that posed it, vertices
    (V, 3) metres and the root joint's depth z (metres)."""

    model: Any
    vertices: Tensor
    root_depth: float


def has_voxels(sample: dict) -> bool:
    """Whether the sample's voxels can be built: it has SMPL ground truth. Every reader puts
    the SMPL in the camera of the record's K (a fit is moved into the camera that projects it
    onto the image), and BodyNet's grid uses K only through that projection and the depth
    scale f / z_root, so the grid is the body's own geometry whether or not K is a calibration
    (`has_camera`): UP-3D's voxels are those of its SMPLify fits with their f = 5000 camera, as
    BodyNet fine-tunes on them (section 4.5)."""
    return bool(sample["has_smpl"])


def posed_body(models: Any, sample: dict) -> PosedBody:
    """The sample's SMPL parameters posed with its gender's model (`models`: a `BodyModels`)."""
    model = models.get(int(sample["gender"]))
    with torch.no_grad():
        posed = model(sample["pose"][None], sample["betas"][None], sample["transl"][None])
    return PosedBody(model, posed.vertices[0], float(posed.joints[0, 0, 2]))


def body_voxels(body: PosedBody, sample: dict, resolution: int) -> Tensor:
    """(R, R, R) bool occupancy of the posed body in BodyNet's grid over the sample's crop."""
    from geometry.volumes import bodynet_voxelize

    side = sample["image"].shape[-1]
    return bodynet_voxelize(
        body.vertices, body.model.faces, sample["K"], body.root_depth, side, resolution
    )


def sample_voxels(models: Any, sample: dict, resolution: int) -> Tensor:
    """(R, R, R) bool on-the-fly voxels of a sample that `has_voxels` (what the cache stores)."""
    return body_voxels(posed_body(models, sample), sample, resolution)


def body_part_voxels(body: PosedBody, sample: dict, resolution: int) -> Tensor:
    """(R, R, R) int64 `bodynet_7` class of each voxel of the posed body (0 background)."""
    from geometry.volumes import bodynet_grid_vertices, voxelize_labels

    side = sample["image"].shape[-1]
    grid = bodynet_grid_vertices(body.vertices, sample["K"], body.root_depth, side, resolution)
    part_of_vertex = body.model.smpl.lbs_weights.argmax(dim=1)  # SMPL part 0..23
    labels = lookup_table("bodynet_7")[part_of_vertex + 1] - 1
    return voxelize_labels(
        grid, body.model.faces, resolution, (0.0,) * 3, (float(resolution),) * 3, labels
    )


def heatmaps2d(keypoints2d: Tensor, side: int, size: int, sigma: float) -> tuple[Tensor, Tensor]:
    """(J, size, size) Gaussians and (J,) weights of crop keypoints (J, 3) (x, y, confidence);
    a joint that is unlabelled or outside the crop has a zero map and weight 0."""
    xy = heatmap_coordinates(keypoints2d[:, :2], side, (size, size))
    inside = (xy >= -0.5).all(dim=1) & (xy <= size - 0.5).all(dim=1)
    weight = ((keypoints2d[:, 2] > 0) & inside).float()
    maps = gaussian_heatmaps(keypoints2d[None], side, (size, size), sigma)[0]
    return maps * weight[:, None, None], weight


def gaussian_volume(
    pixels: Tensor, bins: Tensor, side: int, size: int, depth_bins: int, sigma: float
) -> Tensor:
    """(J, depth_bins, size, size) 3D Gaussians at crop pixels (J, 2) and depth `bins` (J,)."""
    depth = torch.arange(depth_bins, dtype=pixels.dtype)
    gz = torch.exp(-((depth[None] - bins[:, None]) ** 2) / (2 * sigma**2))  # (J, bins)
    maps = gaussian_heatmaps(pixels[None], side, (size, size), sigma)[0]  # (J, h, w)
    return gz[:, :, None, None] * maps[:, None]


def segmentation_target(sample: dict, size: int) -> Tensor:
    """`bodynet_15` labels (size, size) by nearest neighbour at cell centres; -100 without part
    labels."""
    if not bool(sample["has_part_segm"]):
        return torch.full((size, size), IGNORE, dtype=torch.int64)
    return group_parts(_nearest(sample["part_segm"], size), "bodynet_15")


def part_front_target(sample: dict, size: int) -> Tensor:
    """`bodynet_7` labels (size, size) of the part labels; -100 without part labels."""
    if not bool(sample["has_part_segm"]):
        return torch.full((size, size), IGNORE, dtype=torch.int64)
    return group_parts(_nearest(sample["part_segm"], size), "bodynet_7")


def front_silhouette(sample: dict, voxels: Tensor) -> Tensor:
    """The front-view target (R, R) of a sample (module docstring) given its voxels."""
    if bool(sample["has_part_segm"]):
        return silhouette_target(sample["part_segm"] > 0, voxels.shape[-1])
    if bool(sample["has_mask"]):
        return silhouette_target(sample["mask"], voxels.shape[-1])
    return voxels.amax(dim=0).float()


def silhouette_target(mask: Tensor, resolution: int) -> Tensor:
    """The mask's mean over each of the grid's cells, thresholded at 0.5: (R, R) float32."""
    coverage = F.adaptive_avg_pool2d(mask.float()[None, None], resolution)[0, 0]
    return (coverage >= 0.5).float()


def _nearest(labels: Tensor, size: int) -> Tensor:
    """Labels (S, S) sampled at the centres of a size x size grid over the same crop."""
    resized = F.interpolate(labels[None, None].double(), size=(size, size), mode="nearest-exact")
    return resized[0, 0].round().long()


def decode_heatmaps2d(heatmaps: Tensor, side: int) -> Tensor:
    """(B, J, h, w) -> (B, J, 2) crop pixel coordinates of each map's maximum (paper 3.3)."""
    height, width = heatmaps.shape[-2:]
    flat = heatmaps.flatten(2).argmax(dim=2)
    xy = torch.stack(((flat % width).float(), (flat // width).float()), dim=-1)
    return heatmap_to_pixels(xy, side, (height, width))


def decode_heatmaps3d(
    volumes: Tensor, side: int, depth_bin_size: float = DEPTH_BIN_SIZE
) -> tuple[Tensor, Tensor]:
    """(B, J, bins, h, w) -> (crop pixel xy (B, J, 2), depth relative to the root in metres
    (B, J)) at each volume's maximum."""
    bins, height, width = volumes.shape[-3:]
    flat = volumes.flatten(2).argmax(dim=2)
    z, rest = flat // (height * width), flat % (height * width)
    y, x = (rest // width).float(), (rest % width).float()
    xy = heatmap_to_pixels(torch.stack((x, y), dim=-1), side, (height, width))
    return xy, (z.float() - 0.5 * (bins - 1)) * depth_bin_size
