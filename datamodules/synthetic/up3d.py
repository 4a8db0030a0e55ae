"""Synthetic UP-3D, up-s31 and upi-s1h in the native layout (datasets.md 2, `datamodules.up3d`).

Images. One person per image, whole body, pose and shape from the prior, rendered with
`SceneRenderer` (textures, procedural backgrounds, an occluder on about 30 % of the images)
into LSP-like images: 150 to 300 px tall, aspect (W / H) 0.6 to 1.0. The fit camera is the UP
one: f = 5000 px, principal point at the centre of the fit crop (w / 2, h / 2); the person's
depth is chosen so that its posed body fills 70 to 90 % of the fit crop's height (t_z about 25
to 80 m, like the real [0.07, 0.30, 56.4]). Most images are their own fit crop (`h w 0 h 0 w`);
every `CROP_EVERY`-th image has a real crop: the fit was made on an h x w crop which, resized by
0.6 to 1.5, sits at rows y0:y1, cols x0:x1 of a larger image. Such an image is rendered directly
with the image camera K = A K_fit (A the crop-to-image map of `datamodules.up3d.FitCrop`), so
that K is exact; nothing is resampled.

Files per 5-digit id, in the real formats: `_image.png`; `_body.pkl` (protocol 2 with legacy
numpy names: `pose` (72,), `betas` (10,), `trans` zeros (3,), `rt` zeros (3,), `t` (3,) = the
camera-frame SMPL translation, `f` 5000.0, `j2d` (25, 2) = the 24 SMPL joints and the
`lsp_head_top` keypoint projected with the fit camera, in fit-crop pixels); `_joints.npy`
(3, 14) float64, the LSP-14 keypoints projected with K in image pixels, visibility 1 inside the
image and 0 outside; `_fit_crop_info.txt`; `_dataset_info.txt` (`lsp <idx>` for a share of the
images, `lsp` indices 1..1000 for train/val and 1001..2000 for test as LSP's own split, then
`lspext`, `mpii`, `fashionpose`; the first `MIN_LSP_TEST` test images are `lsp`);
`_quality_info.txt` (`high`, `medium`, `low`); `_render_light.png` (the fit shaded grey on white
255, same size). Lists `train/val/test.txt` (ids shuffled into the splits, each list sorted) and
`trainval.txt` = train then val.

up-s31 (`up-s31/s31/`): every image, named by its UP-3D id (as the release, see the reader),
resized by the scale factor 500 / `robust_person_size(joints)` written with 6 decimals (and
used as written, so the reader's size check is exact; PIL bilinear, nearest for labels, size
floor(W s) x floor(H s) as scipy's imresize) and cropped by `s31_crop` to at most 513 x 513: the
real recipe, so these images are about 500 px tall. An image without a usable limb keeps scale
1.0. `NNNNN_ann.png` is the 31-region map rendered from the posed body with fixed per-vertex
region labels (`vertex_regions`, an approximation of classner's painted regions: each SMPL part
maps to one region, the midline parts split left/right at x = 0 of the rest pose, the head also
upper/lower at its vertices' median height, and vertices of the two limb parts meeting at an
elbow, wrist, knee or ankle within a band across the bone at that joint (`JOINT_REGION_BANDS`)
form the joint's region; no `crotch`, which the real data merges into rlbody anyway);
`NNNNN_ann_vis.png` colours it.

upi-s1h (`upi-s1h/lsp/`): for `lsp`-sourced images, `im%04d_segmentation.png` (255 person) and
`im%04d_part_segmentation.png` (0..6, the 6-part grouping of the region map; no 255 unlabelled
pixels), the same size as the UP image (the synthetic world makes the correspondence true).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from body.joint_sets import SMPL_JOINTS, canonical_indices, joint_names
from body.safe_pickle import dumps_legacy_pickle
from datamodules.io import write_bytes, write_image, write_text
from datamodules.synthetic.prior import sample_betas, sample_pose_sequence
from datamodules.synthetic.render import Person, SceneRenderer
from datamodules.up3d import (
    PARTS31_TO_PARTS6,
    REGIONS_31,
    S31_DIR,
    S31_LIST,
    UP3D_DIR,
    UPI_LSP_DIR,
    FitCrop,
    fit_intrinsics,
    s31_crop,
    s31_scale,
)
from geometry.cameras import project_points
from geometry.rasterizer import rasterize
from geometry.render import part_colors

SIZES = {
    "tiny": {"train": 5, "val": 3, "test": 4},
    "ci": {"train": 200, "val": 50, "test": 50},
    "small": {"train": 670, "val": 165, "test": 165},
    "full": {"train": 5703, "val": 1423, "test": 1389},
}
FOCAL = 5000.0
CROP_EVERY = 7  # images 1, 8, 15, ... have a real fit crop
MIN_LSP_TEST = 2
OCCLUDER_PROBABILITY = 0.3
# Source shares: the real test split is 639 / 1389 lsp; train and val hold LSP's 1000 train
# images among 7126.
SOURCE_SHARES = {
    "test": {"lsp": 0.46, "lspext": 0.3, "mpii": 0.18, "fashionpose": 0.06},
    "trainval": {"lsp": 0.14, "lspext": 0.5, "mpii": 0.28, "fashionpose": 0.08},
}
QUALITY_SHARES = {"high": 0.6, "medium": 0.3, "low": 0.1}
LSP_INDICES = {"trainval": (1, 1001), "test": (1001, 2001)}
# Joint regions: the SMPL parts (by driving joint: the bone's start and end joints) that meet
# at elbows, wrists, knees and ankles, and the half-width (metres, rest pose, along the bone)
# of the band around the end joint that forms the region.
JOINT_REGION_BANDS = {
    "elbow": (("shoulder", "elbow"), 0.035),
    "wrist": (("elbow", "wrist"), 0.025),
    "knee": (("hip", "knee"), 0.045),
    "ankle": (("knee", "ankle"), 0.035),
}
# SMPL part (by its driving joint without side) -> region kind (side prefixed when lateral).
_PART_REGIONS = {
    "pelvis": "lbody", "spine1": "lbody", "spine2": "ubody", "spine3": "ubody", "neck": "neck",
    "head": "head", "collar": "shoulder", "shoulder": "uarm", "elbow": "larm", "wrist": "hand",
    "hand": "hand", "hip": "uleg", "knee": "lleg", "ankle": "foot", "foot": "foot",
}  # fmt: skip
_LIGHT_GREY = 0.8
_AMBIENT = 0.3
S31_LIST_PREFIX = "/31/500/pkg_dorder"


@dataclass
class Plan:
    """What one image will be: id, split, source line, quality, sizes (pixels)."""

    up_id: str
    split: str
    source: str
    source_index: int
    quality: str
    image_size: tuple[int, int]  # (H, W)
    crop: FitCrop


@dataclass
class Sample:
    """One generated image and its ground truth (camera frame, metres; pixels)."""

    plan: Plan
    pose: np.ndarray  # (72,) camera-frame axis-angle
    betas: np.ndarray  # (10,)
    transl: np.ndarray  # (3,) camera-frame SMPL translation (= the pkl's `t`)
    K: np.ndarray  # (3, 3) of the image
    K_fit: np.ndarray  # (3, 3) of the fit crop
    image: np.ndarray  # (H, W, 3) uint8
    render_light: np.ndarray  # (H, W, 3) uint8, white background
    regions: np.ndarray  # (H, W) uint8 0..31
    keypoints: np.ndarray  # (14, 3) LSP-14 image pixels and visibility
    j2d: np.ndarray  # (25, 2) fit-crop pixels


# ----------------------------------------------------------------------------------------------
# planning


def plan_world(rng: np.random.Generator, counts: dict[str, int]) -> list[Plan]:
    """Every image of the world in id order: ids shuffled into the splits."""
    total = counts["train"] + counts["val"] + counts["test"]
    order = rng.permutation(total)
    split_of = np.empty(total, dtype=object)
    split_of[order[: counts["train"]]] = "train"
    split_of[order[counts["train"] : counts["train"] + counts["val"]]] = "val"
    split_of[order[counts["train"] + counts["val"] :]] = "test"
    pools = {group: list(rng.permutation(np.arange(*span))) for group, span in LSP_INDICES.items()}
    plans, test_seen = [], 0
    for number in range(total):
        split = str(split_of[number])
        group = "test" if split == "test" else "trainval"
        forced = split == "test" and test_seen < MIN_LSP_TEST
        test_seen += split == "test"
        source, index = _source(rng, group, pools[group], forced)
        image_size = _image_size(rng)
        plans.append(
            Plan(f"{number:05d}", split, source, index, _choice(rng, QUALITY_SHARES), image_size,
                 _fit_crop(rng, image_size, real_crop=number % CROP_EVERY == 1))
        )  # fmt: skip
    return plans


def _choice(rng: np.random.Generator, shares: dict[str, float]) -> str:
    names = list(shares)
    return str(names[rng.choice(len(names), p=np.array(list(shares.values())))])


def _source(rng: np.random.Generator, group: str, lsp_pool: list, forced: bool) -> tuple[str, int]:
    """A `_dataset_info.txt` line: LSP indices are drawn without replacement from the pool."""
    source = "lsp" if forced else _choice(rng, SOURCE_SHARES[group])
    if source == "lsp" and lsp_pool:
        return "lsp", int(lsp_pool.pop())
    if source == "lsp":
        source = "lspext"  # LSP's images are used up (only at the full size)
    high = {"lspext": 10000, "mpii": 24987, "fashionpose": 7305}[source]
    return source, int(rng.integers(1, high + 1))


def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    height = int(rng.integers(150, 301))
    return height, round(height * rng.uniform(0.6, 1.0))


def _fit_crop(rng: np.random.Generator, image_size: tuple[int, int], real_crop: bool) -> FitCrop:
    """The whole image (`h w 0 h 0 w`), or a region of 60..85 % fitted at 1 / (0.6..1.5)."""
    height, width = image_size
    if not real_crop:
        return FitCrop(height, width, 0, height, 0, width)
    region_h = round(height * rng.uniform(0.6, 0.85))
    region_w = round(width * rng.uniform(0.6, 0.85))
    y0 = int(rng.integers(0, height - region_h + 1))
    x0 = int(rng.integers(0, width - region_w + 1))
    scale = rng.uniform(0.6, 1.5)
    h, w = round(region_h / scale), round(region_w / scale)
    return FitCrop(h, w, y0, y0 + region_h, x0, x0 + region_w)


# ----------------------------------------------------------------------------------------------
# rendering


def vertex_regions(renderer: SceneRenderer) -> np.ndarray:
    """(V,) int64 up-s31 region id (1..31) of every vertex (module docstring)."""
    parts = renderer.vertex_parts.numpy()
    rest, joints = renderer.rest_vertices, renderer.rest_joints
    head = parts == SMPL_JOINTS.index("head")
    upper_head = rest[:, 1] > np.median(rest[head, 1])
    names = [
        _region_name(SMPL_JOINTS[part], bool(rest[vertex, 0] > 0), bool(upper_head[vertex]))
        for vertex, part in enumerate(parts)
    ]
    regions = np.array([REGIONS_31.index(name) + 1 for name in names])
    for region, ((start, end), half_width) in JOINT_REGION_BANDS.items():
        for side in ("left", "right"):
            limb = [SMPL_JOINTS.index(f"{side}_{start}"), SMPL_JOINTS.index(f"{side}_{end}")]
            axis = joints[limb[1]] - joints[limb[0]]
            along = (rest - joints[limb[1]]) @ (axis / np.linalg.norm(axis))
            band = (np.abs(along) < half_width) & np.isin(parts, limb)
            regions[band] = REGIONS_31.index(side[0] + region) + 1
    return regions


def _region_name(joint: str, left_half: bool, upper_head: bool) -> str:
    """Region of a vertex of the part driven by SMPL joint `joint` (left half: rest x > 0)."""
    side, _, base = (
        joint.partition("_") if joint.startswith(("left_", "right_")) else ("", "", joint)
    )
    prefix = side[:1] or ("l" if left_half else "r")
    kind = _PART_REGIONS[base]
    if kind == "neck":
        return "neck"
    if kind == "head":
        return prefix + ("u" if upper_head else "l") + "head"
    return prefix + kind


def _place(renderer: SceneRenderer, person: Person, crop: FitCrop, rng: np.random.Generator):
    """Set `person.transl` so the body fills 70..90 % of the fit crop's height, near its centre."""
    vertices = renderer.pose(person).vertices[0].astype(np.float64)  # transl zero
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    extent, middle = high - low, (high + low) / 2
    fill = rng.uniform(0.7, 0.9)
    depth = FOCAL * max(extent[1] / (fill * crop.h), extent[0] / (0.9 * crop.w))
    offset = np.array([rng.uniform(-0.04, 0.04) * crop.w, rng.uniform(-0.03, 0.03) * crop.h])
    centre = offset / FOCAL * depth  # camera x, y of the body's middle
    person.transl = np.array([[centre[0] - middle[0], centre[1] - middle[1], depth - middle[2]]])


