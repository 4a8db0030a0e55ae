"""COCO person keypoints (datasets.md 3) with EFT pseudo-ground-truth SMPL -> scene records.

Layout (datasets.md 3.1, read untouched):

    coco/annotations/person_keypoints_<split>.json    split = train2014, val2014, train2017,
                                                        val2017 (one file per split)
    coco/<split>/<file_name>                           images
    coco/eft/*.json                                    EFT fits (optional, datasets.md 3.6)

Named splits: `train2014`, `val2014`, `train2017`, `val2017` (the annotation file of that
name), and `train2014_eft`, the people of train2014 that have an EFT fit (the COCO-EFT
training set of EFT and PARE). COCO 2017 re-splits the 2014 images with the same image and
annotation ids, so EFT fits (keyed by annotation id) attach to either year.

Records. One per image of the annotation file with at least one kept person, in image-id order.
- People: the person annotations with `iscrowd` 0 and at least one labelled keypoint, in
  annotation-id order. Annotations without a labelled keypoint (`num_keypoints` 0) carry no
  joint to learn from: they are dropped and counted (`dropped_people`), and their masks join
  the crowd regions in `ignore_mask`, as bottom-up pose codes (HigherHRNet's COCO dataset) do,
  so that no loss calls those pixels background. An image whose people are all dropped is
  left out and counted in `dropped_images`.
- keypoints2d: the 17 COCO keypoints (`coco_17`, datasets.md 3.3) with confidence 1 where
  labelled (v = 1 or 2; SPIN binarises v the same way) and 0 where not (v = 0). COCO keypoint
  coordinates are pixel indices (detectron2 reads them so), which is the suite's convention:
  no shift. The raw visibilities (0, 1, 2) stay in `meta["visibility"]`, one (17,) array per
  person.
- box: COCO's `bbox` [x, y, w, h] is in continuous coordinates with pixel edges on integers;
  the record's box is [x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5] (pixel centres on integers).
  Masks come from pycocotools, whose rasterisation already follows the pixel grid.
- masks: each person's polygon or RLE segmentation decoded by pycocotools (`frPyObjects` +
  `merge`, as `annToMask` does). `instance_map` holds k + 1 for person k; where masks overlap
  the smaller mask wins (COCO has no depth; DESIGN.md's rule). `mask` is the union of the
  people's masks; `ignore_mask` the union of the crowd (`iscrowd` 1) and dropped masks.
- camera: COCO has none. K is a default: focal length sqrt(W^2 + H^2) px (CLIFF's choice for
  images of unknown camera) and the principal point at the image centre; `has_camera` False.
- No 3D keypoints (`has_keypoints3d` False) and no gender (-1).
- SMPL from EFT where a fit matches the annotation (`has_smpl`; needs
  `ReaderOptions.body_models` for the root joint, like every rigid move of SMPL here). EFT's fit
  lives in its crop camera: weak-perspective [s, tx, ty] of a crop of side b = 200 x
  `bbox_scale` px about `bbox_center`, resized to 224, with the global orientation as that
  camera sees it. SPIN's perspective reading of it is a camera of focal 5000 px per 224 crop
  pixels looking straight at the crop centre, with transl (tx, ty, 2 x 5000 / (224 s)).
  `crop_to_full` moves the fit into the record's camera K (focal f): the crop camera is K turned
  to look along the ray through the crop centre (`ray_alignment`), so the body is rotated back
  by that turn (orientation and position, about its root joint: `world_to_camera_smpl`) from
  transl (tx, ty, 2 f / (s b)), the depth at which focal f shows it at the same size. The
  body then projects under K where and as large as the crop camera shows it; only the
  perspective of the different focal length differs (CLIFF's observation that crop-camera
  fits seen in the full image need this turn). pose = the fit's 24 rotation matrices as
  axis-angle with that root, betas its 10 shape coefficients; EFT's own crop camera stays in
  `meta["eft"]` (one dict per person: `cam`, `bbox_center`, `bbox_scale`; None without a fit).
- part labels (`has_part_segm`) when every person of the record has a fit (always in
  `train2014_eft`; a record with unfitted people gets none, since their pixels would read as
  background): each fit rendered as EFT made it, in its own crop camera (`crop_camera_view`),
  painted from the farthest person to the nearest (by the record's transl); cached per image
  like the single-person datasets' (`datamodules.part_labels`, key: the annotation file, the
  EFT files, the body model), and rendered ahead by `python -m experiments prepare coco`.

EFT files. Every `coco/eft/*.json` (`{"ver", "data": [...]}`, each sample with `annotId`,
`parm_pose` (24, 3, 3), `parm_shape` (10,), `parm_cam` (3,), `bbox_center`, `bbox_scale`;
samples without `annotId`, from other datasets, are skipped). Files are read in name order and
the first fit of an annotation wins (`COCO2014-All` before `COCO2014-Part`, which repeats a
subset of it); later ones are counted in `duplicate_fits`. Each file is parsed once into the
cache (step `coco_eft`), since the real ones hold tens of thousands of fits.

SPIN-style EFT npz files (`coco/eft/*.npz`, EFT's `exportOursToSpin`, datasets.md 3.6: `imgname`,
`center`, `scale`, `part` (24, 3) J24 keypoints, `pose` (72,) axis-angle, `shape` (10,),
optional `has_smpl`) are read after every JSON file, so a JSON fit of the same annotation wins.
They carry neither an annotation id nor a camera:
- matching: the image id is the number that ends `imgname` (2014 and 2017 file names both end
  in it); within that image the fit goes to the person annotation whose labelled keypoints lie
  nearest to the fit's `part` rows (J24 -> `coco_17` through `body.joint_sets`), if the mean
  distance over the joints both label is at most `NPZ_MATCH_PX`; fits with `has_smpl` 0 are
  skipped, and unmatched ones are counted in `unmatched_fits`;
- camera: refitted when the person is read (needs `body_models`) from the fit's labelled
  keypoints and its body's `coco_17` keypoints at zero translation, in SPIN's perspective
  reading of the crop (focal 5000 px per 224 crop pixels, `refit_camera`), the model EFT's
  optimisation used. From there the fit follows the JSON path (`crop_to_full`, crop-camera
  part labels). It is a refit, not EFT's own camera (which also used OpenPose points); on
  keypoints the crop camera projects it recovers the camera exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from body.joint_sets import canonical_indices, mapping
from datamodules.base import DatasetReader, register_reader
from datamodules.cache import build_entry, entry_dir, is_complete, source_key
from datamodules.io import DataError, field, load_npz, missing, read_image, read_json, savez
from datamodules.part_labels import cached_maps, render_layered_part_maps
from datamodules.records import (
    GENDER_CODES,
    NUM_CANONICAL,
    PersonRecord,
    SceneRecord,
    canonical_keypoints,
    image_flags,
    person_flags,
)
from geometry.cameras import SPIN_PIXEL_STD, weak_perspective_to_translation, world_to_camera_smpl
from geometry.rotations import matrix_to_axis_angle

YEAR_SPLITS = ("train2014", "val2014", "train2017", "val2017")
EFT_SPLITS = {"train2014_eft": "train2014"}
NUM_KEYPOINTS = 17
PERSON_CATEGORY = 1
EFT_STEP, EFT_CACHE_VERSION = "coco_eft", 1
EFT_CROP, EFT_FOCAL = 224, 5000.0  # SPIN's crop side and its focal length (datasets.md 3.6)
NPZ_MATCH_PX = 2.0
IMAGE_ID_IN_NAME = re.compile(r"(\d+)\.\w+$")
LAYOUT = (
    "coco/annotations/person_keypoints_<split>.json, coco/<split>/<file_name> "
    "(split = train2014 | val2014 | train2017 | val2017), optional EFT fits coco/eft/*.json"
)


@dataclass
class EFTFit:
    """One EFT fit: crop-camera-frame SMPL and EFT's weak-perspective crop camera (None for an
    npz fit until `refit_camera` refits it from `keypoints`)."""

    pose: np.ndarray  # (72,) axis-angle
    betas: np.ndarray  # (10,)
    cam: np.ndarray | None  # (3,) s, tx, ty
    bbox_center: np.ndarray  # (2,) original-image pixels
    bbox_scale: float  # crop side / 200
    keypoints: np.ndarray | None = None  # (17, 3) coco_17 of an npz fit, for the refit
    source: str = ""  # file and sample, for error messages


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """K of an image with unknown camera: focal sqrt(W^2 + H^2), principal point at the
    centre ((W - 1) / 2, (H - 1) / 2 with pixel centres on integers)."""
    focal = float(np.hypot(width, height))
    return np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0, 0, 1.0]])


def ray_alignment(K: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """(3, 3) the smallest rotation R with R d = (0, 0, 1), d the unit ray of K through
    `pixel` (x, y): it turns K's frame into that of a camera looking along d."""
    ray = np.linalg.solve(K, np.array([pixel[0], pixel[1], 1.0]))
    ray /= np.linalg.norm(ray)
    axis = np.cross(ray, [0.0, 0.0, 1.0])
    sin, cos = np.linalg.norm(axis), ray[2]
    if sin < 1e-12:
        return np.eye(3)
    axis /= sin
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + sin * skew + (1 - cos) * skew @ skew


