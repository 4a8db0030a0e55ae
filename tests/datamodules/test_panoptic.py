"""CMU Panoptic: the real calibration, skeleton frames and HD frame of ../shared/samples, bad
input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from body.joint_sets import canonical_indices, joint_names
from datamodules.io import DataError, MissingDataError
from datamodules.panoptic import PanopticReader
from tests.conftest import SHARED_SAMPLES

SAMPLES = SHARED_SAMPLES / "panoptic"
SEQUENCE = "160906_band1"
HD_FRAME = SAMPLES / "160422_hd_frame" / "00_03" / "00_03_00004500.jpg"
PANOPTIC_19 = canonical_indices("panoptic_19")


def _need_samples() -> None:
    if not (SAMPLES / SEQUENCE).is_dir():
        pytest.skip(f"real Panoptic samples not found under {SAMPLES}")


def _layout(tmp_path: Path, cameras=("00_16",), frames=(168, 169)) -> Path:
    """The band1 sample with the HD frame copied in as each camera's image of each frame."""
    root = tmp_path / "data"
    sequence = root / "panoptic" / SEQUENCE
    shutil.copytree(SAMPLES / SEQUENCE, sequence)
    for camera in cameras:
        (sequence / "hdImgs" / camera).mkdir(parents=True)
        for frame in frames:
            shutil.copy(HD_FRAME, sequence / "hdImgs" / camera / f"{camera}_{frame:08d}.jpg")
    return root


def _camera(name: str) -> dict:
    calibration = json.loads((SAMPLES / SEQUENCE / f"calibration_{SEQUENCE}.json").read_text())
    return next(c for c in calibration["cameras"] if c["name"] == name)


def _bodies(frame: int) -> list[dict]:
    path = SAMPLES / SEQUENCE / "hdPose3d_stage1_coco19" / f"body3DScene_{frame:08d}.json"
    return json.loads(path.read_text())["bodies"]


def test_projection_of_named_joints_matches_cv2(tmp_path):
    """Frame 168 through camera 00_16: the reader's 2D joints equal cv2.projectPoints of the
    world joints with the camera's K, R, t / 100 and distCoef, to 0.01 px."""
    _need_samples()
    reader = PanopticReader(_layout(tmp_path), "all")
    index = [(i.camera, i.frame) for i in reader.items].index(("00_16", 168))
    record = reader.record(index)
    camera = _camera("00_16")
    K, dist = np.asarray(camera["K"], float), np.asarray(camera["distCoef"], float)
    R, t = np.asarray(camera["R"], float), np.asarray(camera["t"], float).reshape(3)
    rvec, _ = cv2.Rodrigues(R)
    names = joint_names("panoptic_19")
    for body, person in zip(_bodies(168), record.people, strict=True):
        assert person.track_id == body["id"]
        world = np.asarray(body["joints19"], float).reshape(19, 4)
        for name in ("neck", "left_wrist"):
            j = names.index(name)
            expected, _ = cv2.projectPoints(world[j : j + 1, :3] / 100.0, rvec, t / 100.0, K, dist)
            got = person.keypoints2d[PANOPTIC_19[j], :2]
            np.testing.assert_allclose(got, expected.reshape(2), atol=0.01)
        camera_frame = (world[:, :3] @ R.T + t) / 100.0
        np.testing.assert_allclose(person.keypoints3d[PANOPTIC_19, :3], camera_frame, atol=1e-9)
        np.testing.assert_array_equal(person.keypoints3d[PANOPTIC_19, 3], world[:, 3] > 0.1)