def render_sample(
    renderer: SceneRenderer, regions_of_vertex: torch.Tensor, plan: Plan, rng: np.random.Generator
) -> Sample:
    """Render one planned image and everything the files hold."""
    pose = sample_pose_sequence(rng, 1, still=True)
    person = Person(pose, sample_betas(rng), np.zeros((1, 3)), "neutral",
                    renderer.random_colors(rng))  # fmt: skip
    _place(renderer, person, plan.crop, rng)
    K_fit = fit_intrinsics(np.array([FOCAL, FOCAL]), plan.crop)
    K = plan.crop.image_from_fit() @ K_fit
    occluders = int(rng.uniform() < OCCLUDER_PROBABILITY)
    frames = renderer.render([person], K, plan.image_size, rng, occluders=occluders)
    vertices = torch.as_tensor(frames.posed[0].vertices)
    light, regions = _fit_renders(renderer, vertices, K, plan.image_size, regions_of_vertex)
    return Sample(
        plan=plan, pose=pose[0], betas=person.betas, transl=person.transl[0], K=K, K_fit=K_fit,
        image=frames.images[0], render_light=light, regions=regions,
        keypoints=_lsp_keypoints(frames.keypoints2d(0, K)[0], plan.image_size),
        j2d=_j2d(frames.posed[0].joints[0], frames.posed[0].keypoints[0], K_fit),
    )  # fmt: skip


