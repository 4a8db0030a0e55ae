"""UP-3D, up-s31 and upi-s1h: the tiny synthetic world round-trips through the reader (against
the writer's own ground truth, regenerated with the same rng), the fit camera projects the body
onto the keypoints through the crop-info path, the named subsets hold what they should, and bad
files fail with errors that name the file and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from body.joint_sets import canonical_indices
from body.safe_pickle import UnsafePickleError, dumps_legacy_pickle, load_pickle
from datamodules.base import ReaderOptions
from datamodules.io import DataError, MissingDataError
from datamodules.records import NUM_CANONICAL, mask_box
from datamodules.synthetic import up3d as writer
from datamodules.synthetic.render import SceneRenderer
from datamodules.synthetic.world import DATASET_INDEX
from datamodules.up3d import (
    PARTS31_TO_PARTS6,
    REGIONS_31,
    S31_SPLITS,
    SIX_PART_GROUPS,
    FitCrop,
    UP3DReader,
    fit_intrinsics,
    read_fit_crop,
    s31_crop,
)
from geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

LSP_ROWS = canonical_indices("lsp_14")
SMPL_ROWS = canonical_indices("smpl_24")
UP3D_SPLITS = ("train", "val", "test", "trainval", "lsp_test")


@pytest.fixture(scope="module")
def root(tiny_world) -> Path:
    return tiny_world("up3d")


@pytest.fixture(scope="module")
def renderer(body_models_root: Path) -> SceneRenderer:
    return SceneRenderer(body_models_root, "mannequin")


@pytest.fixture(scope="module")
def truth(renderer: SceneRenderer) -> dict[str, writer.Sample]:
    """The tiny world's samples by UP-3D id, regenerated exactly as `write_world` drew them."""
    rng = np.random.default_rng([0, DATASET_INDEX["up3d"]])
    samples = writer.generate(renderer, rng, writer.SIZES["tiny"])
    return {sample.plan.up_id: sample for sample in samples}


def _records(root: Path, split: str, options: ReaderOptions | None = None):
    reader = UP3DReader(root, split, options)
    return [reader.record(index) for index in range(len(reader))]


def _project(body_models, person, K: np.ndarray, rows: list[int]) -> np.ndarray:
    """(J, 2) pixels of the canonical `rows` of the posed body, projected with K."""
    points = body_models.keypoints(person.pose, person.betas, person.transl, person.gender)[0]
    points = points[rows]
    return points[:, :2] / points[:, 2:] * np.diag(K)[:2] + K[:2, 2]


# --- round trip --------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_round_trip_matches_the_renderer(root, truth, split):
    """Pixels, LSP keypoints, SMPL, K, meta and the upi-s1h maps are what the writer drew."""
    records = _records(root, split)
    assert [r.meta["up3d_id"] for r in records] == sorted(
        i for i, s in truth.items() if s.plan.split == split
    )
    for record in records:
        sample, person = truth[record.meta["up3d_id"]], record.people[0]
        np.testing.assert_array_equal(record.image, sample.image)
        np.testing.assert_allclose(person.keypoints2d[LSP_ROWS], sample.keypoints, atol=1e-3)
        assert person.keypoints2d[np.setdiff1d(np.arange(NUM_CANONICAL), LSP_ROWS)].max() == 0
        np.testing.assert_allclose(person.pose, sample.pose, atol=1e-5)
        np.testing.assert_allclose(person.betas, sample.betas, atol=1e-5)
        np.testing.assert_allclose(person.transl, sample.transl, atol=1e-5)
        np.testing.assert_allclose(record.K, sample.K, atol=1e-9)
        np.testing.assert_allclose(person.box, mask_box(sample.render_light.min(axis=2) < 255))
        assert person.gender == 0 and person.flags["has_smpl"] and person.flags["has_keypoints2d"]
        assert not (person.flags["has_gender"] or person.flags["has_keypoints3d"])
        assert not (record.flags["has_camera"] or record.flags["has_part_segm"])
        assert record.meta["fit_crop"] == sample.plan.crop.as_list()
        assert (record.meta["source"], record.meta["source_index"], record.meta["quality"]) == (
            sample.plan.source, sample.plan.source_index, sample.plan.quality
        )  # fmt: skip
        _check_lsp_maps(record, sample)