def test_records_frames_cameras_and_image(tmp_path):
    _need_samples()
    reader = PanopticReader(_layout(tmp_path, cameras=("00_16", "00_30")), "all")
    assert [(i.camera, i.frame) for i in reader.items] == [
        ("00_16", 168), ("00_16", 169), ("00_30", 168), ("00_30", 169)
    ]  # fmt: skip
    record = reader.record(0)
    assert record.image is not None and record.image.shape == (1080, 1920, 3)
    assert record.image_size == (1080, 1920) and record.flags["has_camera"]
    assert len(record.people) == 3 and reader.num_people(0) == 3
    np.testing.assert_allclose(record.K, _camera("00_16")["K"])
    np.testing.assert_allclose(record.meta["distortion"], _camera("00_16")["distCoef"])
    for person in record.people:
        assert person.flags["has_keypoints3d"] and not person.flags["has_smpl"]
        confident = person.keypoints2d[:, 2] > 0
        assert (person.box[:2] <= person.keypoints2d[confident, :2].min(axis=0)).all()
        assert (person.box[2:] >= person.keypoints2d[confident, :2].max(axis=0)).all()
    assert reader.check() == []


def test_zanfir_split_uses_the_user_frame_list(tmp_path):
    """The protocol's sequences are absent from the sample, so the split is built on a copy
    named after one of them; a user list replaces the default every-10th-frame rule."""
    _need_samples()
    root = tmp_path / "data"
    source = _layout(tmp_path / "a", cameras=("00_16", "00_30"), frames=(160, 168, 169, 170))
    sequence = root / "panoptic" / "160422_haggling1"
    shutil.copytree(source / "panoptic" / SEQUENCE, sequence)
    (sequence / f"calibration_{SEQUENCE}.json").rename(
        sequence / "calibration_160422_haggling1.json"
    )
    skeletons = sequence / "hdPose3d_stage1_coco19"
    for frame in (160, 170):
        shutil.copy(
            skeletons / "body3DScene_00000168.json", skeletons / f"body3DScene_{frame:08d}.json"
        )
    reader = PanopticReader(root, "zanfir")
    assert [(i.camera, i.frame, i.frame_list) for i in reader.items] == [
        ("00_16", 160, "default"), ("00_16", 170, "default"),
        ("00_30", 160, "default"), ("00_30", 170, "default"),
    ]  # fmt: skip
    assert any("160422_ultimatum1" in p for p in reader.check())  # real root: reported
    lists = root / "panoptic" / "zanfir_frames"
    lists.mkdir()
    (lists / "160422_haggling1.txt").write_text("169\n168\n999\n")
    reader = PanopticReader(root, "zanfir")
    assert [(i.camera, i.frame) for i in reader.items] == [
        ("00_16", 169), ("00_16", 168), ("00_30", 169), ("00_30", 168)
    ]  # fmt: skip
    assert reader.items[0].frame_list == "160422_haggling1.txt"


def test_outliers_and_unconfident_bodies_are_dropped(tmp_path):
    _need_samples()
    root = _layout(tmp_path)
    path = root / "panoptic" / SEQUENCE / "hdPose3d_stage1_coco19" / "body3DScene_00000168.json"
    data = json.loads(path.read_text())
    data["bodies"][0]["id"] = -1
    joints = np.asarray(data["bodies"][1]["joints19"], float).reshape(19, 4)
    joints[:, 3] = 0.05
    data["bodies"][1]["joints19"] = joints.reshape(-1).tolist()
    path.write_text(json.dumps(data))
    reader = PanopticReader(root, "all")
    record = reader.record(0)
    assert [p.track_id for p in record.people] == [data["bodies"][2]["id"]]
    assert reader.dropped_people == 2


def test_missing_and_corrupt_files_are_named(tmp_path):
    _need_samples()
    with pytest.raises(MissingDataError, match="panoptic"):
        PanopticReader(tmp_path, "all")
    root = _layout(tmp_path)
    sequence = root / "panoptic" / SEQUENCE
    skeleton = sequence / "hdPose3d_stage1_coco19" / "body3DScene_00000169.json"
    skeleton.write_text('{"bodies": [{"id": 0, "joints19": [1, 2, 3]}]}')
    reader = PanopticReader(root, "all")
    with pytest.raises(DataError, match=r"body3DScene_00000169\.json \(body id 0\).*joints19"):
        reader.record(1)
    assert any("body3DScene_00000169.json" in p for p in reader.check())
    calibration = sequence / f"calibration_{SEQUENCE}.json"
    calibration.write_text("{ not json")
    with pytest.raises(DataError, match=r"calibration_160906_band1\.json: cannot read JSON"):
        PanopticReader(root, "all")


