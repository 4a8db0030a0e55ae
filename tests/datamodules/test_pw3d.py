"""3DPW: the synthetic writer's files against datasets.md 4.2 and the official readme, the
reader's round trip against the renderer, the named splits, and bad input."""

from __future__ import annotations

import itertools
import json
import pickle
import pickletools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from body.joint_sets import canonical_indices
from body.safe_pickle import UnsafePickleError, dumps_legacy_pickle
from datamodules.base import SYNTHETIC_FILE, BodyModelMismatch, ReaderOptions
from datamodules.io import DataError, MissingDataError, read_pickle, write_bytes
from datamodules.pw3d import (
    OCC_SEQUENCES,
    PC_RANGES,
    REAL_SEQUENCES,
    PW3DReader,
    is_occ_sequence,
)
from datamodules.records import native_keypoints
from datamodules.synthetic.pw3d import SIZES, generate
from datamodules.synthetic.render import SceneRenderer
from datamodules.synthetic.world import DATASET_INDEX
from geometry.cameras import project_points
from tests.conftest import SHARED_SAMPLES

README = SHARED_SAMPLES / "pw3d" / "3DPW_official_readme.txt"
REAL_FRAME = SHARED_SAMPLES / "pw3d/imageFiles/courtyard_rangeOfMotions_00/image_00311.jpg"
# the readme's key names -> the real files' (datasets.md 4.2)
README_QUIRKS = {"gender": "genders", "poses2D": "poses2d"}
SPLITS = PW3DReader.splits


@pytest.fixture(scope="module")
def world(tiny_world) -> Path:
    return tiny_world("pw3d")


@pytest.fixture(scope="module")
def sequence_files(world) -> dict[str, dict]:
    """sequence name -> the loaded pickle, for every sequence file of the tiny world."""
    paths = sorted((world / "3dpw" / "sequenceFiles").glob("*/*.pkl"))
    return {path.stem: read_pickle(path) for path in paths}


@pytest.fixture(scope="module")
def readers(world, body_models, tmp_path_factory) -> dict[str, PW3DReader]:
    """One reader per named split of the tiny world (reader construction hashes the body model)."""
    options = ReaderOptions(tmp_path_factory.mktemp("pw3d_cache"), body_models)
    return {split: PW3DReader(world, split, options) for split in SPLITS}


@pytest.fixture(scope="module")
def split_pairs(readers) -> dict[str, list[tuple[str, int, int]]]:
    return {split: pairs(split_reader) for split, split_reader in readers.items()}


def pairs(split_reader: PW3DReader) -> list[tuple[str, int, int]]:
    """(sequence, frame, actor) of every person of every record, in record order."""
    return [
        (r.meta["sequence"], r.meta["frame"], actor)
        for r in (split_reader.record(i, load_image=False) for i in range(len(split_reader)))
        for actor in r.meta["actors"]
    ]


def copy_world(world: Path, tmp_path: Path) -> Path:
    root = tmp_path / "world"
    shutil.copytree(world, root, ignore=shutil.ignore_patterns(".cache"))
    return root


# ----------------------------------------------------------------------------------------------
# the written files


def test_every_readme_key_is_in_the_synthetic_files_under_the_real_names(sequence_files):
    if not README.is_file():
        pytest.skip(f"shared samples absent: {README}")
    keys = re.findall(r"^- (\w+):", README.read_text(), flags=re.MULTILINE)
    assert len(keys) == 16 and "poses2D" in keys and "gender" in keys
    for name, data in sequence_files.items():
        for key in keys:
            assert README_QUIRKS.get(key, key) in data, (name, key)
        assert not set(README_QUIRKS) & set(data), "the real files use `genders` and `poses2d`"


