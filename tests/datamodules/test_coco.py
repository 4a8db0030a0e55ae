"""COCO person keypoints with EFT fits: the real sample annotations and images, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from body.joint_sets import canonical_indices
from datamodules.base import ReaderOptions
from datamodules.coco import COCOReader, EFTFit, crop_camera_to_full, default_intrinsics
from datamodules.crops import CropParams, crop_from_scene
from datamodules.io import DataError, MissingDataError
from geometry.rotations import axis_angle_to_matrix
from tests.conftest import SHARED_SAMPLES

SAMPLES = SHARED_SAMPLES / "coco"
SAMPLE_JSON = SAMPLES / "annotations" / "mmpose_test_coco.json"
COCO_17 = canonical_indices("coco_17")


def _need_samples() -> None:
    if not SAMPLE_JSON.is_file():
        pytest.skip(f"real COCO samples not found under {SAMPLES}")


def _layout(tmp_path: Path, split: str = "val2017", annotations: dict | None = None) -> Path:
    """The real sample in COCO's naming: coco/annotations/person_keypoints_<split>.json."""
    root = tmp_path / "data"
    (root / "coco" / "annotations").mkdir(parents=True)
    data = annotations if annotations is not None else json.loads(SAMPLE_JSON.read_text())
    path = root / "coco" / "annotations" / f"person_keypoints_{split}.json"
    path.write_text(json.dumps(data))
    shutil.copytree(SAMPLES / "val2017", root / "coco" / split)
    return root


def _options(tmp_path: Path) -> ReaderOptions:
    return ReaderOptions(cache_root=tmp_path / "cache")


def _coco_api():
    from pycocotools.coco import COCO

    return COCO(str(SAMPLE_JSON))


def test_real_sample_people_keypoints_and_boxes(tmp_path):
    _need_samples()
    reader = COCOReader(_layout(tmp_path), "val2017", _options(tmp_path))
    annotations = json.loads(SAMPLE_JSON.read_text())["annotations"]
    # 14 person annotations on 4 images; 2 have no labelled keypoint and are dropped.
    assert len(reader) == 4 and reader.dropped_people == 2 and reader.dropped_images == 0
    assert [reader.num_people(i) for i in range(4)] == [1, 2, 4, 5]
    by_id = {a["id"]: a for a in annotations}
    for index in range(len(reader)):
        record = reader.record(index, load_image=False)
        assert not record.flags["has_camera"] and record.image is None
        width, height = record.image_size[1], record.image_size[0]
        np.testing.assert_allclose(record.K, default_intrinsics(width, height))
        for person, annotation_id in zip(record.people, record.meta["annotation_ids"], strict=True):
            annotation = by_id[annotation_id]
            native = np.asarray(annotation["keypoints"], float).reshape(17, 3)
            kp = person.keypoints2d[COCO_17]
            assert int(kp[:, 2].sum()) == annotation["num_keypoints"] > 0
            labelled = native[:, 2] > 0
            np.testing.assert_array_equal(kp[labelled, :2], native[labelled, :2])  # no shift
            x, y, w, h = annotation["bbox"]
            np.testing.assert_allclose(person.box, [x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5])
            assert not person.flags["has_keypoints3d"] and not person.flags["has_smpl"]
            assert person.pose is None and person.gender == -1


def test_real_sample_masks_instance_map_and_ignore(tmp_path):
    """Each person's mask area equals pycocotools' annToMask sum; the instance map's union is
    the union of those masks; overlaps (463 px on image 197388) go to the smaller mask; the
    dropped people's masks are the ignore mask."""
    _need_samples()
    coco = _coco_api()
    reader = COCOReader(_layout(tmp_path), "val2017", _options(tmp_path))
    overlaps = {}
    for index in range(len(reader)):
        record = reader.record(index)
        assert record.image is not None and record.image.shape[:2] == record.image_size
        masks = [coco.annToMask(coco.anns[a]).astype(bool) for a in record.meta["annotation_ids"]]
        assert record.meta["mask_areas"] == [int(m.sum()) for m in masks]
        np.testing.assert_array_equal(record.mask, np.any(masks, axis=0))
        np.testing.assert_array_equal(record.instance_map > 0, np.any(masks, axis=0))
        covered = np.sum(masks, axis=0)
        overlaps[record.meta["image_id"]] = int((covered > 1).sum())
        for y, x in zip(*np.nonzero(covered > 1), strict=True):
            owners = [k for k, m in enumerate(masks) if m[y, x]]
            smallest = min(owners, key=lambda k: masks[k].sum())
            assert record.instance_map[y, x] == smallest + 1
        single = covered == 1
        for k, m in enumerate(masks):
            assert (record.instance_map[m & single] == k + 1).all()
        dropped = [a for a in coco.getAnnIds(imgIds=record.meta["image_id"])
                   if coco.anns[a]["num_keypoints"] == 0]  # fmt: skip
        expected = np.zeros(record.image_size, bool)
        for a in dropped:
            expected |= coco.annToMask(coco.anns[a]).astype(bool)
        np.testing.assert_array_equal(record.ignore_mask, expected)
    assert overlaps[197388] == 463
    assert sum(overlaps.values()) == 463


