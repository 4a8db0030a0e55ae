"""Human3.6M (SPIN npz + frames + camera file): real samples, the tiny world, bad input."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from body.joint_sets import canonical_indices
from body.safe_pickle import UnsafePickleError
from datamodules import h36m as h36m_module
from datamodules.base import ReaderOptions
from datamodules.cache import PrepareContext
from datamodules.h36m import (
    PELVIS_ROW,
    H36MReader,
    derive_transl,
    is_root_relative,
    read_martinez_cameras,
    read_mmpose_cameras,
)
from datamodules.io import DataError, MissingDataError
from datamodules.part_labels import part_label_step
from datamodules.records import mask_box
from datamodules.synthetic import h36m as writer
from datamodules.synthetic.render import SceneRenderer
from datamodules.synthetic.world import DATASET_INDEX
from tests.conftest import SHARED_SAMPLES

SAMPLES = SHARED_SAMPLES / "h36m"
SAMPLE_NPZ = SAMPLES / "mmpose_test_h36m.npz"
MARTINEZ = SAMPLES / "martinez_3d-pose-baseline_cameras.h5"
MMPOSE = SAMPLES / "mmpose_cameras.pkl"
SPIN = canonical_indices("spin_24")
H36M_ROWS = list(writer.J24_H36M_ROWS)


def _need_samples() -> None:
    if not (SAMPLE_NPZ.is_file() and MARTINEZ.is_file() and MMPOSE.is_file()):
        pytest.skip(f"real Human3.6M samples not found under {SAMPLES}")


def _martinez_project(points: np.ndarray, camera) -> np.ndarray:
    """(N, 2) pixels of camera-frame points (N, 3) with 3d-pose-baseline's distortion model."""
    x = points[:, :2] / points[:, 2:]
    r2 = (x**2).sum(axis=1, keepdims=True)
    k, p = camera.k, camera.p
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tangential = p[0] * x[:, 1:] + p[1] * x[:, :1]
    distorted = x * (radial + tangential) + r2 * np.array([p[1], p[0]])
    return distorted * camera.focal + camera.principal


def _pinhole(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    projected = points @ K.T
    return projected[:, :2] / projected[:, 2:]


# ---------------------------------------------------------------------------------------------
# Real samples


def test_camera_formats_agree():
    _need_samples()
    martinez, mmpose = read_martinez_cameras(MARTINEZ), read_mmpose_cameras(MMPOSE)
    subjects = [f"S{n}" for n in (1, 5, 6, 7, 8, 9, 11)]
    for subject in subjects:
        for camera in writer.CAMERAS:
            a, b = martinez[subject, camera], mmpose[subject, camera]
            for name in ("R", "centre", "focal", "principal", "k", "p"):
                np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-9)
            np.testing.assert_allclose(a.R @ a.R.T, np.eye(3), atol=1e-6)
    s1 = martinez["S1", "54138969"]
    np.testing.assert_allclose(s1.focal, [1145.049, 1143.781], atol=1e-3)
    np.testing.assert_allclose(s1.centre, [1.8411, 4.9553, 1.5634], atol=1e-4)  # metres


def test_golden_sample_projection():
    """`S` (absolute camera-frame metres) projected with the cameras reproduces `part`."""
    _need_samples()
    data = np.load(SAMPLE_NPZ)
    for cameras in (read_martinez_cameras(MARTINEZ), read_mmpose_cameras(MMPOSE)):
        S1 = cameras["S1", "54138969"]
        pelvis = _pinhole(data["S"][0, PELVIS_ROW : PELVIS_ROW + 1, :3], S1.K)[0]
        np.testing.assert_allclose(pelvis, [473.7, 444.9], atol=0.1)  # measured (473.65, 444.89)
        np.testing.assert_allclose(pelvis, data["part"][0, PELVIS_ROW, :2], atol=0.05)
        for row, name in enumerate(data["imgname"]):
            subject, camera = name.split("_")[0], name.split(".")[1].split("_")[0]
            valid = data["S"][row, :, 3] > 0
            points, part = data["S"][row, valid, :3], data["part"][row, valid, :2]
            pinhole_error = np.linalg.norm(
                _pinhole(points, cameras[subject, camera].K) - part, axis=1
            )
            # Measured: 0.37, 0.57, 1.09, 1.24 px (mean), up to 3.4 px (K has no distortion).
            assert pinhole_error.mean() < 1.5 and pinhole_error.max() < 4.0, name
            full = _martinez_project(points, cameras[subject, camera])
            # Measured: at most 0.022 px: `part` is the distorted projection.
            assert np.abs(full - part).max() < 0.05, name
    assert (data["part"][..., 2] == data["S"][..., 3]).all()