def test_sequence_files_have_the_documented_types_and_shapes(sequence_files, world):
    assert set(sequence_files) == {
        "courtyard_backpack_00", "courtyard_arguing_00", "courtyard_dancing_00",
        "downtown_walking_00", "downtown_stairs_00",
    }  # fmt: skip
    for name, data in sequence_files.items():
        folder = next(f for f, names in REAL_SEQUENCES.items() if name in names)
        assert (world / "3dpw" / "sequenceFiles" / folder / f"{name}.pkl").is_file()
        actors, frames = REAL_SEQUENCES[folder][name][0], len(data["cam_poses"])
        assert data["sequence"] == name and data["texture_maps"] == []
        assert all(g in ("m", "f") for g in data["genders"]) and len(data["genders"]) == actors
        per_actor = {"betas": (10,), "betas_clothed": (10,), "poses": (frames, 72),
                     "trans": (frames, 3), "poses_60Hz": (2 * frames, 72),
                     "trans_60Hz": (2 * frames, 3), "jointPositions": (frames, 72),
                     "poses2d": (frames, 3, 18), "campose_valid": (frames,)}  # fmt: skip
        for key, shape in per_actor.items():
            assert isinstance(data[key], list) and len(data[key]) == actors, key
            assert all(a.shape == shape for a in data[key]), key
        assert all(a.dtype == np.float64 for a in data["poses"] + data["betas"])
        assert all(a.dtype == np.uint8 for a in data["campose_valid"])
        assert data["v_template_clothed"][0].shape[1] == 3
        ids = data["img_frame_ids"]
        assert ids.dtype == np.uint16 and np.array_equal(ids, 2 * np.arange(frames))
        for poses, poses_60 in zip(data["poses"], data["poses_60Hz"], strict=True):
            np.testing.assert_allclose(poses_60[ids], poses, atol=1e-12)
        cam_poses, K = data["cam_poses"], data["cam_intrinsics"]
        assert cam_poses.shape == (frames, 4, 4) and K.shape == (3, 3)
        np.testing.assert_allclose(cam_poses[:, 3], np.tile([0, 0, 0, 1.0], (frames, 1)))
        rotations = cam_poses[:, :3, :3]
        np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1),
                                   np.tile(np.eye(3), (frames, 1, 1)), atol=1e-12)  # fmt: skip
        assert len(list((world / "3dpw" / "imageFiles" / name).glob("*.jpg"))) == frames


def test_sequence_files_are_legacy_protocol_2_pickles(world):
    # Python 3 writes an array's raw bytes at protocol 2 as `_codecs.encode(text, 'latin1')`,
    # which Python 2 loads too (it wrote them as byte strings); everything else is numpy's
    # legacy names, never numpy 2's `numpy._core`.
    allowed = {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype",
               "_codecs encode"}  # fmt: skip
    for path in sorted((world / "3dpw" / "sequenceFiles").glob("*/*.pkl")):
        data = path.read_bytes()
        ops = list(pickletools.genops(data))
        assert ops[0][0].name == "PROTO" and ops[0][1] == 2
        names = {str(arg) for op, arg, _ in ops if op.name == "GLOBAL"}
        assert names <= allowed, names - allowed
        assert "numpy.core.multiarray _reconstruct" in names
        assert read_pickle(path)["sequence"] == path.stem  # the restricted unpickler
        with open(path, "rb") as handle:  # and what the 3DPW demo does
            assert pickle.load(handle, encoding="latin1")["sequence"] == path.stem


def test_detections_and_validity_exercise_the_split_filters(sequence_files):
    for name, data in sequence_files.items():
        undetected = [np.abs(p).sum(axis=(1, 2)) == 0 for p in data["poses2d"]]
        assert all(u.any() for u in undetected), name  # a missed detection for every actor
        for poses2d in data["poses2d"]:
            detected = np.abs(poses2d).sum(axis=(1, 2)) > 0
            assert ((poses2d[detected, 2] > 0).sum(axis=1) >= 6).all(), name
    arguing = sequence_files["courtyard_arguing_00"]["campose_valid"]
    assert arguing[0][0] == 1 and arguing[1][0] == 0  # an actor excluded, the frame kept
    dancing = np.stack(sequence_files["courtyard_dancing_00"]["campose_valid"])
    assert (dancing.sum(axis=0) == 0).any()  # frames without any valid actor


# ----------------------------------------------------------------------------------------------
# round trip


@pytest.fixture(scope="module")
def generated(body_models_root) -> dict:
    """The writer's ground truth of the tiny world's train sequences (re-generated with the
    world's rng: the train sequences come first)."""
    renderer = SceneRenderer(body_models_root)
    rng = np.random.default_rng([0, DATASET_INDEX["pw3d"]])
    sequences = itertools.islice(generate(renderer, rng, SIZES["tiny"]), 2)
    return {sequence.name: sequence for sequence in sequences}


