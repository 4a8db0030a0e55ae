"""MuPoTS-3D: the synthetic sequences read back, intrinsics fitted or read from 3DMPPE's JSON,
invalid people dropped, bad input named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from body.joint_sets import canonical_indices
from datamodules.io import DataError, MissingDataError
from datamodules.mupots import MuPoTSReader, fit_intrinsics
from datamodules.scenes import scene_sample

MUPOTS_17 = canonical_indices("mupots_17")


@pytest.fixture(scope="module")
def world(tiny_world) -> Path:
    return tiny_world("mupots")


@pytest.fixture(scope="module")
def truth(body_models_root) -> dict:
    from datamodules.synthetic import mupots as writer
    from datamodules.synthetic.render import SceneRenderer
    from datamodules.synthetic.world import DATASET_INDEX

    rng = np.random.default_rng([0, DATASET_INDEX["mupots"]])
    sequences = writer.generate(SceneRenderer(body_models_root), rng, writer.SIZES["tiny"])
    return {f"TS{s.number}": s for s in sequences}


def _copy(world: Path, tmp_path: Path) -> Path:
    """A real-looking root (no SYNTHETIC.json) holding the tiny world's sequences."""
    root = tmp_path / "data"
    shutil.copytree(world / "mupots", root / "mupots")
    return root


def _annot(root: Path, sequence: str) -> Path:
    return root / "mupots" / "MultiPersonTestSet" / sequence / "annot.mat"


def test_round_trip(world, truth):
    """Every annotation reads back: 2D exactly, 3D and universal 3D to 1e-5 m, occlusion labels
    and people counts exactly; K fitted from the annotations equals the rendering camera."""
    reader = MuPoTSReader(world, "test")
    assert reader.check() == [] and reader.dropped_people == 0
    assert [name for name, _ in reader.items] == ["TS1", "TS1", "TS6", "TS6"]
    for index in range(len(reader)):
        record = reader.record(index)
        sequence = truth[record.meta["sequence"]]
        frame = record.meta["frame"]
        assert len(record.people) == reader.num_people(index) == sequence.valid.shape[0]
        np.testing.assert_allclose(record.K, sequence.K, atol=1e-6)
        assert record.meta["intrinsics"] == "fitted" and record.meta["intrinsics_rms_px"] < 1e-6
        for k, person in enumerate(record.people):
            assert person.track_id == k
            np.testing.assert_allclose(
                person.keypoints2d[MUPOTS_17, :2], sequence.keypoints2d[k, frame], atol=1e-9
            )
            np.testing.assert_allclose(
                person.keypoints3d[MUPOTS_17, :3], sequence.keypoints3d[k, frame], atol=1e-5
            )
            np.testing.assert_allclose(
                record.meta["univ_keypoints3d"][k], sequence.universal3d[k, frame], atol=1e-5
            )
            np.testing.assert_array_equal(record.meta["occluded"][k], sequence.occluded[k, frame])
            assert (person.keypoints2d[MUPOTS_17, 2] == 1).all()
        assert record.image.shape[:2] == record.image_size
        assert np.abs(record.image.astype(int) - sequence.frames.images[frame]).mean() < 4
    sizes = {reader.record(i, load_image=False).image_size for i in range(len(reader))}
    assert sizes == {(2048, 2048), (1080, 1920)}
    assert any(s.occluded.any() for s in truth.values())


def test_universal_skeleton_has_the_reference_length(truth):
    from datamodules.synthetic.mupots import bone_total

    lengths = [bone_total(s.universal3d[:, 0]) for s in truth.values()]
    np.testing.assert_allclose(np.concatenate(lengths), lengths[0][0], rtol=1e-9)


def test_scene_sample(world):
    sample = scene_sample(MuPoTSReader(world, "test").record(2), (512, 832))
    assert sample["image"].shape == (3, 512, 832)
    assert sample["keypoints3d"].shape[0] == sample["boxes"].shape[0] > 1
    assert bool(sample["has_camera"]) and not bool(sample["has_instance_map"])


def test_fit_intrinsics_recovers_K_and_refuses_degenerate_points():
    rng = np.random.default_rng(3)
    K = np.array([[1490.0, 0.0, 1021.5], [0.0, 1495.0, 1030.25], [0.0, 0.0, 1.0]])
    points = rng.uniform([-1, -1, 2], [1, 1, 6], (50, 3))
    uv = points @ K.T
    np.testing.assert_allclose(fit_intrinsics(uv[:, :2] / uv[:, 2:], points), K, atol=1e-8)
    with pytest.raises(ValueError, match="viewing ray"):
        same_ray = np.array([[0.1, 0.2, 3.0], [0.2, 0.4, 6.0]])
        fit_intrinsics(np.array([[10.0, 20.0], [10.0, 20.0]]), same_ray)
    with pytest.raises(ValueError, match="in front"):
        fit_intrinsics(np.zeros((3, 2)), -np.ones((3, 3)))