def _sample_layout(tmp_path: Path, camera_file: Path, camera_name: str, **npz_changes) -> Path:
    root = tmp_path / "real"
    (root / "h36m").mkdir(parents=True)
    os.symlink(SAMPLES / "images", root / "h36m" / "images")
    os.symlink(camera_file, root / "h36m" / camera_name)
    data = dict(np.load(SAMPLE_NPZ))
    data.update(npz_changes)
    np.savez(root / "h36m" / "h36m_train.npz", **data)
    return root


@pytest.mark.parametrize("camera_file, camera_name", [(MARTINEZ, "cameras.h5"),
                                                      (MMPOSE, "cameras.pkl")])  # fmt: skip
def test_reader_on_real_sample(tmp_path, camera_file, camera_name):
    _need_samples()
    root = _sample_layout(tmp_path, camera_file, camera_name)
    reader = H36MReader(root, "train")
    data = np.load(SAMPLE_NPZ)
    assert len(reader) == 4 and not reader.root_relative
    assert reader.camera_file.name == camera_name
    record = reader.record(0, load_image=False)
    expected = root / "h36m/images/S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg"
    assert record.image_path == expected
    assert record.image_size == (1002, 1000)
    assert record.meta["subject"] == "S1" and record.meta["camera"] == "54138969"
    assert record.meta["action"] == "Directions_1" and record.meta["frame"] == 1
    np.testing.assert_allclose(record.K[0, 0], 1145.049, atol=1e-3)
    person = record.people[0]
    assert person.flags["has_keypoints3d"] and not person.flags["keypoints3d_root_relative"]
    np.testing.assert_allclose(person.keypoints3d[SPIN], data["S"][0])
    np.testing.assert_allclose(person.keypoints2d[SPIN], data["part"][0])
    # No body models: pose and betas kept, transl unknown, so SMPL is not flagged usable.
    assert not person.flags["has_smpl"] and person.transl is None
    np.testing.assert_array_equal(person.pose, data["pose"][0])
    valid = person.keypoints2d[:, 2] > 0
    x0, y0, x1, y1 = person.box
    assert (person.keypoints2d[valid, 0] > x0).all() and (person.keypoints2d[valid, 0] < x1).all()
    assert (person.keypoints2d[valid, 1] > y0).all() and (person.keypoints2d[valid, 1] < y1).all()
    np.testing.assert_allclose(x1 - x0, data["scale"][0] * 200 / 0.9)
    # From the headers: camera 55011271 is 1000 x 1002 in S7's frame, 1000 x 1000 in S8's.
    sizes = [reader.record(i, load_image=False).image_size for i in range(4)]
    assert sizes == [(1002, 1000), (1002, 1000), (1002, 1000), (1000, 1000)]


def test_real_sample_smpl_is_camera_frame(tmp_path, body_models):
    """The sample's pose, posed with the derived transl, lands on S (mannequin: a few cm)."""
    _need_samples()
    root = _sample_layout(tmp_path, MARTINEZ, "cameras.h5")
    options = ReaderOptions(tmp_path / "cache", body_models, allow_mannequin_on_real_data=True)
    reader = H36MReader(root, "train", options)
    for index in range(len(reader)):
        person = reader.record(index, load_image=False).people[0]
        assert person.flags["has_smpl"] and person.transl is not None
        keypoints = body_models.keypoints(person.pose, person.betas, person.transl, 0)[0]
        valid = person.keypoints3d[:, 3] > 0
        error = np.linalg.norm(keypoints[valid] - person.keypoints3d[valid, :3], axis=1)
        assert error.mean() < 0.08  # measured 0.040-0.057 m; a world-frame pose is metres off
    record = reader.record(0)
    assert record.image is not None and record.image.shape == (1002, 1000, 3)
    assert record.flags["has_part_segm"] and record.part_segm is not None
    assert record.mask is not None and record.mask.any() and record.part_segm.max() <= 24


def test_imgname_with_images_prefix(tmp_path):
    _need_samples()
    names = np.array(["images/" + str(n) for n in np.load(SAMPLE_NPZ)["imgname"]])
    root = _sample_layout(tmp_path, MARTINEZ, "cameras.h5", imgname=names)
    record = H36MReader(root, "train").record(2, load_image=False)
    assert record.image_path.relative_to(root / "h36m") == Path(
        "images/S7/S7_Greeting.55011271/S7_Greeting.55011271_000396.jpg"
    )
    assert record.meta["imgname"] == "images/S7_Greeting.55011271_000396.jpg"