def _check_lsp_maps(record, sample: writer.Sample) -> None:
    if sample.plan.source != "lsp":
        assert not record.flags["has_mask"] and record.mask is None and not record.extra_maps
        return
    assert record.flags["has_mask"]
    np.testing.assert_array_equal(record.mask, sample.regions > 0)
    np.testing.assert_array_equal(record.extra_maps["silhouette"], record.mask)
    np.testing.assert_array_equal(record.extra_maps["parts6"], PARTS31_TO_PARTS6[sample.regions])


def test_crop_info_path(root, truth, body_models):
    """Images with a real fit crop: K = A K_fit, and the pkl's j2d (fit-crop pixels) mapped
    through `_fit_crop_info.txt` lands on the body's SMPL joints projected with K."""
    cropped = [s for s in truth.values() if s.plan.crop.h != s.plan.image_size[0]]
    assert cropped, "the tiny world must have an image with a real fit crop"
    for split in ("train", "val", "test"):
        for record in _records(root, split):
            sample = truth[record.meta["up3d_id"]]
            body = load_pickle(root / "up3d" / "up-3d" / f"{sample.plan.up_id}_body.pkl")
            crop = FitCrop(*record.meta["fit_crop"])
            K_fit = fit_intrinsics(np.full(2, float(body["f"])), crop)
            np.testing.assert_allclose(record.K, crop.image_from_fit() @ K_fit)
            j2d = body["j2d"][:24] @ crop.image_from_fit()[:2, :2].T + crop.image_from_fit()[:2, 2]
            expected = _project(body_models, record.people[0], record.K, SMPL_ROWS)
            np.testing.assert_allclose(j2d, expected, atol=1e-3)
    assert any(not np.allclose(s.K, s.K_fit) for s in cropped)


def test_identity_crop_of_the_real_sample_00001():
    """datasets.md 2.1: `201 145 0 201 0 145` is the whole 145x201 image; K is the fit camera."""
    crop = FitCrop(201, 145, 0, 201, 0, 145)
    np.testing.assert_allclose(crop.image_from_fit(), np.eye(3))
    K = crop.image_from_fit() @ fit_intrinsics(np.array([5000.0, 5000.0]), crop)
    np.testing.assert_allclose(K, np.array([[5000, 0, 72.5], [0, 5000, 100.5], [0, 0, 1]]))


# --- projection consistency ---------------------------------------------------------------------


@pytest.mark.parametrize("split", [*UP3D_SPLITS, *S31_SPLITS])
def test_projection_consistency(root, body_models, split):
    """The record's SMPL posed and projected with K lands on keypoints2d (within 1e-3 px)."""
    records = _records(root, split)
    assert records
    for record in records:
        person = record.people[0]
        assert person.flags["has_smpl"], f"{record.sample_id}: no SMPL (s31 mapping failed?)"
        confident = person.keypoints2d[LSP_ROWS, 2] > 0
        assert confident.sum() >= 10
        projected = _project(body_models, person, record.K, LSP_ROWS)
        np.testing.assert_allclose(
            projected[confident], person.keypoints2d[LSP_ROWS][confident, :2], atol=1e-3
        )


# --- named subsets and up-s31 -----------------------------------------------------------------


def test_lsp_test_is_the_lsp_sourced_test_images(root, truth):
    expected = sorted(
        i for i, s in truth.items() if s.plan.split == "test" and s.plan.source == "lsp"
    )
    records = _records(root, "lsp_test")
    assert len(expected) >= 2
    assert [r.meta["up3d_id"] for r in records] == expected
    assert all(
        r.flags["has_mask"] and set(r.extra_maps) == {"silhouette", "parts6"} for r in records
    )


def test_six_part_grouping_table():
    assert PARTS31_TO_PARTS6[0] == 0 and len(PARTS31_TO_PARTS6) == 32
    assert sorted(np.unique(PARTS31_TO_PARTS6[1:]).tolist()) == [1, 2, 3, 4, 5, 6]
    for part, (_, regions) in enumerate(SIX_PART_GROUPS, start=1):
        assert all(PARTS31_TO_PARTS6[REGIONS_31.index(r) + 1] == part for r in regions)
    assert PARTS31_TO_PARTS6[REGIONS_31.index("rlbody") + 1] == 2  # crotch's region: torso