def test_round_trip_matches_what_the_renderer_drew(readers, generated):
    train = readers["train"]
    assert len(train) == sum(len(s.images) for s in generated.values())
    compared_maps = 0
    for index in range(len(train)):
        record = train.record(index)
        truth = generated[record.meta["sequence"]]
        frame = record.meta["frame"]
        np.testing.assert_array_equal(record.K, truth.data["cam_intrinsics"])
        assert record.image is not None and record.image.shape == truth.images[frame].shape
        assert np.abs(record.image.astype(float) - truth.images[frame]).mean() < 6  # JPEG
        valid = [
            a for a in range(len(truth.camera_people)) if truth.data["campose_valid"][a][frame]
        ]
        assert [p.track_id for p in record.people] == valid == record.meta["actors"]
        for person in record.people:
            check_person(person, truth, frame, record.K)
        if len(valid) == len(truth.camera_people):
            np.testing.assert_array_equal(record.part_segm, truth.part_segm[frame])
            np.testing.assert_array_equal(record.instance_map, truth.instance_map[frame])
            np.testing.assert_array_equal(record.mask, truth.instance_map[frame] > 0)
            compared_maps += 1
    assert compared_maps >= 4


def check_person(person, truth, frame: int, K: np.ndarray) -> None:
    actor = person.track_id
    drawn = truth.camera_people[actor]
    np.testing.assert_allclose(person.pose, drawn.pose[frame], atol=1e-5)
    np.testing.assert_array_equal(person.betas, truth.data["betas"][actor])
    np.testing.assert_allclose(person.transl, drawn.transl[frame], atol=1e-5)
    assert person.gender == {"m": 1, "f": 2}[truth.data["genders"][actor]]
    joints = truth.camera_joints[actor, frame]
    keypoints3d = native_keypoints(person.keypoints3d, "smpl_24")
    np.testing.assert_allclose(keypoints3d[:, :3], joints, atol=1e-5)
    assert (keypoints3d[:, 3] == 1).all()
    pixels = project_points(torch.as_tensor(joints), torch.as_tensor(K)).numpy()
    np.testing.assert_allclose(native_keypoints(person.keypoints2d, "smpl_24")[:, :2], pixels,
                               atol=1e-3)  # fmt: skip
    assert all(person.flags[f] for f in ("has_keypoints2d", "has_keypoints3d", "has_smpl",
                                         "has_gender"))  # fmt: skip


def test_records_are_consistent_with_their_camera_and_body_model(readers, body_models):
    people: dict[int, list] = {}
    for split_reader in readers.values():
        for index in range(len(split_reader)):
            record = split_reader.record(index, load_image=False)
            assert record.flags["has_camera"] and record.image_size == (96, 54)
            for person in record.people:
                check_projection(person, record.K)
                people.setdefault(person.gender, []).append(person)
    for gender, group in people.items():  # the camera-frame SMPL gives the camera-frame joints
        posed = body_models.keypoints(np.stack([p.pose for p in group]),
                                      np.stack([p.betas for p in group]),
                                      np.stack([p.transl for p in group]), gender)  # fmt: skip
        joints = np.stack([native_keypoints(p.keypoints3d, "smpl_24")[:, :3] for p in group])
        np.testing.assert_allclose(posed[:, canonical_indices("smpl_24")], joints, atol=1e-4)


def check_projection(person, K: np.ndarray) -> None:
    """keypoints3d projected with K land on keypoints2d; the box holds them."""
    kp3d, kp2d = person.keypoints3d, person.keypoints2d
    both = (kp3d[:, 3] > 0) & (kp2d[:, 2] > 0)
    assert both.sum() == 24
    pixels = project_points(torch.as_tensor(kp3d[both, :3]), torch.as_tensor(K)).numpy()
    np.testing.assert_allclose(pixels, kp2d[both, :2], atol=1e-6)
    x0, y0, x1, y1 = person.box
    assert x0 < kp2d[both, 0].min() and kp2d[both, 0].max() < x1
    assert y0 < kp2d[both, 1].min() and kp2d[both, 1].max() < y1


def test_poses2d_stay_in_meta_and_out_of_the_keypoints(readers, sequence_files):
    record = readers["test"].record(0, load_image=False)
    data = sequence_files[record.meta["sequence"]]
    for person, poses2d in zip(record.people, record.meta["poses2d"], strict=True):
        stored = data["poses2d"][person.track_id][record.meta["frame"]]
        np.testing.assert_array_equal(poses2d, stored.T)
        assert poses2d.shape == (18, 3)
        assert (person.keypoints2d[:, 2] > 0).sum() == 24  # only the SMPL joints


# ----------------------------------------------------------------------------------------------
# splits


def test_every_split_is_non_empty_and_counted_in_synthetic_json(world, readers):
    counts = json.loads((world / SYNTHETIC_FILE).read_text())["counts"]["pw3d"]
    for split in SPLITS:
        assert len(readers[split]) == counts[split] > 0, split
    assert PW3DReader.present_splits(world) == list(SPLITS)