def crop_transl(fit: EFTFit, focal: float) -> np.ndarray:
    """(3,) the fit's transl (tx, ty, 2 f / (s b)) for a crop camera of focal length `focal`
    px (b = the crop side in original pixels): the depth at which it shows the body as EFT's
    weak-perspective camera does."""
    if fit.cam is None:
        raise ValueError(f"{fit.source}: the fit's camera is not refitted yet")
    side = SPIN_PIXEL_STD * fit.bbox_scale
    if fit.cam[0] <= 0 or side <= 0:
        raise DataError(f"{fit.source}: camera scale {fit.cam[0]} and bbox_scale {fit.bbox_scale}")
    cam = torch.as_tensor(np.asarray(fit.cam, np.float64))
    return weak_perspective_to_translation(cam, focal, side).numpy()


def crop_centre(fit: EFTFit) -> np.ndarray:
    """The crop centre in the suite's pixels (COCO's continuous coordinates minus half a pixel)."""
    return np.asarray(fit.bbox_center, np.float64) - 0.5


def refit_camera(fit: EFTFit, joints: np.ndarray) -> np.ndarray:
    """(3,) [s, tx, ty] of EFT's crop camera refitted to the fit's labelled `keypoints` (module
    docstring): SPIN's perspective reading of the crop (focal 5000 px per 224 crop pixels,
    principal point at the crop centre), translation by linear least squares as SPIN's
    `estimate_translation_np` solves it, f tx - u tz = u Z - f X and f ty - v tz = v Z - f Y
    with (u, v) relative to the centre; then s = 2 f / (b tz). `joints` (17, 3) are the body's
    `coco_17` keypoints at zero translation. DataError naming the fit when fewer than two
    keypoints are labelled or the body would lie behind the camera."""
    assert fit.keypoints is not None
    labelled = fit.keypoints[:, 2] > 0
    if labelled.sum() < 2:
        raise DataError(f"{fit.source}: {int(labelled.sum())} labelled keypoints; the camera "
                        "refit needs 2 or more")  # fmt: skip
    side = 200.0 * fit.bbox_scale
    focal = EFT_FOCAL * side / EFT_CROP
    uv = fit.keypoints[labelled, :2] - crop_centre(fit)
    points = joints[labelled]
    count = len(points)
    design = np.zeros((2 * count, 3))
    design[:count, 0], design[count:, 1] = focal, focal
    design[:count, 2], design[count:, 2] = -uv[:, 0], -uv[:, 1]
    target = np.concatenate([uv[:, 0] * points[:, 2] - focal * points[:, 0],
                             uv[:, 1] * points[:, 2] - focal * points[:, 1]])  # fmt: skip
    (tx, ty, tz), *_ = np.linalg.lstsq(design, target, rcond=None)
    if not tz + points[:, 2].min() > 0:
        raise DataError(f"{fit.source}: refitted camera puts the body behind it (tz {tz:.3g})")
    return np.array([2.0 * focal / (side * tz), tx, ty])