def test_every_region_has_vertices(renderer):
    """The writer's per-vertex region table uses all 31 up-s31 regions, left/right mirrored."""
    counts = np.bincount(writer.vertex_regions(renderer), minlength=len(REGIONS_31) + 1)
    assert counts[0] == 0 and (counts[1:] > 0).all()
    left = [REGIONS_31.index(n) + 1 for n in REGIONS_31 if n[0] == "l"]
    right = [REGIONS_31.index("r" + n[1:]) + 1 for n in REGIONS_31 if n[0] == "l"]
    np.testing.assert_allclose(counts[left], counts[right], rtol=0.2)  # midline x = 0: right


@pytest.mark.parametrize("split", list(S31_SPLITS))
def test_s31_records_carry_parts31_and_parts6(root, truth, split):
    """parts31 is the writer's region map (resized and cropped as up-s31 does), parts6 its
    grouping, mask its foreground; keypoints map through the list's scale factor."""
    records = _records(root, split)
    assert [r.meta["s31_id"] for r in records] == sorted(
        i for i, s in truth.items() if s.plan.split == S31_SPLITS[split]
    )
    for record in records:
        sample = truth[record.meta["s31_id"]]
        image, regions, scale = writer.s31_view(sample)
        parts31 = record.extra_maps["parts31"]
        np.testing.assert_array_equal(record.image, image)
        np.testing.assert_array_equal(parts31, regions)
        np.testing.assert_array_equal(record.extra_maps["parts6"], PARTS31_TO_PARTS6[parts31])
        np.testing.assert_array_equal(record.mask, parts31 > 0)
        assert record.meta["scale_factor"] == pytest.approx(scale) and scale > 1.5
        assert record.meta["up3d_id"] == sample.plan.up_id
        assert record.flags["has_mask"] and not record.flags["has_part_segm"]
        _check_s31_alignment(record, sample)


def _check_s31_alignment(record, sample: writer.Sample) -> None:
    """The silhouette box of the UP-3D image, moved like the keypoints, is the s31 one."""
    transform = record.K @ np.linalg.inv(sample.K)
    up_box = mask_box(sample.regions > 0).reshape(2, 2)
    moved = up_box * np.diag(transform)[:2] + transform[:2, 2]
    height, width = record.image_size
    moved = np.clip(moved, -0.5, [width - 0.5, height - 0.5])
    np.testing.assert_allclose(moved.ravel(), record.people[0].box, atol=0.5 * transform[0, 0] + 1)


def test_s31_crop_follows_get_crop():
    """classner's get_crop: 513 px around the centre, shifted back inside the image."""
    assert s31_crop((600, 400), np.array([200.0, 100.0])) == (0, 513, 0, 400)
    assert s31_crop((600, 700), np.array([350.7, 590.2])) == (87, 600, 94, 607)
    assert s31_crop((600, 700), np.array([350.0, 300.0])) == (44, 557, 94, 607)


# --- general camera and checks ----------------------------------------------------------------


def test_non_zero_rt_moves_the_body_into_the_camera(root, tmp_path, reader_options, body_models):
    """A fit with a camera rotation rt and a body translation trans gives the same camera-frame
    body: R(rt) R_global and R(rt) (J0 + trans) + t - J0 (J0 from the body model)."""
    data_root = _copy(root, tmp_path)
    reader = UP3DReader(data_root, "train", reader_options)
    original = reader.record(0, load_image=False).people[0]
    pose, betas, transl = original.pose, original.betas, original.transl
    assert pose is not None and betas is not None and transl is not None
    path = data_root / "up3d" / "up-3d" / f"{reader.entries[0][0]}_body.pkl"
    body = load_pickle(path)
    rotation = axis_angle_to_matrix(torch.tensor([0.2, -0.4, 0.1], dtype=torch.float64))
    camera_orient = axis_angle_to_matrix(torch.as_tensor(pose[:3]))
    trans = np.array([0.1, -0.2, 0.3])
    root_joint = body_models.rest_root_joint(betas, 0)
    body["pose"][:3] = matrix_to_axis_angle(rotation.T @ camera_orient).numpy()
    body.update(
        rt=matrix_to_axis_angle(rotation).numpy(),
        trans=trans,
        t=transl + root_joint - rotation.numpy() @ (root_joint + trans),
    )
    path.write_bytes(dumps_legacy_pickle(body))
    moved = UP3DReader(data_root, "train", reader_options).record(0, load_image=False).people[0]
    assert moved.pose is not None and moved.transl is not None
    np.testing.assert_allclose(moved.transl, transl, atol=1e-9)
    moved_orient = axis_angle_to_matrix(torch.as_tensor(moved.pose[:3]))
    np.testing.assert_allclose(moved_orient.numpy(), camera_orient.numpy(), atol=1e-9)
    np.testing.assert_allclose(moved.pose[3:], pose[3:])