def test_intrinsics_from_the_3dmppe_json(world, tmp_path):
    root = _copy(world, tmp_path)
    K = np.array([[1500.0, 0.0, 1024.0], [0.0, 1501.0, 1020.0], [0.0, 0.0, 1.0]])
    images = [{"id": f, "file_name": f"TS1/img_{f:06d}.jpg", "width": 2048, "height": 2048,
               "intrinsic": [1500.0, 1501.0, 1024.0, 1020.0]} for f in range(2)]  # fmt: skip
    path = root / "mupots" / "MuPoTS-3D.json"
    path.write_text(json.dumps({"images": images, "annotations": []}))
    reader = MuPoTSReader(root, "test")
    first, other = reader.record(0, load_image=False), reader.record(2, load_image=False)
    np.testing.assert_allclose(first.K, K)
    assert first.meta["intrinsics"] == "MuPoTS-3D.json" and first.meta["intrinsics_rms_px"] > 1
    assert other.meta["intrinsics"] == "fitted"  # TS6 is not in the file
    images[1]["intrinsic"][0] = 1400.0
    path.write_text(json.dumps({"images": images}))
    with pytest.raises(DataError, match=r"TS1/img_000001\.jpg.*differs"):
        MuPoTSReader(root, "test")


def test_invalid_and_empty_cells_are_dropped(world, tmp_path):
    root = _copy(world, tmp_path)
    path = _annot(root, "TS6")
    cells = scipy.io.loadmat(str(path))["annotations"]
    cells[0, 1]["isValidFrame"][0, 0] = np.array([[0.0]])
    cells[1, 0] = np.zeros((0, 0))
    scipy.io.savemat(str(path), {"annotations": cells})
    reader = MuPoTSReader(root, "test")
    assert reader.dropped_people == 2
    first, second = reader.record(2, load_image=False), reader.record(3, load_image=False)
    assert [p.track_id for p in first.people] == [0, 2]
    assert [p.track_id for p in second.people] == [1, 2] and len(second.meta["occluded"]) == 2


def test_missing_and_corrupt_files_are_named(world, tmp_path):
    with pytest.raises(MissingDataError, match="mupots"):
        MuPoTSReader(tmp_path, "test")
    root = _copy(world, tmp_path)
    problems = MuPoTSReader(root, "test").check()
    assert len(problems) == 18 and all("test sequence missing" in p for p in problems)
    image = root / "mupots" / "MultiPersonTestSet" / "TS6" / "img_000001.jpg"
    image.unlink()
    reader = MuPoTSReader(root, "test")
    assert f"{image}: image not found" in reader.check()
    with pytest.raises(MissingDataError, match="img_000001"):
        reader.record(3)
    shutil.copy(root / "mupots" / "MultiPersonTestSet" / "TS1" / "img_000000.jpg", image)
    with pytest.raises(DataError, match=r"image is .*2048"):
        MuPoTSReader(root, "test").record(3)

    path = _annot(root, "TS1")
    cells = scipy.io.loadmat(str(path))["annotations"]
    cells[1, 0]["annot3"][0, 0][2, 5] = np.nan
    scipy.io.savemat(str(path), {"annotations": cells})
    with pytest.raises(DataError, match=r"TS1/annot.mat \(frame 1, person 0\): NaN.*annot3"):
        MuPoTSReader(root, "test")
    scipy.io.savemat(str(path), {"other": np.zeros(3)})
    with pytest.raises(DataError, match=r"annot\.mat: variable 'annotations' missing"):
        MuPoTSReader(root, "test")
    path.write_bytes(b"MATLAB 5.0 but truncated")
    with pytest.raises(DataError, match=r"annot\.mat"):
        MuPoTSReader(root, "test")
    shutil.copy(_annot(world, "TS1"), path)

    occlusion = path.with_name("occlusion.mat")
    labels = np.empty((1, 1), dtype=object)
    labels[0, 0] = np.zeros((1, 17))
    scipy.io.savemat(str(occlusion), {"occlusion_labels": labels})
    with pytest.raises(DataError, match="occlusion_labels' is \\(1, 1\\)"):
        MuPoTSReader(root, "test")
    occlusion.unlink()
    with pytest.raises(MissingDataError, match=r"occlusion\.mat"):
        MuPoTSReader(root, "test")