# ---------------------------------------------------------------------------------------------
# The tiny synthetic world


@pytest.fixture(scope="module")
def world(tiny_world) -> Path:
    return tiny_world("h36m")


@pytest.fixture(scope="module")
def truth(world, body_models_root, tmp_path_factory) -> dict:
    """The renderer's ground truth: the writer re-run with the world's random generator."""
    out = tmp_path_factory.mktemp("h36m_truth")
    rng = np.random.default_rng([0, DATASET_INDEX["h36m"]])
    renderer = SceneRenderer(body_models_root, "mannequin")
    _, views = writer.write_with_truth(out / "h36m", renderer, rng, writer.SIZES["tiny"])
    for name in writer.NPZ_FILES.values():  # the writer is deterministic
        ours, theirs = np.load(out / "h36m" / name), np.load(world / "h36m" / name)
        assert ours.files == theirs.files
        for key in ours.files:
            np.testing.assert_array_equal(ours[key], theirs[key])
    return views


def test_world_layout(world):
    root = world / "h36m"
    counts = {split: len(H36MReader(world, split)) for split in H36MReader.splits}
    assert counts == {"train": 12, "p1": 8, "p2": 2}
    train = np.load(root / "h36m_train.npz")
    assert train["S"].dtype == np.float64 and train["part"].shape == (12, 24, 3)
    assert train["openpose"].shape == (12, 25, 3) and (train["has_smpl"] == 1).all()
    assert set(np.load(root / "h36m_valid_protocol1.npz").files) == {
        "imgname", "center", "scale", "part", "S"}  # fmt: skip
    unset = [r for r in range(24) if r not in H36M_ROWS]
    assert (train["S"][:, unset] == 0).all() and (train["S"][:, H36M_ROWS, 3] == 1).all()
    name = str(train["imgname"][1])
    assert name == "S1_Directions_1.54138969_000006.jpg"
    assert (root / "images/S1/S1_Directions_1.54138969" / name).is_file()
    with h5py.File(root / "cameras.h5", "r") as handle:
        assert sorted(handle) == sorted(f"subject{n}" for n in (1, 5, 6, 7, 8, 9, 11))
        node = handle["subject9/camera4"]
        assert {key: node[key].shape for key in node} == {
            "R": (3, 3), "T": (3, 1), "f": (2, 1), "c": (2, 1), "k": (3, 1), "p": (2, 1),
            "Name": (8, 1)}  # fmt: skip
        assert "".join(chr(int(c)) for c in node["Name"][()].ravel()) == "60457274"
    cameras = read_martinez_cameras(root / "cameras.h5")
    for (subject, camera), params in cameras.items():
        K, _ = writer.reduced_intrinsics(camera)
        np.testing.assert_allclose(params.K, K)
        assert 4.0 < np.linalg.norm(params.centre[:2]) < 6.0, (subject, camera)
    # One recording seen by the four cameras: the same world joints (R, T as Martinez stores them).
    reader = H36MReader(world, "train")
    world_joints = []
    for index in range(0, 12, 3):  # frame 1 of each camera's view
        record = reader.record(index, load_image=False)
        params = cameras["S1", record.meta["camera"]]
        joints = record.people[0].keypoints3d[[SPIN[r] for r in H36M_ROWS], :3]
        world_joints.append(joints @ params.R + params.centre)  # R^T x + C, row vectors
        size = (251, 250) if record.meta["camera"] in ("54138969", "60457274") else (250, 250)
        assert record.image_size == size
    np.testing.assert_allclose(np.ptp(np.stack(world_joints), axis=0), 0.0, atol=1e-6)