def test_records_are_ordered_by_sequence_then_frame(split_pairs):
    for split in SPLITS:
        keys = [(s, f) for s, f, _ in split_pairs[split]]
        assert keys == sorted(keys), split


def test_invalid_camera_poses_exclude_actors_and_frames(split_pairs, sequence_files):
    for split in SPLITS:
        for sequence, frame, actor in split_pairs[split]:
            assert sequence_files[sequence]["campose_valid"][actor][frame] == 1
    train = split_pairs["train"]
    assert ("courtyard_arguing_00", 0, 0) in train and ("courtyard_arguing_00", 0, 1) not in train
    validation = {f for _, f, _ in split_pairs["validation"]}
    dancing = np.stack(sequence_files["courtyard_dancing_00"]["campose_valid"])
    assert validation == set(np.flatnonzero(dancing.any(axis=0)).tolist())


def test_test_spin_is_the_test_split(split_pairs):
    assert split_pairs["test_spin"] == split_pairs["test"]


def test_challenge_drops_undetected_actors(split_pairs, sequence_files):
    test, challenge = split_pairs["test"], split_pairs["challenge"]
    undetected = {
        (s, f, a) for s, f, a in test if not np.abs(sequence_files[s]["poses2d"][a][f]).any()
    }
    assert undetected and set(challenge) == set(test) - undetected
    assert [p for p in test if p not in undetected] == challenge


def test_occ_takes_the_occlusion_sequences_of_every_folder(split_pairs):
    occ = split_pairs["occ"]
    assert {s for s, _, _ in occ} == {"courtyard_backpack_00", "downtown_stairs_00"}
    expected = [
        p
        for split in ("train", "validation", "test")
        for p in split_pairs[split]
        if is_occ_sequence(p[0])
    ]
    assert sorted(occ) == sorted(expected)
    assert is_occ_sequence("outdoors_parcours_01") and not is_occ_sequence("courtyard_dancing_00")
    assert len(OCC_SEQUENCES) == 17


def test_pc_ranges_are_intersected_on_synthetic_roots(readers, split_pairs, sequence_files):
    pc = readers["pc"]
    start, end = PC_RANGES["courtyard_dancing_00"]
    frames = len(sequence_files["courtyard_dancing_00"]["cam_poses"])
    assert start < frames < end
    valid = np.stack(sequence_files["courtyard_dancing_00"]["campose_valid"])
    expected = [(f, a) for f in range(start, frames) for a in range(2) if valid[a, f]]
    assert [(f, a) for _, f, a in split_pairs["pc"]] == expected and expected
    assert not [p for p in pc.check() if "3DPW-PC" in p]


def test_pc_ranges_are_checked_on_real_roots(world, tmp_path, reader_options, split_pairs):
    root = copy_world(world, tmp_path)
    (root / SYNTHETIC_FILE).unlink()
    with pytest.raises(BodyModelMismatch, match="mannequin"):
        PW3DReader(root, "pc", reader_options)
    reader_options.allow_mannequin_on_real_data = True
    pc = PW3DReader(root, "pc", reader_options)
    assert not pc.synthetic
    assert pairs(pc) == split_pairs["pc"]  # filtered alike
    problems = pc.check()
    assert any(
        "courtyard_dancing_00.pkl: 3DPW-PC range [60, 370) reaches past" in p for p in problems
    )
    assert any("3DPW-PC sequence downtown_bus_00 absent" in p for p in problems)
    assert any("sequenceFiles/test: 2 sequence files, expected 24" in p for p in problems)


# ----------------------------------------------------------------------------------------------
# real samples


def test_a_real_frame_reads_in_the_documented_layout(tmp_path, reader_options, body_models):
    if not REAL_FRAME.is_file():
        pytest.skip(f"shared samples absent: {REAL_FRAME}")
    root, name, frame = tmp_path / "real", "courtyard_rangeOfMotions_00", 311
    image = root / "3dpw" / "imageFiles" / name / REAL_FRAME.name
    image.parent.mkdir(parents=True)
    shutil.copy(REAL_FRAME, image)
    data = one_actor_sequence(body_models, frame + 1, frame)
    write_bytes(
        root / "3dpw" / "sequenceFiles" / "train" / f"{name}.pkl", dumps_legacy_pickle(data)
    )
    reader_options.allow_mannequin_on_real_data = True
    train = PW3DReader(root, "train", reader_options)
    record = train.record(0)
    assert len(train) == 1 and record.sample_id == f"{name}/image_00311"
    assert record.image is not None and record.image.shape == (1920, 1080, 3)  # portrait
    assert record.image_size == (1920, 1080) == train.record(0, load_image=False).image_size
    assert record.part_segm is not None and record.part_segm.shape == (1920, 1080)
    assert record.part_segm.max() > 0 and record.mask is not None and record.mask.any()
    pose = record.people[0].pose
    assert pose is not None  # identity extrinsics: the world pose is the camera pose
    np.testing.assert_allclose(pose, data["poses"][0][frame], atol=1e-12)