def test_check_and_present_splits(root):
    assert UP3DReader.present_splits(root) == list(UP3DReader.splits)
    assert UP3DReader(root, "lsp_test").check() == []


# --- bad input ----------------------------------------------------------------------------------


def _copy(root: Path, tmp_path: Path) -> Path:
    data_root = tmp_path / "root"
    shutil.copytree(root, data_root)
    return data_root


def test_missing_folder(tmp_path):
    with pytest.raises(MissingDataError, match=str(tmp_path / "up3d")):
        UP3DReader(tmp_path, "train")


@pytest.mark.parametrize(
    ("split", "relative"),
    [("val", "up-3d/val.txt"), ("lsp_test", "up-3d/test.txt"),
     ("s31_train", "up-s31/s31/train_31_500_pkg_dorder.txt")],
)  # fmt: skip
def test_missing_split_file(root, tmp_path, split, relative):
    data_root = _copy(root, tmp_path)
    (data_root / "up3d" / relative).unlink()
    with pytest.raises(MissingDataError, match=relative.rsplit("/", 1)[-1]):
        UP3DReader(data_root, split)
    assert split not in UP3DReader.present_splits(data_root)


def test_truncated_image(root, tmp_path):
    data_root = _copy(root, tmp_path)
    reader = UP3DReader(data_root, "train")
    path = data_root / "up3d" / "up-3d" / f"{reader.entries[0][0]}_image.png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=path.name):
        reader.record(0)


def test_nan_in_pose(root, tmp_path):
    data_root = _copy(root, tmp_path)
    reader = UP3DReader(data_root, "train")
    path = data_root / "up3d" / "up-3d" / f"{reader.entries[0][0]}_body.pkl"
    body = load_pickle(path)
    body["pose"][7] = np.nan
    path.write_bytes(dumps_legacy_pickle(body))
    with pytest.raises(DataError, match=rf"{path.name}.*'pose'"):
        reader.record(0, load_image=False)


def test_unsafe_pickle_is_refused(root, tmp_path):
    data_root = _copy(root, tmp_path)
    reader = UP3DReader(data_root, "train")
    path = data_root / "up3d" / "up-3d" / f"{reader.entries[0][0]}_body.pkl"
    marker = tmp_path / "executed"
    path.write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    with pytest.raises(UnsafePickleError, match="system"):
        reader.record(0, load_image=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text", ["201 145 0 201", "201 145 0 201 0 x", "0 145 0 201 0 145", "201 145 0 9999 0 145"]
)
def test_malformed_fit_crop_info(root, tmp_path, text):
    data_root = _copy(root, tmp_path)
    reader = UP3DReader(data_root, "train")
    path = data_root / "up3d" / "up-3d" / f"{reader.entries[0][0]}_fit_crop_info.txt"
    path.write_text(text + "\n")
    with pytest.raises(DataError, match=path.name):
        reader.record(0, load_image=False)


def test_fit_crop_outside_the_image(tmp_path):
    path = tmp_path / "00000_fit_crop_info.txt"
    path.write_text("201 145 0 202 0 145\n")
    with pytest.raises(DataError, match="does not fit the 201x145 image"):
        read_fit_crop(path, (201, 145))


def test_part_labels_are_rendered_from_the_fit(root, reader_options):
    """BodyNet's UP-3D segmentation targets come from the SMPL fits: the rendered 24-part map
    covers what the distributed render of the fit covers."""
    reader = UP3DReader(root, "train", reader_options)
    for index in range(len(reader)):
        record = reader.record(index)
        assert record.flags["has_part_segm"] and record.part_segm is not None
        assert record.part_segm.shape == record.image_size and record.part_segm.max() <= 24
        up_id = record.meta["up3d_id"]
        render = np.asarray(Image.open(root / "up3d" / "up-3d" / f"{up_id}_render_light.png"))
        fit = render.min(axis=2) < 255
        parts = record.part_segm > 0
        assert (fit & parts).sum() / (fit | parts).sum() > 0.9, up_id
    without = UP3DReader(root, "train", ReaderOptions(render_part_labels=False))
    record = without.record(0)
    assert not record.flags["has_part_segm"] and record.part_segm is None
