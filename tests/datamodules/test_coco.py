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
from datamodules.coco import COCOReader, crop_camera_view, default_intrinsics
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
    placement = []
    for index in range(len(eft_only)):
        record = eft_only.record(index)
        for k, (person, annotation_id) in enumerate(
            zip(record.people, record.meta["annotation_ids"], strict=True)
        ):
            fit = fitted[annotation_id]
            assert person.flags["has_smpl"]
            parsed = everyone.fits[annotation_id].pose  # EFT's own, crop-camera frame
            rotations = axis_angle_to_matrix(torch.as_tensor(parsed).reshape(24, 3))
            np.testing.assert_allclose(rotations.numpy(), fit["parm_pose"], atol=1e-9)
            np.testing.assert_allclose(person.pose[3:], parsed[3:])  # only the root turns
            np.testing.assert_allclose(person.betas, fit["parm_shape"])
            person.K = record.K
            placement.append(_check_placement(person, everyone.fits[annotation_id], body_models))
            root_joint = body_models.rest_root_joint(person.betas, -1)
            crop = crop_from_scene(record, k, 224, CropParams(), root_joint=root_joint)
            assert crop.flags["has_smpl"]
            np.testing.assert_allclose(crop.pose, person.pose, atol=1e-9)
            np.testing.assert_allclose(crop.betas, fit["parm_shape"])
    # Random poses and the image-diagonal focal length: measured up to 4.5% of the crop side
    # (8% without turning the root by the ray alignment).
    assert max(placement) < 0.06, placement
    # The cache holds the parsed fits: a second reader does not parse the JSON again.
    import datamodules.coco as coco_module

    def no_parse(path):
        raise AssertionError(f"{path} parsed again instead of read from the cache")

    original, coco_module.parse_eft_json = coco_module.parse_eft_json, no_parse
    try:
        assert COCOReader(root, "train2014", options).fits.keys() == everyone.fits.keys()
    finally:
        coco_module.parse_eft_json = original


def _check_placement(person, fit, body_models) -> float:
    """Max distance (px) between the joints under the record's K and under EFT's crop camera,
    as a fraction of the crop side: only the perspective of the other focal length differs."""
    seen, K_crop = crop_camera_view(person, fit)
    joints = [body_models.keypoints(p.pose, p.betas, p.transl, -1)[0, :24] for p in (person, seen)]

    def project(points, K):
        uv = points @ K.T
        return uv[:, :2] / uv[:, 2:]

    full, crop = project(joints[0], person.K), project(joints[1], K_crop)
    return float(np.abs(full - crop).max() / (200 * fit.bbox_scale))


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


# ---------------------------------------------------------------------------------------------
# The synthetic world


@pytest.fixture(scope="module")
def world(tiny_world) -> Path:
    return tiny_world("coco")


@pytest.fixture(scope="module")
def truth(body_models_root) -> dict:
    from datamodules.synthetic import coco as writer
    from datamodules.synthetic.render import SceneRenderer
    from datamodules.synthetic.world import DATASET_INDEX

    renderer = SceneRenderer(body_models_root)
    rng = np.random.default_rng([0, DATASET_INDEX["coco"]])
    samples = writer.generate(renderer, rng, writer.SIZES["tiny"])
    return {(s.split, s.image_id): s for s in samples}


def _kept(sample) -> list:
    return [p for p in sample.people
            if not p.annotation["iscrowd"] and p.annotation["num_keypoints"] > 0]  # fmt: skip