def _fit_renders(
    renderer: SceneRenderer,
    vertices: torch.Tensor,
    K: np.ndarray,
    image_size: tuple[int, int],
    regions_of_vertex: torch.Tensor,
) -> tuple[np.ndarray, np.ndarray]:
    """`_render_light.png` (H, W, 3) uint8 and the region map (H, W) uint8 0..31, from one
    rasterization: flat Lambertian grey lit from the camera (ambient 0.3) on white 255; a
    face takes the region of its first vertex (as `geometry.render_part_labels`)."""
    faces = renderer.faces
    Ks = torch.as_tensor(K, dtype=torch.float32)[None]
    face = rasterize(vertices, faces, Ks, image_size).face_index[0]  # (H, W), -1 background
    covered = face >= 0
    corners = vertices[0][faces]  # (F, 3, 3)
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    facing = (-torch.nn.functional.normalize(normals, dim=-1)[:, 2]).clamp(min=0.0)  # light +z
    shade = (_AMBIENT + (1.0 - _AMBIENT) * facing)[face.clamp(min=0)]
    grey = torch.where(covered, _LIGHT_GREY * 255.0 * shade, torch.tensor(255.0)).round()
    regions = torch.where(covered, regions_of_vertex[faces[:, 0]][face.clamp(min=0)], 0)
    light = grey[..., None].expand(-1, -1, 3).numpy().astype(np.uint8)
    return light, regions.numpy().astype(np.uint8)