def test_hd_frame_sample_loads_with_its_cameras(tmp_path):
    """The 160422 HD frame and its calibration (the toolbox's format under another file name),
    laid out as a sequence: the image has its camera's resolution."""
    _need_samples()
    source = SAMPLES / "160422_hd_frame"
    sequence = tmp_path / "panoptic" / "160422_demo"
    (sequence / "hdImgs").mkdir(parents=True)
    shutil.copytree(source / "00_03", sequence / "hdImgs" / "00_03")
    shutil.copy(source / "camera_parameters.json", sequence / "calibration_160422_demo.json")
    (sequence / "hdPose3d_stage1_coco19").mkdir()
    body = {"id": 0, "joints19": [0.0, -150.0, 0.0, 1.0] * 19}
    (sequence / "hdPose3d_stage1_coco19" / "body3DScene_00004500.json").write_text(
        json.dumps({"version": 0.7, "univTime": 0.0, "fpsType": "hd_29_97", "bodies": [body]})
    )
    reader = PanopticReader(tmp_path, "all")
    assert [(i.camera, i.frame) for i in reader.items] == [("00_03", 4500)]
    record = reader.record(0)
    assert record.image.shape[:2] == record.image_size == (1080, 1920)
    assert len(reader.cameras["160422_demo"]) == 31


# ---------------------------------------------------------------------------------------------
# The synthetic world


@pytest.fixture(scope="module")
def world(tiny_world) -> Path:
    return tiny_world("panoptic")


@pytest.fixture(scope="module")
def truth(body_models_root) -> dict:
    from datamodules.synthetic import panoptic as writer
    from datamodules.synthetic.render import SceneRenderer
    from datamodules.synthetic.world import DATASET_INDEX

    rng = np.random.default_rng([0, DATASET_INDEX["panoptic"]])
    sequences = writer.generate(SceneRenderer(body_models_root), rng, writer.SIZES["tiny"])
    return {s.name: s for s in sequences}


def test_round_trip(world, truth):
    """3D joints to 1e-5 m; the distorted 2D joints land on their person in the distorted
    image (so image and projection share one lens model); hidden joints fail the threshold."""
    on_person, visible = 0, 0
    for split in ("all", "zanfir"):
        reader = PanopticReader(world, split)
        assert reader.check() == [] and len(reader) == 4
        for index in range(len(reader)):
            record = reader.record(index)
            sequence = truth[record.meta["sequence"]]
            t = sequence.frames.index(record.meta["frame"])
            camera = next(c for c in sequence.cameras if c.name == record.meta["camera"])
            np.testing.assert_allclose(record.K, camera.K)
            instance = sequence.instance_maps[camera.name][t]
            assert np.abs(record.image.astype(int) - sequence.images[camera.name][t]).mean() < 5
            assert [p.track_id for p in record.people] == list(range(len(sequence.joints)))
            for k, person in enumerate(record.people):
                expected = sequence.joints[k, t] @ camera.R.T + camera.t
                np.testing.assert_allclose(person.keypoints3d[PANOPTIC_19, :3], expected, atol=1e-5)
                confident = sequence.confidence[k, t] > 0.1
                np.testing.assert_array_equal(person.keypoints3d[PANOPTIC_19, 3], confident)
                uv = np.rint(person.keypoints2d[PANOPTIC_19, :2]).astype(int)
                for (u, v), ok in zip(uv, confident, strict=True):
                    if ok and 3 <= u < 1917 and 3 <= v < 1077:
                        visible += 1
                        on_person += bool((instance[v - 3 : v + 4, u - 3 : u + 4] == k + 1).any())
    assert on_person / visible > 0.9, (on_person, visible)
    assert any((s.confidence < 0.1).any() for s in truth.values())