def test_crowd_regions_are_ignored_and_never_people(tmp_path):
    _need_samples()
    data = json.loads(SAMPLE_JSON.read_text())
    crowd = next(a for a in data["annotations"] if a["image_id"] == 785)
    from pycocotools import mask as mask_utils

    image = next(i for i in data["images"] if i["id"] == 785)
    rle = mask_utils.frPyObjects(crowd["segmentation"], image["height"], image["width"])
    rle = mask_utils.merge(rle)
    data["annotations"].append(
        {**crowd, "id": 1, "iscrowd": 1, "segmentation": {"counts": rle["counts"].decode(),
                                                          "size": rle["size"]}}
    )  # fmt: skip
    reader = COCOReader(_layout(tmp_path, annotations=data), "val2017", _options(tmp_path))
    record = reader.record(0)
    assert record.meta["image_id"] == 785 and len(record.people) == 1
    assert record.ignore_mask.sum() == mask_utils.decode(rle).sum() > 0


def _eft_file(path: Path, fits: dict[int, dict]) -> None:
    data = [{"annotId": annotation_id, "imageName": "x.jpg", "smpltype": "smpl", **fit}
            for annotation_id, fit in fits.items()]  # fmt: skip
    data.append({"imageName": "mpii.jpg", "parm_pose": []})  # another dataset: no annotId
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ver": 1, "data": data}))


def _random_fit(rng: np.random.Generator, annotation: dict) -> dict:
    pose = torch.as_tensor(rng.normal(0, 0.3, (24, 3)))
    x, y, w, h = annotation["bbox"]
    return {
        "parm_pose": axis_angle_to_matrix(pose).numpy().tolist(),
        "parm_shape": rng.normal(0, 1, 10).tolist(),
        "parm_cam": [0.9, 0.05, 0.1],
        "bbox_center": [x + w / 2, y + h / 2],
        "bbox_scale": max(w, h) * 1.2 / 200,
    }


def test_eft_fits_attach_to_their_annotations_and_reach_crops(tmp_path, body_models):
    _need_samples()
    data = json.loads(SAMPLE_JSON.read_text())
    rng = np.random.default_rng(0)
    labelled = [a for a in data["annotations"] if a["num_keypoints"] > 0]
    fitted = {a["id"]: _random_fit(rng, a) for a in labelled[::2]}
    root = _layout(tmp_path, "train2014", data)
    _eft_file(root / "coco" / "eft" / "COCO2014-All-ver01.json", fitted)
    # A second file repeating one fit: the first file (in name order) wins.
    repeated = next(iter(fitted))
    _eft_file(root / "coco" / "eft" / "COCO2014-Part-ver01.json",
              {repeated: _random_fit(rng, labelled[0])})  # fmt: skip
    options = ReaderOptions(tmp_path / "cache", body_models, allow_mannequin_on_real_data=True)
    everyone = COCOReader(root, "train2014", options)
    eft_only = COCOReader(root, "train2014_eft", options)
    assert everyone.duplicate_fits == 1 and len(everyone.fits) == len(fitted)
    assert sum(eft_only.num_people(i) for i in range(len(eft_only))) == len(fitted)
    for index in range(len(eft_only)):
        record = eft_only.record(index)
        for k, (person, annotation_id) in enumerate(
            zip(record.people, record.meta["annotation_ids"], strict=True)
        ):
            fit = fitted[annotation_id]
            assert person.flags["has_smpl"]
            rotations = axis_angle_to_matrix(torch.as_tensor(person.pose).reshape(24, 3))
            np.testing.assert_allclose(rotations.numpy(), fit["parm_pose"], atol=1e-9)
            np.testing.assert_allclose(person.betas, fit["parm_shape"])
            _check_placement(person, fit, record.K, body_models)
            root_joint = body_models.rest_root_joint(person.betas, -1)
            crop = crop_from_scene(record, k, 224, CropParams(), root_joint=root_joint)
            assert crop.flags["has_smpl"]
            np.testing.assert_allclose(crop.pose, person.pose, atol=1e-9)
            np.testing.assert_allclose(crop.betas, fit["parm_shape"])
    # The cache holds the parsed fits: a second reader does not parse the JSON again.
    assert (tmp_path / "cache" / "coco_eft").is_dir()