def crop_to_full(
    fit: EFTFit, K: np.ndarray, root_joint: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(pose (72,), transl (3,)) of an EFT fit in the camera K (module docstring); `root_joint`
    is J0 of the fit's shaped rest body."""
    rotation, transl = ray_alignment(K, crop_centre(fit)), crop_transl(fit, K[0, 0])
    root, moved = world_to_camera_smpl(
        torch.as_tensor(fit.pose[:3]), torch.as_tensor(transl), torch.as_tensor(root_joint),
        torch.as_tensor(rotation.T), torch.zeros(3, dtype=torch.float64),
    )  # fmt: skip
    pose = fit.pose.copy()
    pose[:3] = root.numpy()
    return pose, moved.numpy()


def crop_camera_view(person: PersonRecord, fit: EFTFit) -> tuple[PersonRecord, np.ndarray]:
    """The fit as EFT's crop camera sees it, in original-image pixels: a copy of the person with
    the fit's own pose and `crop_transl`, and that camera's K (f = 5000 b / 224 px, principal
    point at the crop centre)."""
    focal = EFT_FOCAL * 200.0 * fit.bbox_scale / EFT_CROP
    cx, cy = crop_centre(fit)
    K = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    return dataclasses.replace(person, pose=fit.pose.copy(), transl=crop_transl(fit, focal)), K


def _annotation_error(path: Path, annotation: dict, problem: str) -> DataError:
    return DataError(f"{path} (annotation id {annotation.get('id')}): {problem}")


def annotation_mask(annotation: dict, height: int, width: int, path: Path) -> np.ndarray:
    """(H, W) bool mask of a COCO annotation's polygons or RLE (pycocotools' `annToMask`)."""
    from pycocotools import mask as mask_utils

    segmentation = annotation.get("segmentation")
    counts = segmentation.get("counts") if isinstance(segmentation, dict) else None
    if not (isinstance(segmentation, list) and segmentation) and not isinstance(counts, list | str):
        raise _annotation_error(path, annotation, f"'segmentation' {segmentation!r:.60}")
    try:
        if isinstance(segmentation, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        elif isinstance(counts, list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:  # compressed RLE
            rle = {**dict(segmentation or {}), "counts": str(counts).encode()}
        decoded = mask_utils.decode(rle)
    except (TypeError, ValueError, KeyError, IndexError) as error:
        message = f"cannot decode 'segmentation' ({error})"
        raise _annotation_error(path, annotation, message) from error
    if decoded.shape[:2] != (height, width):
        raise _annotation_error(
            path, annotation, f"mask of {decoded.shape[:2]}, image is {(height, width)}"
        )
    return decoded.astype(bool)


def compose_instances(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 instance map: k + 1 for mask k; where masks overlap the smaller wins."""
    instance = np.zeros(shape, np.uint8)
    order = sorted(range(len(masks)), key=lambda k: -int(masks[k].sum()))  # stable for ties
    for k in order:
        instance[masks[k]] = k + 1
    return instance


@register_reader
class COCOReader(DatasetReader):
    """COCO person keypoints + optional EFT fits (module docstring)."""

    dataset_id = "coco"
    folder = "coco"
    joint_set = "coco_17"
    splits = (*YEAR_SPLITS, *EFT_SPLITS)
    layout = LAYOUT

    def _open(self) -> None:
        self.year_split = EFT_SPLITS.get(self.split, self.split)
        self.annotation_file = (
            self.root / "annotations" / f"person_keypoints_{self.year_split}.json"
        )
        if not self.annotation_file.is_file():
            raise missing(self.annotation_file, f"COCO annotations of {self.year_split}", LAYOUT)
        data = read_json(self.annotation_file)
        self.images = self._index_images(data)
        self._eft_keys: list[str] = []
        self.unmatched_fits = 0
        self.fits, self.duplicate_fits = self._read_fits(data)
        self._index_people(data)

    def _index_images(self, data: dict) -> dict[int, dict]:
        images = {}
        for image in _list_field(data, "images", self.annotation_file):
            for key in ("id", "file_name", "width", "height"):
                if key not in image:
                    raise DataError(f"{self.annotation_file}: an entry of 'images' lacks {key!r}")
            images[int(image["id"])] = image
        return images

    def _index_people(self, data: dict) -> None:
        """Kept and ignored annotations per image; the records (module docstring)."""
        kept: dict[int, list[dict]] = {}
        ignored: dict[int, list[dict]] = {}
        with_people: set[int] = set()
        self.dropped_people = 0
        annotations = _list_field(data, "annotations", self.annotation_file)
        for annotation in sorted(annotations, key=lambda a: int(a.get("id", -1))):
            if int(annotation.get("category_id", PERSON_CATEGORY)) != PERSON_CATEGORY:
                continue
            image_id = int(annotation.get("image_id", -1))
            if image_id not in self.images:
                raise _annotation_error(
                    self.annotation_file, annotation, f"'image_id' {image_id} not in 'images'"
                )
            crowd = bool(annotation.get("iscrowd", 0))
            labelled = bool((self._keypoints(annotation)[:, 2] > 0).any())
            if not crowd:
                with_people.add(image_id)
                self.dropped_people += 0 if labelled else 1
            if crowd or not labelled:
                ignored.setdefault(image_id, []).append(annotation)
            elif self.split not in EFT_SPLITS or int(annotation["id"]) in self.fits:
                kept.setdefault(image_id, []).append(annotation)
        self.dropped_images = len(with_people - set(kept))
        self._image_ids = sorted(kept)
        self._kept, self._ignored = kept, ignored

    def _keypoints(self, annotation: dict) -> np.ndarray:
        values = np.asarray(annotation.get("keypoints", []), dtype=np.float64)
        if values.shape != (NUM_KEYPOINTS * 3,):
            raise _annotation_error(
                self.annotation_file,
                annotation,
                f"'keypoints' has {values.size} numbers, expected {NUM_KEYPOINTS * 3}",
            )
        if not np.isfinite(values).all():
            raise _annotation_error(self.annotation_file, annotation, "'keypoints' holds NaN/inf")
        return values.reshape(NUM_KEYPOINTS, 3)

    def __len__(self) -> int:
        return len(self._image_ids)

    def num_people(self, index: int) -> int:
        self._check_index(index)
        return len(self._kept[self._image_ids[index]])

    def image_path(self, image: dict) -> Path:
        return self.root / self.year_split / str(image["file_name"])

    def record(self, index: int, load_image: bool = True) -> SceneRecord:
        self._check_index(index)
        image_id = self._image_ids[index]
        image = self.images[image_id]
        height, width = int(image["height"]), int(image["width"])
        path = self.image_path(image)
        sample_id = f"coco/{self.year_split}/{image_id}"
        pixels = read_image(path, sample_id) if load_image else None
        if pixels is not None and pixels.shape[:2] != (height, width):
            raise DataError(
                f"{path} (sample {sample_id}): image is {pixels.shape[:2]}, "
                f"{self.annotation_file.name} says {(height, width)}"
            )
        K = default_intrinsics(width, height)
        annotations = self._kept[image_id]
        people = [self._person(a, K) for a in annotations]
        record = SceneRecord(
            dataset=self.dataset_id,
            split=self.split,
            index=index,
            sample_id=sample_id,
            image_path=path,
            image_size=(height, width),
            K=K,
            joint_set=self.joint_set,
            people=people,
            flags=image_flags(has_mask=True, has_instance_map=True),
            image=pixels,
            meta={
                "image_id": image_id,
                "file_name": str(image["file_name"]),
                "annotation_ids": [int(a["id"]) for a in annotations],
                "visibility": [self._keypoints(a)[:, 2].astype(np.int64) for a in annotations],
                "eft": [self._eft_meta(a) for a in annotations],
            },
        )
        if load_image:
            self._add_masks(record, annotations, self._ignored.get(image_id, []))
            self._add_part_maps(record, annotations)
        return record

    def _person(self, annotation: dict, K: np.ndarray) -> PersonRecord:
        keypoints = self._keypoints(annotation)
        keypoints[:, 2] = keypoints[:, 2] > 0
        bbox = np.asarray(annotation.get("bbox", []), dtype=np.float64)
        if bbox.shape != (4,) or not np.isfinite(bbox).all() or (bbox[2:] < 0).any():
            raise _annotation_error(self.annotation_file, annotation, f"'bbox' {bbox.tolist()}")
        fit = self._fit(int(annotation["id"]))
        smpl = {}
        if fit is not None and self.options.body_models is not None:
            root_joint = self.options.body_models.rest_root_joint(
                fit.betas, GENDER_CODES["unknown"]
            )
            pose, transl = crop_to_full(fit, K, root_joint)  # fits were checked when read
            smpl = {"pose": pose, "betas": fit.betas.copy(), "transl": transl}
        return PersonRecord(
            keypoints2d=canonical_keypoints(keypoints, self.joint_set),
            keypoints3d=np.zeros((NUM_CANONICAL, 4)),
            box=np.array([bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]) - 0.5,
            gender=-1,
            flags=person_flags(has_keypoints2d=True, has_smpl=bool(smpl)),
            track_id=int(annotation["id"]),
            **smpl,
        )

    def _fit(self, annotation_id: int) -> EFTFit | None:
        """The annotation's fit, an npz fit's camera refitted once body models are at hand."""
        fit = self.fits.get(annotation_id)
        if fit is None or fit.cam is not None or self.options.body_models is None:
            return fit
        zero = np.zeros(3)
        joints = self.options.body_models.keypoints(fit.pose, fit.betas, zero, -1)[0, COCO_17]
        fit = dataclasses.replace(fit, cam=refit_camera(fit, joints))
        self.fits[annotation_id] = fit
        return fit

    def _eft_meta(self, annotation: dict) -> dict | None:
        fit = self._fit(int(annotation["id"]))
        if fit is None:
            return None
        return {"cam": None if fit.cam is None else fit.cam.copy(), "source": fit.source,
                "bbox_center": fit.bbox_center.copy(), "bbox_scale": fit.bbox_scale}  # fmt: skip

    def _add_masks(self, record: SceneRecord, kept: list[dict], ignored: list[dict]) -> None:
        height, width = record.image_size
        masks = [annotation_mask(a, height, width, self.annotation_file) for a in kept]
        record.instance_map = compose_instances(masks, (height, width))
        record.mask = record.instance_map > 0
        ignore = np.zeros((height, width), bool)
        for annotation in ignored:
            ignore |= annotation_mask(annotation, height, width, self.annotation_file)
        record.ignore_mask = ignore
        record.meta["mask_areas"] = [int(m.sum()) for m in masks]

    def _add_part_maps(self, record: SceneRecord, annotations: list[dict]) -> None:
        """Part labels of the EFT fits in their crop cameras (module docstring)."""
        fits = [fit for a in annotations if (fit := self._fit(int(a["id"]))) is not None]
        models = self.options.body_models
        if models is None or not self.options.render_part_labels or len(fits) < len(annotations):
            return  # (with body models and a fit for everyone, every person has SMPL)
        depths = [float(np.asarray(person.transl)[2]) for person in record.people]
        far_first = sorted(range(len(fits)), key=lambda k: -depths[k])
        layers = [crop_camera_view(record.people[k], fits[k]) for k in far_first]
        ids = ",".join(str(a["id"]) for a in annotations)
        frame_key = f"{record.meta['image_id']}_{hashlib.sha1(ids.encode()).hexdigest()[:12]}"
        size = record.image_size
        part, _ = cached_maps(
            self.cache_root, self.data_root, self.annotation_file, frame_key, models, size,
            lambda: render_layered_part_maps(models, layers, size), eft=self._eft_keys,
        )  # fmt: skip
        record.part_segm = part
        record.flags["has_part_segm"] = True

    # -----------------------------------------------------------------------------------------
    # EFT fits

    def _read_fits(self, data: dict) -> tuple[dict[int, EFTFit], int]:
        """{annotation id: fit} from every file under coco/eft/, JSON before npz (module
        docstring), and the number of repeated fits."""
        folder = self.root / "eft"
        fits: dict[int, EFTFit] = {}
        duplicates = 0
        if not folder.is_dir():
            return fits, duplicates
        files = sorted(folder.iterdir())
        json_files = [p for p in files if p.suffix == ".json"]
        npz_files = [p for p in files if p.suffix == ".npz"]
        candidates = self._npz_candidates(data) if npz_files else {}
        for path in json_files + npz_files:
            self._eft_keys.append(source_key(path, self.data_root))
            if path.suffix == ".json":
                found = self._cached_json_fits(path)
            else:
                found = self._npz_fits(path, candidates)
            for annotation_id, fit in found.items():
                if annotation_id in fits:
                    duplicates += 1
                else:
                    fits[annotation_id] = fit
        return fits, duplicates

    def _npz_candidates(self, data: dict) -> dict[int, list[tuple[int, np.ndarray]]]:
        """image id -> [(annotation id, (17, 3) keypoints, confidence 0/1)] of its people."""
        candidates: dict[int, list[tuple[int, np.ndarray]]] = {}
        for annotation in _list_field(data, "annotations", self.annotation_file):
            if (
                annotation.get("iscrowd", 0)
                or int(annotation.get("category_id", PERSON_CATEGORY)) != PERSON_CATEGORY
            ):
                continue
            keypoints = self._keypoints(annotation)
            keypoints[:, 2] = keypoints[:, 2] > 0
            image_id = int(annotation.get("image_id", -1))
            candidates.setdefault(image_id, []).append((int(annotation["id"]), keypoints))
        return candidates

    def _npz_fits(
        self, path: Path, candidates: dict[int, list[tuple[int, np.ndarray]]]
    ) -> dict[int, EFTFit]:
        """The fits of a SPIN-style npz matched to annotations (module docstring)."""
        arrays = parse_eft_npz(path)
        fits: dict[int, EFTFit] = {}
        for i, (image_id, keypoints) in enumerate(
            zip(arrays["image_id"], arrays["keypoints"], strict=True)
        ):
            if not arrays["has_smpl"][i]:
                continue
            match = match_keypoints(keypoints, candidates.get(int(image_id), []))
            if match is None:
                self.unmatched_fits += 1
                continue
            if match in fits:
                continue  # two fits nearest one person: the first stays
            fits[match] = EFTFit(
                arrays["pose"][i], arrays["shape"][i], None, arrays["center"][i],
                float(arrays["scale"][i]), keypoints, f"{path} (sample {i})",
            )  # fmt: skip
        return fits

    def _cached_json_fits(self, path: Path) -> dict[int, EFTFit]:
        entry = entry_dir(
            self.cache_root, EFT_STEP, EFT_CACHE_VERSION, source_key(path, self.data_root)
        )
        if not is_complete(entry):
            arrays = parse_eft_json(path)
            with build_entry(entry) as tmp:
                savez(tmp / "fits.npz", **arrays)
        with np.load(entry / "fits.npz") as arrays:
            return _fits_from_arrays({k: arrays[k] for k in arrays.files})

    def check(self) -> list[str]:
        problems = super().check()
        for image_id in self._image_ids:
            path = self.image_path(self.images[image_id])
            if not path.is_file():
                problems.append(f"{path}: image file not found")
        return problems


def _list_field(data: dict, key: str, path: Path) -> list[dict]:
    value = data.get(key)
    if not isinstance(value, list):
        raise DataError(f"{path}: field {key!r} missing or not a list (has {sorted(data)})")
    return value


EFT_FIELDS = {"parm_pose": (24, 3, 3), "parm_shape": (10,), "parm_cam": (3,),
              "bbox_center": (2,), "bbox_scale": ()}  # fmt: skip


def parse_eft_json(path: Path) -> dict[str, np.ndarray]:
    """EFT JSON -> arrays annot_id (N,), pose (N, 72) axis-angle, betas (N, 10), cam (N, 3),
    bbox_center (N, 2), bbox_scale (N,); samples without `annotId` are skipped."""
    samples = [s for s in _list_field(read_json(path), "data", path) if "annotId" in s]
    fields = {key: np.zeros((len(samples), *shape)) for key, shape in EFT_FIELDS.items()}
    for i, sample in enumerate(samples):
        for key, shape in EFT_FIELDS.items():
            where = f"{path} (sample {i}, annotId {sample['annotId']}): field {key!r}"
            if key not in sample:
                raise DataError(f"{where} missing")
            try:
                value = np.asarray(sample[key], np.float64)
            except (TypeError, ValueError) as error:
                raise DataError(f"{where} is not numeric ({error})") from error
            if value.size != int(np.prod(shape)) or not np.isfinite(value).all():
                raise DataError(f"{where} must be {shape or 'a number'} finite values")
            fields[key][i] = value.reshape(shape)
        if fields["parm_cam"][i, 0] <= 0 or fields["bbox_scale"][i] <= 0:
            raise DataError(
                f"{path} (sample {i}, annotId {sample['annotId']}): 'parm_cam' scale and "
                "'bbox_scale' must be positive"
            )
    pose = matrix_to_axis_angle(torch.as_tensor(fields["parm_pose"])).reshape(-1, 72)
    return {
        "annot_id": np.array([int(s["annotId"]) for s in samples], dtype=np.int64),
        "pose": pose.numpy(),
        "betas": fields["parm_shape"],
        "cam": fields["parm_cam"],
        "bbox_center": fields["bbox_center"],
        "bbox_scale": fields["bbox_scale"],
    }


NPZ_FIELDS = {"center": (None, 2), "scale": (None,), "part": (None, 24, 3), "pose": (None, 72),
              "shape": (None, 10)}  # fmt: skip
COCO_17 = canonical_indices("coco_17")
J24_TO_COCO = mapping("spin_24", "coco_17")[0]  # J24 row of each COCO keypoint


def parse_eft_npz(path: Path) -> dict[str, np.ndarray]:
    """SPIN-style EFT npz -> arrays image_id (N,), keypoints (N, 17, 3) `coco_17` with
    confidence 0/1, center (N, 2), scale (N,), pose (N, 72), shape (N, 10), has_smpl (N,) bool;
    DataError naming the file and field."""
    data = load_npz(path)
    arrays = {key: field(data, key, path, shape).astype(np.float64)
              for key, shape in NPZ_FIELDS.items()}  # fmt: skip
    names = field(data, "imgname", path, (None,))
    count = len(names)
    for key, value in arrays.items():
        if len(value) != count:
            raise DataError(f"{path}: field {key!r} has {len(value)} rows, 'imgname' {count}")
    if (arrays["scale"] <= 0).any():
        raise DataError(f"{path}: field 'scale' must be positive (row "
                        f"{int(np.argmax(arrays['scale'] <= 0))})")  # fmt: skip
    image_ids = np.zeros(count, np.int64)
    for i, name in enumerate(names):
        found = IMAGE_ID_IN_NAME.search(str(name))
        if found is None:
            raise DataError(f"{path} (sample {i}): 'imgname' {str(name)!r} does not end in an "
                            "image id")  # fmt: skip
        image_ids[i] = int(found.group(1))
    has_smpl = field(data, "has_smpl", path, (count,)) if "has_smpl" in data else np.ones(count)
    keypoints = arrays["part"][:, J24_TO_COCO].copy()
    keypoints[..., 2] = keypoints[..., 2] > 0
    return {"image_id": image_ids, "keypoints": keypoints, "center": arrays["center"],
            "scale": arrays["scale"], "pose": arrays["pose"], "shape": arrays["shape"],
            "has_smpl": np.asarray(has_smpl).reshape(count) > 0}  # fmt: skip


def match_keypoints(keypoints: np.ndarray, candidates: list[tuple[int, np.ndarray]]) -> int | None:
    """The id of the candidate whose labelled (17, 3) keypoints are nearest `keypoints` (mean
    over the joints both label), if within `NPZ_MATCH_PX`; else None."""
    best, best_distance = None, NPZ_MATCH_PX
    for annotation_id, theirs in candidates:
        both = (keypoints[:, 2] > 0) & (theirs[:, 2] > 0)
        if not both.any():
            continue
        distance = float(np.linalg.norm(keypoints[both, :2] - theirs[both, :2], axis=1).mean())
        if distance <= best_distance:
            best, best_distance = annotation_id, distance
    return best


def _fits_from_arrays(arrays: dict[str, np.ndarray]) -> dict[int, EFTFit]:
    fits = {}
    for i, annotation_id in enumerate(arrays["annot_id"]):
        if int(annotation_id) not in fits:
            fits[int(annotation_id)] = EFTFit(
                arrays["pose"][i], arrays["betas"][i], arrays["cam"][i],
                arrays["bbox_center"][i], float(arrays["bbox_scale"][i]),
                source=f"EFT fit of annotation {int(annotation_id)}",
            )  # fmt: skip
    return fits