def test_round_trip(world, truth, reader_options, body_models_root):
    # `prepare h36m` renders the part labels; the records below read them from the cache.
    context = PrepareContext(world, reader_options.cache_root, body_models_root, "mannequin",
                             progress=False)  # fmt: skip
    assert "22 records" in part_label_step(H36MReader)(context)
    for split in ("train", "p1"):
        reader = H36MReader(world, split, reader_options)
        for index in range(len(reader)):
            record = reader.record(index)
            view = truth[record.meta["imgname"]]
            t, rendered = view.frames.index(record.meta["frame"]), view.rendered
            assert rendered is not None
            person = record.people[0]
            projected = rendered.keypoints2d(0, record.K)[t]  # (K, 2) the renderer's
            np.testing.assert_allclose(record.K, writer.reduced_intrinsics(view.camera)[0])
            rows = [SPIN[r] for r in H36M_ROWS]
            np.testing.assert_allclose(person.keypoints2d[rows, :2], projected[rows], atol=1e-3)
            keypoints3d = rendered.posed[0].keypoints[t]
            np.testing.assert_allclose(person.keypoints3d[rows, :3], keypoints3d[rows], atol=1e-5)
            assert (person.keypoints3d[rows, 3] == 1).all()
            assert not person.flags["keypoints3d_root_relative"]
            assert record.image is not None
            assert record.image.shape[:2] == record.image_size == rendered.images.shape[1:3]
            assert np.abs(record.image.astype(int) - rendered.images[t]).mean() < 5  # JPEG
            assert _box_covers(person.box, mask_box(rendered.instance_map[t] == 1))
            if split == "train":
                _check_smpl(record, view.person, rendered, t)
            else:
                assert person.pose is None and not person.flags["has_smpl"]
                assert record.part_segm is None and not record.flags["has_part_segm"]


def test_transl_fit_is_batched_and_cached(world, reader_options, body_models, monkeypatch):
    """The batched fit equals the per-row least squares with two forward passes (transl 0
    and 1); a second reader of the same npz reads it from the cache."""
    reader = H36MReader(world, "train", reader_options)
    for index in (0, len(reader) - 1):
        person = reader.record(index, load_image=False).people[0]
        pose, betas, S = person.pose, person.betas, reader._data["S"][reader._rows[index]]
        available = body_models.get(person.gender).canonical_available[SPIN].numpy()
        S = S * available[:, None]
        transl = np.stack([np.zeros(3), np.ones(3)])
        both = body_models.keypoints(
            np.stack([pose, pose]), np.stack([betas, betas]), transl, person.gender
        )[:, SPIN]
        np.testing.assert_allclose(person.transl, derive_transl(both[0], both[1], S), atol=1e-9)

    def no_refit(*args, **kwargs):
        raise AssertionError("the transl fit ran again instead of reading the cache")

    monkeypatch.setattr(h36m_module, "fit_transl", no_refit)
    again = H36MReader(world, "train", reader_options).record(0, load_image=False).people[0]
    np.testing.assert_array_equal(again.transl, reader.record(0, load_image=False).people[0].transl)


def _box_covers(box: np.ndarray, mask: np.ndarray) -> bool:
    """The record's square (side = the mask box's longer side) holds the silhouette's box."""
    return bool((box[:2] <= mask[:2] + 1).all() and (box[2:] >= mask[2:] - 1).all())


def _check_smpl(record, truth, rendered, t: int) -> None:
    person = record.people[0]
    assert person.flags["has_smpl"] and record.flags["has_part_segm"]
    np.testing.assert_allclose(person.pose, truth.pose[t], atol=1e-5)
    np.testing.assert_allclose(person.betas, truth.betas, atol=1e-5)
    np.testing.assert_allclose(person.transl, truth.transl[t], atol=1e-5)
    np.testing.assert_array_equal(record.part_segm, rendered.part_segm[t])
    np.testing.assert_array_equal(record.instance_map, rendered.instance_map[t])
    np.testing.assert_array_equal(record.mask, rendered.instance_map[t] > 0)


def test_projection_consistency(world):
    for split in H36MReader.splits:
        reader = H36MReader(world, split)
        assert reader.check() == []
        for index in range(len(reader)):
            record = reader.record(index, load_image=False)
            person = record.people[0]
            both = (person.keypoints2d[:, 2] > 0) & (person.keypoints3d[:, 3] > 0)
            assert both.sum() == 17
            projected = _pinhole(person.keypoints3d[both, :3], record.K)
            np.testing.assert_allclose(projected, person.keypoints2d[both, :2], atol=1e-6)


def _copy(world: Path, tmp_path: Path) -> Path:
    root = tmp_path / "world"
    shutil.copytree(world, root, ignore=shutil.ignore_patterns(".cache"))
    return root


def _p2_view(reader: H36MReader) -> list[tuple[str, np.ndarray]]:
    records = [reader.record(i, load_image=False) for i in range(len(reader))]
    return [(r.meta["imgname"], r.people[0].keypoints3d) for r in records]


def test_p2_is_the_camera_60457274_subset_of_p1(world, tmp_path):
    p1 = [r for r in _p2_view(H36MReader(world, "p1")) if ".60457274_" in r[0]]
    p2 = _p2_view(H36MReader(world, "p2"))
    assert [n for n, _ in p2] == [n for n, _ in p1] and len(p2) == 2
    for (_, a), (_, b) in zip(p1, p2, strict=True):
        np.testing.assert_array_equal(a, b)
    root = _copy(world, tmp_path)
    (root / "h36m" / "h36m_valid_protocol2.npz").unlink()
    derived = H36MReader(root, "p2")
    assert derived.source.name == "h36m_valid_protocol1.npz"
    assert [n for n, _ in _p2_view(derived)] == [n for n, _ in p2]