def _check_placement(person, fit: dict, K: np.ndarray, body_models) -> None:
    """Under the record's K the body's origin lands where EFT's crop camera puts it, and the
    joints near it: only the perspective differs (a focal length of sqrt(W^2 + H^2) against
    5000 px per 224 px of crop; measured up to 8% of the crop side for these random poses)."""
    eft = EFTFit(np.zeros(72), np.zeros(10), np.asarray(fit["parm_cam"]),
                 np.asarray(fit["bbox_center"]), fit["bbox_scale"])  # fmt: skip
    np.testing.assert_allclose(person.transl, crop_camera_to_full(eft, K))
    s, tx, ty = fit["parm_cam"]
    side = 200 * fit["bbox_scale"]
    focal_crop = 5000 * side / 224  # SPIN's crop focal length in original-image pixels
    centre = np.asarray(fit["bbox_center"]) - 0.5
    crop_transl = np.array([tx, ty, 2 * focal_crop / (s * side)])
    joints = body_models.keypoints(person.pose, person.betas, np.zeros(3), -1)[0, :24]

    def project(points, focal, c):
        return focal * points[:, :2] / points[:, 2:] + c

    full = project(joints + person.transl, K[0, 0], K[:2, 2])
    crop = project(joints + crop_transl, focal_crop, centre)
    origin = project(person.transl[None], K[0, 0], K[:2, 2])[0]
    np.testing.assert_allclose(origin, project(crop_transl[None], focal_crop, centre)[0])
    assert np.abs(full - crop).max() < 0.1 * side


def test_missing_and_corrupt_files(tmp_path):
    _need_samples()
    with pytest.raises(MissingDataError, match="coco"):
        COCOReader(tmp_path, "val2017")
    root = _layout(tmp_path)
    with pytest.raises(MissingDataError, match=r"person_keypoints_train2017\.json"):
        COCOReader(root, "train2017")
    with pytest.raises(ValueError, match="unknown split"):
        COCOReader(root, "test2017")
    annotation_file = root / "coco" / "annotations" / "person_keypoints_val2017.json"
    annotation_file.write_text('{"images": [')
    with pytest.raises(DataError, match=r"person_keypoints_val2017\.json: cannot read JSON"):
        COCOReader(root, "val2017")


def test_bad_annotations_name_the_annotation(tmp_path):
    _need_samples()
    data = json.loads(SAMPLE_JSON.read_text())
    data["annotations"][3]["keypoints"] = data["annotations"][3]["keypoints"][:-3]
    bad_id = data["annotations"][3]["id"]
    with pytest.raises(DataError, match=f"annotation id {bad_id}.*'keypoints' has 48 numbers"):
        COCOReader(_layout(tmp_path / "a", annotations=data), "val2017")
    data = json.loads(SAMPLE_JSON.read_text())
    data["annotations"][0]["segmentation"] = "garbage"
    reader = COCOReader(_layout(tmp_path / "b", annotations=data), "val2017")
    with pytest.raises(DataError, match=f"annotation id {data['annotations'][0]['id']}.*segm"):
        reader.record(0)


def test_missing_image_is_named_and_reported_by_check(tmp_path):
    _need_samples()
    root = _layout(tmp_path)
    (root / "coco" / "val2017" / "000000040083.jpg").unlink()
    reader = COCOReader(root, "val2017", _options(tmp_path))
    assert reader.record(1, load_image=False).people  # annotations need no pixels
    with pytest.raises(MissingDataError, match=r"000000040083\.jpg"):
        reader.record(1)
    problems = reader.check()
    assert len(problems) == 1 and "000000040083.jpg" in problems[0]


def test_bad_eft_file_names_file_sample_and_field(tmp_path):
    _need_samples()
    data = json.loads(SAMPLE_JSON.read_text())
    annotation = data["annotations"][0]
    fit = _random_fit(np.random.default_rng(1), annotation)
    del fit["parm_cam"]
    root = _layout(tmp_path, annotations=data)
    _eft_file(root / "coco" / "eft" / "fits.json", {annotation["id"]: fit})
    with pytest.raises(DataError, match=r"fits.json \(sample 0.*'parm_cam' missing"):
        COCOReader(root, "val2017", _options(tmp_path))


def test_scene_samples_of_real_images_pad_people(tmp_path):
    from datamodules.scenes import collate_scenes, scene_sample

    _need_samples()
    reader = COCOReader(_layout(tmp_path), "val2017", _options(tmp_path))
    records = [reader.record(i) for i in (0, 3)]  # 1 and 5 people
    samples = [scene_sample(r, (512, 832)) for r in records]
    for record, sample in zip(records, samples, strict=True):
        scale = sample["meta"]["scale"]
        assert sample["image"].shape == (3, 512, 832)
        kp = sample["keypoints2d"][0]
        source = torch.as_tensor(record.people[0].keypoints2d)
        labelled = source[:, 2] > 0
        expected = (source[labelled, :2] + 0.5) * scale - 0.5
        torch.testing.assert_close(kp[labelled, :2], expected.float(), atol=1e-3, rtol=0)
        assert set(sample["instance_map"].unique().tolist()) <= set(range(len(record.people) + 1))
    batch = collate_scenes(samples)
    assert batch["person_valid"].tolist() == [[True] + [False] * 4, [True] * 5]
    assert batch["ignore_mask"].shape == (2, 512, 832)