def _lsp_keypoints(canonical_uv: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(14, 3) LSP-14 pixels of canonical (K, 2) projections; visibility 1 inside the image."""
    uv = canonical_uv[canonical_indices("lsp_14")]
    height, width = image_size
    inside = (uv[:, 0] >= -0.5) & (uv[:, 0] <= width - 0.5)
    inside &= (uv[:, 1] >= -0.5) & (uv[:, 1] <= height - 0.5)
    return np.concatenate([uv, inside[:, None].astype(np.float64)], axis=1)


def _j2d(smpl_joints: np.ndarray, keypoints: np.ndarray, K_fit: np.ndarray) -> np.ndarray:
    """(25, 2) the 24 SMPL joints and the LSP head top projected with the fit camera."""
    head_top = keypoints[canonical_indices("lsp_14")[joint_names("lsp_14").index("lsp_head_top")]]
    points = torch.as_tensor(np.concatenate([smpl_joints, head_top[None]]))
    return project_points(points, torch.as_tensor(K_fit)).numpy()


def generate(
    renderer: SceneRenderer, rng: np.random.Generator, counts: dict[str, int]
) -> Iterator[Sample]:
    """Every sample of the world in id order (what `write` writes, for the same rng)."""
    regions_of_vertex = torch.as_tensor(vertex_regions(renderer))
    for plan in plan_world(rng, counts):
        yield render_sample(renderer, regions_of_vertex, plan, rng)


# ----------------------------------------------------------------------------------------------
# writing


def write(
    dataset_dir: Path,
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object],
) -> dict[str, int]:
    """Write the world (module docstring); returns the number of images of every split."""
    dataset_dir = Path(dataset_dir)
    splits: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    s31_lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for sample in generate(renderer, rng, counts):
        write_up3d_files(dataset_dir / UP3D_DIR, sample)
        s31_lines[sample.plan.split].append(write_s31_files(dataset_dir / S31_DIR, sample))
        if sample.plan.source == "lsp":
            write_upi_files(dataset_dir / UPI_LSP_DIR, sample)
        splits[sample.plan.split].append(sample)
        progress(1)
    _write_lists(dataset_dir, splits, s31_lines)
    written = {split: len(samples) for split, samples in splits.items()}
    written["trainval"] = written["train"] + written["val"]
    written["lsp_test"] = sum(s.plan.source == "lsp" for s in splits["test"])
    written.update({f"s31_{split}": len(lines) for split, lines in s31_lines.items()})
    return written


def write_up3d_files(folder: Path, sample: Sample) -> None:
    """The seven `up-3d/NNNNN_*` files of one sample."""
    plan = sample.plan
    stem = folder / plan.up_id
    write_image(Path(f"{stem}_image.png"), sample.image)
    body = {
        "pose": sample.pose.astype(np.float64), "betas": sample.betas.astype(np.float64),
        "trans": np.zeros(3), "rt": np.zeros(3), "t": sample.transl.astype(np.float64),
        "f": FOCAL, "j2d": sample.j2d.astype(np.float64),
    }  # fmt: skip
    write_bytes(Path(f"{stem}_body.pkl"), dumps_legacy_pickle(body))
    write_bytes(Path(f"{stem}_joints.npy"), _npy_bytes(sample.keypoints.T.astype(np.float64)))
    write_text(Path(f"{stem}_fit_crop_info.txt"), " ".join(map(str, plan.crop.as_list())) + "\n")
    write_text(Path(f"{stem}_dataset_info.txt"), f"{plan.source} {plan.source_index}\n")
    write_text(Path(f"{stem}_quality_info.txt"), f"{plan.quality}\n")
    write_image(Path(f"{stem}_render_light.png"), sample.render_light)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def s31_view(sample: Sample) -> tuple[np.ndarray, np.ndarray, float]:
    """(image, region map, scale) of the sample as up-s31 stores it (module docstring)."""
    scale = s31_scale(sample.keypoints.T)
    scale = 1.0 if scale is None else float(f"{scale:f}")  # the list's 6 decimals
    height, width = sample.plan.image_size
    size = (int(width * scale), int(height * scale))  # PIL (W, H), floor as scipy's imresize
    image = np.asarray(Image.fromarray(sample.image).resize(size, Image.Resampling.BILINEAR))
    regions = np.asarray(Image.fromarray(sample.regions).resize(size, Image.Resampling.NEAREST))
    visible = sample.keypoints[:, 2] == 1
    if visible.any():
        centre = sample.keypoints[visible, :2].mean(axis=0) * scale
    else:
        centre = np.array(size) / 2.0
    y0, y1, x0, x1 = s31_crop((size[1], size[0]), centre)
    return image[y0:y1, x0:x1], regions[y0:y1, x0:x1], scale


def write_s31_files(folder: Path, sample: Sample) -> str:
    """`NNNNN_image.png`, `_ann.png`, `_ann_vis.png`; returns the sample's list line."""
    image, regions, scale = s31_view(sample)
    stem = sample.plan.up_id
    write_image(folder / f"{stem}_image.png", image)
    write_image(folder / f"{stem}_ann.png", regions)
    palette = (part_colors(torch.arange(len(REGIONS_31) + 1), len(REGIONS_31) + 1) * 255).numpy()
    palette[0] = 0.0
    write_image(folder / f"{stem}_ann_vis.png", palette[regions].round().astype(np.uint8))
    return f"{S31_LIST_PREFIX}/{stem}_image.png {S31_LIST_PREFIX}/{stem}_ann.png {scale:f}"


def write_upi_files(folder: Path, sample: Sample) -> None:
    """upi-s1h's LSP silhouette (255 person) and 6-part map of an `lsp`-sourced sample."""
    stem = folder / f"im{sample.plan.source_index:04d}"
    write_image(Path(f"{stem}_segmentation.png"), ((sample.regions > 0) * 255).astype(np.uint8))
    write_image(Path(f"{stem}_part_segmentation.png"), PARTS31_TO_PARTS6[sample.regions])


def _write_lists(
    dataset_dir: Path, splits: dict[str, list[Sample]], s31_lines: dict[str, list[str]]
) -> None:
    """`up-3d/{split}.txt` and `up-s31/s31/{split}_31_500_pkg_dorder.txt`, trainval last."""
    up_lines = {
        split: [f"/{s.plan.up_id}_image.png" for s in samples] for split, samples in splits.items()
    }
    up_lines["trainval"] = up_lines["train"] + up_lines["val"]
    s31 = {**s31_lines, "trainval": s31_lines["train"] + s31_lines["val"]}
    for split in ("train", "val", "test", "trainval"):
        write_text(
            dataset_dir / UP3D_DIR / f"{split}.txt", "".join(f"{x}\n" for x in up_lines[split])
        )
        write_text(
            dataset_dir / S31_DIR / S31_LIST.format(split), "".join(f"{x}\n" for x in s31[split])
        )