def test_root_relative_detection(world, tmp_path, reader_options):
    root = _copy(world, tmp_path)
    path = root / "h36m" / "h36m_train.npz"
    data = dict(np.load(path))
    absolute = data["S"].copy()
    valid = absolute[..., 3:] > 0
    data["S"] = absolute - np.where(valid, absolute[:, PELVIS_ROW : PELVIS_ROW + 1], 0.0)
    data["S"][..., 3] = absolute[..., 3]
    np.savez(path, **data)
    assert not is_root_relative(absolute) and is_root_relative(data["S"])
    pelvis = (np.arange(24) == PELVIS_ROW)[:, None]  # without it: the valid rows' mean depth
    assert not is_root_relative(np.where(pelvis, 0.0, absolute))
    assert is_root_relative(np.where(pelvis, 0.0, data["S"]))
    reader = H36MReader(root, "train", reader_options)
    assert reader.root_relative
    record = reader.record(0)
    person = record.people[0]
    assert person.flags["keypoints3d_root_relative"] and not person.flags["has_smpl"]
    assert person.transl is None and person.pose is not None and record.part_segm is None
    np.testing.assert_allclose(person.keypoints3d[SPIN[PELVIS_ROW], :3], 0.0)


# ---------------------------------------------------------------------------------------------
# Bad input


def test_missing_folder_and_split_files(world, tmp_path):
    with pytest.raises(MissingDataError, match=str(tmp_path / "h36m")):
        H36MReader(tmp_path, "train")
    root = _copy(world, tmp_path)
    (root / "h36m" / "h36m_train.npz").unlink()
    with pytest.raises(MissingDataError, match=r"h36m_train\.npz"):
        H36MReader(root, "train")
    assert H36MReader.present_splits(root) == ["p1", "p2"]
    (root / "h36m" / "h36m_valid_protocol1.npz").unlink()
    (root / "h36m" / "h36m_valid_protocol2.npz").unlink()
    with pytest.raises(MissingDataError, match=r"h36m_valid_protocol2\.npz.*h36m_valid_protocol1"):
        H36MReader(root, "p2")


def test_missing_camera_file_or_subject(world, tmp_path):
    root = _copy(world, tmp_path)
    cameras = root / "h36m" / "cameras.h5"
    with h5py.File(cameras, "a") as handle:
        del handle["subject11"]
    assert len(H36MReader(root, "train")) == 12
    with pytest.raises(DataError, match="subject S11 camera 54138969"):
        H36MReader(root, "p1")
    cameras.unlink()
    with pytest.raises(MissingDataError, match=r"cameras\.h5"):
        H36MReader(root, "train")


def test_corrupt_files(world, tmp_path):
    root = _copy(world, tmp_path)
    image = root / "h36m/images/S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000006.jpg"
    image.write_bytes(image.read_bytes()[:600])
    reader = H36MReader(root, "train")
    with pytest.raises(DataError, match=str(image)):
        reader.record(1)
    image.unlink()
    with pytest.raises(MissingDataError, match=r"S1_Directions_1\.54138969_000006\.jpg"):
        reader.record(1, load_image=False)
    assert any("000006" in line for line in reader.check())
    path = root / "h36m" / "h36m_valid_protocol1.npz"
    data = dict(np.load(path))
    data["S"][3, 5, 1] = np.nan
    np.savez(path, **data)
    reader = H36MReader(root, "p1")
    reader.record(2, load_image=False)
    with pytest.raises(DataError, match=r"h36m_valid_protocol1.npz.*'S'"):
        reader.record(3, load_image=False)
    data["imgname"][0] = "frame_1.jpg"
    np.savez(path, **data)
    with pytest.raises(DataError, match=r"row 0.*frame_1\.jpg"):
        H36MReader(root, "p1")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo unsafe",))


def test_unsafe_camera_pickle(world, tmp_path):
    root = _copy(world, tmp_path)
    (root / "h36m" / "cameras.h5").unlink()
    (root / "h36m" / "cameras.pkl").write_bytes(pickle.dumps({("S1", "54138969"): _Exploit()}))
    with pytest.raises(UnsafePickleError, match="system"):
        H36MReader(root, "train")