def one_actor_sequence(body_models, frames: int, valid_frame: int) -> dict:
    """A sequence dict in the real format: one actor standing 4 m in front of an identity camera
    with 3DPW's typical intrinsics, valid on one frame."""
    pose = np.zeros((frames, 72))
    pose[:, 0] = 3.0  # about upright in the camera frame (y down)
    trans = np.tile([0.0, 0.0, 4.0], (frames, 1))
    betas = np.zeros(10)
    joints = body_models.keypoints(pose[:1], betas, trans[:1], 2)[0]
    valid = np.zeros(frames, np.uint8)
    valid[valid_frame] = 1
    return {
        "sequence": "courtyard_rangeOfMotions_00", "genders": ["f"], "betas": [betas],
        "poses": [pose], "trans": [trans],
        "jointPositions": [np.tile(native_keypoints(joints, "smpl_24").ravel(), (frames, 1))],
        "poses2d": [np.zeros((frames, 3, 18))], "cam_poses": np.tile(np.eye(4), (frames, 1, 1)),
        "cam_intrinsics": np.array([[1961.9, 0, 540.0], [0, 1969.2, 960.0], [0, 0, 1]]),
        "campose_valid": [valid],
    }  # fmt: skip


# ----------------------------------------------------------------------------------------------
# bad input


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(MissingDataError, match=re.escape(str(tmp_path / "3dpw"))):
        PW3DReader(tmp_path, "train")


def test_missing_split_folder(world, tmp_path):
    root = copy_world(world, tmp_path)
    shutil.rmtree(root / "3dpw" / "sequenceFiles" / "test")
    for split in ("test", "challenge", "occ"):
        with pytest.raises(MissingDataError, match=r"sequenceFiles/test"):
            PW3DReader(root, split)
    assert PW3DReader.present_splits(root) == ["train", "validation"]


def test_records_need_body_models(world):
    test = PW3DReader(world, "test")
    assert len(test) > 0
    with pytest.raises(ValueError, match="body models"):
        test.record(0, load_image=False)


def test_truncated_sequence_file(world, tmp_path):
    root = copy_world(world, tmp_path)
    path = root / "3dpw" / "sequenceFiles" / "test" / "downtown_stairs_00.pkl"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=re.escape(str(path))):
        PW3DReader(root, "test")


def test_unsafe_sequence_file_is_refused_naming_the_global(world, tmp_path):
    root = copy_world(world, tmp_path)
    path = root / "3dpw" / "sequenceFiles" / "test" / "downtown_stairs_00.pkl"
    path.write_bytes(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.")
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        PW3DReader(root, "test")


def test_nan_in_poses_names_file_and_field(world, tmp_path):
    root = copy_world(world, tmp_path)
    path = root / "3dpw" / "sequenceFiles" / "train" / "courtyard_arguing_00.pkl"
    data = read_pickle(path)
    data["poses"][1][2, 5] = np.nan
    write_bytes(path, dumps_legacy_pickle(data))
    with pytest.raises(DataError, match=re.escape(str(path)) + r".*'poses'"):
        PW3DReader(root, "train")


def test_wrong_shape_names_file_and_field(world, tmp_path):
    root = copy_world(world, tmp_path)
    path = root / "3dpw" / "sequenceFiles" / "train" / "courtyard_arguing_00.pkl"
    data = read_pickle(path)
    data["jointPositions"] = [j[:, :69] for j in data["jointPositions"]]
    write_bytes(path, dumps_legacy_pickle(data))
    with pytest.raises(DataError, match=r"courtyard_arguing_00\.pkl.*'jointPositions'"):
        PW3DReader(root, "train")


def test_truncated_image(world, tmp_path, reader_options):
    root = copy_world(world, tmp_path)
    image = root / "3dpw" / "imageFiles" / "downtown_stairs_00" / "image_00001.jpg"
    test = PW3DReader(root, "test", reader_options)
    index = next(i for i in range(len(test)) if test.record(i, False).image_path == image)
    content = image.read_bytes()
    image.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match=re.escape(str(image))):
        test.record(index)