def test_round_trip(world, truth, body_models, body_models_root, tmp_path):
    """Records equal what the renderer drew: people, instance map and ignore regions exactly,
    keypoints within rounding, EFT SMPL exactly (the world renders with the default K)."""
    from datamodules.synthetic.render import Person, SceneRenderer

    renderer = SceneRenderer(body_models_root)
    options = ReaderOptions(tmp_path / "cache", body_models)
    seen = set()
    for split in ("train2014", "val2017"):
        reader = COCOReader(world, split, options)
        assert reader.check() == []
        for index in range(len(reader)):
            record = reader.record(index)
            sample = truth[split, record.meta["image_id"]]
            seen.add((split, sample.image_id))
            kept = _kept(sample)
            assert record.meta["annotation_ids"] == [p.annotation["id"] for p in kept]
            expected = np.zeros(record.image_size, np.uint8)
            for k, person in enumerate(kept):
                expected[sample.instance_map == person.render_index] = k + 1
            np.testing.assert_array_equal(record.instance_map, expected)
            others = [p.render_index for p in sample.people if p not in kept]
            np.testing.assert_array_equal(record.ignore_mask, np.isin(sample.instance_map, others))
            np.testing.assert_allclose(record.K, sample.K)
            assert np.abs(record.image.astype(int) - sample.image).mean() < 5  # JPEG
            for person, truth_person in zip(record.people, kept, strict=True):
                body = Person(truth_person.pose[None], truth_person.betas,
                              truth_person.transl[None], "neutral", None)  # fmt: skip
                posed = renderer.pose(body)
                uv = posed.keypoints[0][COCO_17] @ sample.K.T
                uv = uv[:, :2] / uv[:, 2:]
                labelled = person.keypoints2d[COCO_17, 2] > 0
                assert labelled.any()
                error = np.abs(person.keypoints2d[COCO_17][labelled, :2] - uv[labelled])
                assert error.max() <= 0.5 + 1e-4  # rounded to pixel indices
                if split == "train2014" and labelled.sum() >= 6:
                    assert person.flags["has_smpl"]
                    rotations = axis_angle_to_matrix(torch.as_tensor(person.pose).reshape(24, 3))
                    truth_rotations = axis_angle_to_matrix(
                        torch.as_tensor(truth_person.pose).reshape(24, 3)
                    )
                    torch.testing.assert_close(rotations, truth_rotations, atol=1e-9, rtol=0)
                    np.testing.assert_array_equal(person.betas, truth_person.betas)
                    np.testing.assert_allclose(person.transl, truth_person.transl, atol=1e-9)
                else:
                    assert not person.flags["has_smpl"]
    assert seen == set(truth)


def _overlap(sample) -> bool:
    """Whether two kept people's boxes overlap in the image."""
    boxes = [p.annotation["bbox"] for p in _kept(sample)]

    def meet(a, b) -> bool:
        x_overlap = a[0] < b[0] + b[2] and b[0] < a[0] + a[2]
        return x_overlap and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]

    return any(meet(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_world_exercises_the_format(world, truth):
    """Polygons and RLE, crowds and unlabelled people all occur; people overlap in images."""
    annotations = [p.annotation for s in truth.values() for p in s.people]
    people = [a for a in annotations if not a["iscrowd"]]
    assert {type(a["segmentation"]).__name__ for a in people} == {"list", "dict"}  # polygon, RLE
    assert any(a["num_keypoints"] == 0 for a in people)  # a mask without keypoints
    assert any(a["iscrowd"] and isinstance(a["segmentation"]["counts"], str) for a in annotations)
    assert any(len(_kept(s)) >= 2 and _overlap(s) for s in truth.values())
    files = sorted((world / "coco" / "annotations").iterdir())
    assert [f.name for f in files] == ["person_keypoints_train2014.json",
                                       "person_keypoints_val2017.json"]  # fmt: skip
    eft = json.loads((world / "coco" / "eft" / "COCO2014-All-ver01.json").read_text())
    assert eft["data"] and {"parm_pose", "parm_shape", "parm_cam", "annotId"} <= set(eft["data"][0])


def test_eft_part_labels_follow_the_fits(world, truth, body_models, tmp_path):
    """train2014_eft records carry part labels of the fits rendered in their crop cameras,
    painted far to near; they agree with the renderer's labels up to the crop camera's other
    viewpoint and focal length (measured: 84% of the visible pixels covered, 71% same part)."""
    from datamodules.part_labels import render_part_maps

    options = ReaderOptions(tmp_path / "cache", body_models)
    reader = COCOReader(world, "train2014_eft", options)
    covered, agree, total = 0, 0, 0
    for index in range(len(reader)):
        record = reader.record(index)
        assert record.flags["has_part_segm"] and record.part_segm is not None
        expected = np.zeros(record.image_size, np.uint8)
        order = np.argsort([-p.transl[2] for p in record.people])
        for k in order:
            fit = reader.fits[record.meta["annotation_ids"][k]]
            part, _ = render_part_maps(body_models, [crop_camera_view(record.people[k], fit)[0]],
                                       crop_camera_view(record.people[k], fit)[1],
                                       record.image_size)  # fmt: skip
            expected = np.where(part > 0, part, expected)
        np.testing.assert_array_equal(record.part_segm, expected)
        sample = truth["train2014", record.meta["image_id"]]
        visible = np.isin(sample.instance_map, [p.render_index for p in _kept(sample)])
        visible &= sample.part_segm > 0
        covered += int((record.part_segm[visible] > 0).sum())
        agree += int((record.part_segm[visible] == sample.part_segm[visible]).sum())
        total += int(visible.sum())
        again = COCOReader(world, "train2014_eft", options).record(index)  # from the cache
        np.testing.assert_array_equal(again.part_segm, record.part_segm)
    assert covered / total > 0.75 and agree / total > 0.6, (covered / total, agree / total)
    # A record with an unfitted person gets no part labels (its pixels would read background).
    everyone = COCOReader(world, "val2017", options)
    assert not any(everyone.record(i).flags["has_part_segm"] for i in range(len(everyone)))


# COCO index i -> J24 row, datasets.md 3.5 (independent of body.joint_sets).
COCO_TO_J24 = [19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]


def _spin_npz(path: Path, annotation_file: Path, eft_json: Path) -> int:
    """EFT's `exportOursToSpin` on the synthetic JSON fits (datasets.md 3.6): no annotation id,
    no camera; `part` holds the annotation's keypoints in J24. Returns the rows written."""
    data = json.loads(annotation_file.read_text())
    annotations = {a["id"]: a for a in data["annotations"]}
    files = {i["id"]: i["file_name"] for i in data["images"]}
    rows: dict[str, list] = {k: [] for k in ("imgname", "center", "scale", "part", "pose",
                                             "shape", "has_smpl")}  # fmt: skip
    for sample in json.loads(eft_json.read_text())["data"]:
        annotation = annotations[sample["annotId"]]
        part = np.zeros((24, 3))
        keypoints = np.asarray(annotation["keypoints"], float).reshape(17, 3)
        part[COCO_TO_J24] = keypoints
        part[:, 2] = part[:, 2] > 0
        rotations = torch.as_tensor(sample["parm_pose"])
        from geometry.rotations import matrix_to_axis_angle

        rows["imgname"].append(f"train2014/{files[annotation['image_id']]}")
        rows["center"].append(sample["bbox_center"])
        rows["scale"].append(sample["bbox_scale"])
        rows["part"].append(part)
        rows["pose"].append(matrix_to_axis_angle(rotations).reshape(72).numpy())
        rows["shape"].append(sample["parm_shape"])
        rows["has_smpl"].append(1)
    count = len(rows["imgname"])
    np.savez(path, **{k: np.asarray(v) for k, v in rows.items()},
             S=np.zeros((count, 24, 4)), openpose=np.zeros((count, 25, 3)))  # fmt: skip
    return count


def _npz_root(world: Path, tmp_path: Path) -> Path:
    root = tmp_path / "npz"
    shutil.copytree(world / "coco", root / "coco", ignore=shutil.ignore_patterns("*.json"))
    shutil.copytree(world / "coco" / "annotations", root / "coco" / "annotations",
                    dirs_exist_ok=True)  # fmt: skip
    shutil.copy(world / "SYNTHETIC.json", root)  # the world's body model
    return root


def test_spin_npz_fits_match_their_annotations_and_refit_the_camera(world, body_models, tmp_path):
    """A SPIN-style npz of the world's fits: every fit finds its annotation by image and
    keypoints; pose and shape are the fits'. The refitted camera reads the crop with SPIN's
    focal length while the world's keypoints were rendered with the image-diagonal one, so it
    places the joints up to 5.9% of the crop side (measured) from the JSON camera's, about the
    4.5% by which the two perspectives differ (`test_eft_fits_attach_to_...`)."""
    root = _npz_root(world, tmp_path)
    annotation_file = root / "coco" / "annotations" / "person_keypoints_train2014.json"
    eft_json = world / "coco" / "eft" / "COCO2014-All-ver01.json"
    written = _spin_npz(root / "coco" / "eft" / "coco_2014_train_eft.npz", annotation_file,
                        eft_json)  # fmt: skip
    options = ReaderOptions(tmp_path / "cache", body_models)
    with_json = COCOReader(world, "train2014_eft", options)
    with_npz = COCOReader(root, "train2014_eft", options)
    assert with_npz.fits.keys() == with_json.fits.keys() and len(with_npz.fits) == written
    assert with_npz.unmatched_fits == 0 and len(with_npz) == len(with_json)
    placement, scales = [], []
    for index in range(len(with_npz)):
        record, expected = with_npz.record(index), with_json.record(index)
        assert record.meta["annotation_ids"] == expected.meta["annotation_ids"]
        for k, (person, truth) in enumerate(zip(record.people, expected.people, strict=True)):
            annotation_id = record.meta["annotation_ids"][k]
            npz_fit, json_fit = with_npz.fits[annotation_id], with_json.fits[annotation_id]
            assert person.flags["has_smpl"] and ".npz (sample" in npz_fit.source
            np.testing.assert_allclose(person.pose[3:], truth.pose[3:], atol=1e-6)
            np.testing.assert_allclose(person.betas, truth.betas)
            scales.append(abs(npz_fit.cam[0] / json_fit.cam[0] - 1))
            joints = [body_models.keypoints(p.pose, p.betas, p.transl, -1)[0, :24]
                      for p in (person, truth)]  # fmt: skip
            uv = [j @ record.K.T for j in joints]
            uv = [u[:, :2] / u[:, 2:] for u in uv]
            placement.append(np.abs(uv[0] - uv[1]).max() / (200 * json_fit.bbox_scale))
        assert record.flags["has_part_segm"]
    assert max(placement) < 0.08 and max(scales) < 0.1, (max(placement), max(scales))
    assert np.median(placement) < 0.03, placement


def test_camera_refit_is_exact_on_crop_camera_projections(body_models):
    """Keypoints that EFT's crop camera projects (some unlabelled): `refit_camera` returns its
    [s, tx, ty]."""
    from datamodules.coco import EFTFit, crop_camera_view, refit_camera
    from datamodules.records import PersonRecord

    rng = np.random.default_rng(5)
    pose, betas = rng.normal(0, 0.2, 72), rng.normal(0, 1, 10)
    pose[:3] = [np.pi, 0.1, 0.0]  # upright in a camera with y down
    fit = EFTFit(pose, betas, np.array([0.85, 0.04, 0.21]), np.array([410.0, 305.0]), 1.7)
    person = PersonRecord(np.zeros((1, 3)), np.zeros((1, 4)), np.zeros(4), betas=betas)
    seen, K = crop_camera_view(person, fit)
    joints = body_models.keypoints(pose, betas, np.zeros(3), -1)[0, COCO_17]
    uv = (joints + seen.transl) @ K.T
    keypoints = np.column_stack([uv[:, :2] / uv[:, 2:], np.ones(17)])
    keypoints[[0, 3, 9], 2] = 0
    keypoints[[0, 3, 9], :2] += 50.0  # unlabelled: ignored
    refit = EFTFit(pose, betas, None, fit.bbox_center, fit.bbox_scale, keypoints, "test fit")
    np.testing.assert_allclose(refit_camera(refit, joints), fit.cam, atol=1e-9)
    keypoints[2:, 2] = 0
    with pytest.raises(DataError, match="test fit: 1 labelled"):
        refit_camera(EFTFit(pose, betas, None, fit.bbox_center, 1.7, keypoints, "test fit"),
                     joints)  # fmt: skip


def test_spin_npz_unmatched_skipped_duplicates_and_bad_files(world, body_models, tmp_path):
    root = _npz_root(world, tmp_path)
    annotation_file = root / "coco" / "annotations" / "person_keypoints_train2014.json"
    path = root / "coco" / "eft" / "coco_2014_train_eft.npz"
    _spin_npz(path, annotation_file, world / "coco" / "eft" / "COCO2014-All-ver01.json")
    arrays = dict(np.load(path))
    arrays["part"][0, :, :2] += 30.0  # matches no annotation any more
    arrays["has_smpl"][1] = 0
    np.savez(path, **arrays)
    options = ReaderOptions(tmp_path / "cache", body_models)
    reader = COCOReader(root, "train2014", options)
    assert reader.unmatched_fits == 1 and len(reader.fits) == len(arrays["imgname"]) - 2
    # The JSON file beside it wins for every annotation it has.
    shutil.copy(world / "coco" / "eft" / "COCO2014-All-ver01.json", root / "coco" / "eft")
    both = COCOReader(root, "train2014", options)
    assert both.duplicate_fits == len(reader.fits)
    assert all(fit.cam is not None and ".npz" not in fit.source for fit in both.fits.values())
    (root / "coco" / "eft" / "COCO2014-All-ver01.json").unlink()
    for key, value, message in (
        ("shape", None, r"field 'shape' missing"),
        ("imgname", np.array(["train2014/no_id.jpg"] * len(arrays["imgname"])),
         r"\(sample 0\): 'imgname' 'train2014/no_id\.jpg'"),
        ("scale", np.zeros(1), r"field 'scale' has 1 rows"),
    ):  # fmt: skip
        broken = {k: v for k, v in arrays.items() if k != key}
        if value is not None:
            broken[key] = value
        np.savez(path, **broken)
        with pytest.raises(DataError, match=rf"coco_2014_train_eft\.npz.*{message}"):
            COCOReader(root, "train2014", options)
