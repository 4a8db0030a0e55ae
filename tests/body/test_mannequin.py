"""The generated mannequin: SMPL's format, a closed human-shaped surface, sound rigging."""

import hashlib
import json

import numpy as np
import pymeshlab
import pytest
import smplx
import torch
import trimesh

from body import BodyModel, flip_smpl_pose
from body.joint_sets import SMPL_PART_NAMES
from body.mannequin import build_mannequin, design
from body.safe_pickle import load_pickle
from geometry.rotations import axis_angle_to_matrix, rotation_6d_to_matrix


@pytest.fixture(scope="module")
def model_dir(body_models_root):
    return body_models_root / "mannequin"


@pytest.fixture(scope="module")
def smpl_arrays(model_dir):
    return load_pickle(model_dir / "smpl" / "SMPL_NEUTRAL.pkl")


@pytest.fixture(scope="module")
def rest_mesh(smpl_arrays):
    return trimesh.Trimesh(
        smpl_arrays["v_template"], smpl_arrays["f"].astype(np.int64), process=False
    )


def random_pose(batch, scale=0.4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, 72, generator=generator)


def test_files_have_smpl_keys_shapes_and_dtypes(model_dir, smpl_arrays):
    for gender in ("NEUTRAL", "MALE", "FEMALE"):
        assert (model_dir / "smpl" / f"SMPL_{gender}.pkl").is_file()
    a = smpl_arrays
    assert a["v_template"].shape == (6890, 3)
    assert a["f"].shape == (13776, 3) and a["f"].dtype == np.uint32
    assert a["shapedirs"].shape == (6890, 3, 10)
    assert a["posedirs"].shape == (6890, 3, 207)
    assert a["J_regressor"].shape == (24, 6890) and a["J_regressor"].format == "csc"
    assert a["weights"].shape == (6890, 24)
    assert a["kintree_table"].shape == (2, 24)
    assert a["J"].shape == (24, 3)
    for name in ("J_regressor_h36m.npy", "J_regressor_extra.npy", "vert_sym_idxs.npy",
                 "smpl_mean_params.npz", "smpl_part_segmentation.json", "landmarks.json",
                 "metadata.json"):  # fmt: skip
        assert (model_dir / "extras" / name).is_file(), name
    assert np.load(model_dir / "extras" / "J_regressor_h36m.npy").shape == (17, 6890)
    assert np.load(model_dir / "extras" / "J_regressor_extra.npy").shape == (9, 6890)
    metadata = json.loads((model_dir / "extras" / "metadata.json").read_text())
    assert metadata["kind"] == "mannequin" and metadata["generated"] is True
    assert "NOT the SMPL body model" in metadata["note"]


def test_smplx_and_body_model_give_identical_vertices(model_dir, body_models_root):
    pose, betas = random_pose(3), torch.randn(3, 10, generator=torch.Generator().manual_seed(2))
    direct = smplx.create(str(model_dir), model_type="smpl", gender="female")
    expected = direct(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:]).vertices
    ours = BodyModel(body_models_root, "mannequin", "female")(pose, betas).vertices
    assert torch.equal(ours, expected)


def test_closed_manifold_genus_zero_outward(rest_mesh):
    assert len(rest_mesh.vertices) == 6890 and len(rest_mesh.faces) == 13776
    assert rest_mesh.is_watertight and rest_mesh.is_winding_consistent
    assert rest_mesh.euler_number == 2  # genus 0
    assert rest_mesh.volume > 0  # normals point outward
    edges = np.sort(rest_mesh.edges, axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # every edge shared by exactly two faces
    assert len(np.unique(rest_mesh.faces)) == 6890  # no unreferenced vertex


def test_no_self_intersections(smpl_arrays):
    mesh_set = pymeshlab.MeshSet()
    mesh_set.add_mesh(pymeshlab.Mesh(smpl_arrays["v_template"], smpl_arrays["f"].astype(np.int32)))
    mesh_set.compute_selection_by_self_intersections_per_face()
    assert mesh_set.current_mesh().selected_face_number() == 0


def test_human_height_and_volume(model_dir):
    heights, volumes = {}, {}
    for gender in ("neutral", "male", "female"):
        arrays = load_pickle(model_dir / "smpl" / f"SMPL_{gender.upper()}.pkl")
        v = arrays["v_template"]
        heights[gender] = np.ptp(v[:, 1])
        volumes[gender] = trimesh.Trimesh(v, arrays["f"].astype(np.int64)).volume
    assert 1.65 < heights["neutral"] < 1.75
    assert 0.05 < volumes["neutral"] < 0.09  # 50-90 litres
    assert heights["female"] < heights["neutral"] < heights["male"]
    assert volumes["female"] < volumes["male"]
    span = np.ptp(load_pickle(model_dir / "smpl" / "SMPL_NEUTRAL.pkl")["v_template"][:, 0])
    assert 0.9 * heights["neutral"] < span < 1.1 * heights["neutral"]  # arm span ~ height


def test_rest_frame_is_smpls(smpl_arrays):
    joints = smpl_arrays["J"]
    assert joints[15, 1] > joints[0, 1] > joints[7, 1]  # y up: head above pelvis above ankle
    assert joints[16, 0] > 0 > joints[17, 0]  # the subject's left at +x
    nose = smpl_arrays["v_template"][332]
    assert nose[2] > joints[15, 2] + 0.05  # facing +z
    assert abs(joints[20, 1] - joints[16, 1]) < 0.05  # T-pose: arms horizontal


def test_every_regressed_joint_is_inside(rest_mesh, smpl_arrays, model_dir):
    v = smpl_arrays["v_template"]
    regressors = {
        "J_regressor": smpl_arrays["J_regressor"].toarray(),
        "h36m": np.load(model_dir / "extras" / "J_regressor_h36m.npy"),
        "extra": np.load(model_dir / "extras" / "J_regressor_extra.npy"),
    }
    for name, matrix in regressors.items():
        assert (matrix >= 0).all() and np.allclose(matrix.sum(axis=1), 1.0), name
        inside = rest_mesh.contains(matrix @ v)
        assert inside.all(), f"{name} rows outside the body: {np.flatnonzero(~inside)}"
    np.testing.assert_allclose(regressors["J_regressor"] @ v, design.rest_joints(), atol=1e-3)


def test_smplx_landmarks_sit_on_their_body_parts(smpl_arrays):
    v, joints = smpl_arrays["v_template"], smpl_arrays["J"]
    ids = design.SMPLX_LANDMARK_VERTEX_IDS
    p = {name: v[index] for name, index in ids.items()}
    head = joints[15]
    assert abs(p["nose"][0]) < 1e-9 and p["nose"][2] > v[:, 2][v[:, 1] > head[1]].max() - 0.01
    for side, sign in (("l", 1), ("r", -1)):
        eye, ear = p[f"{side}eye"], p[f"{side}ear"]
        assert sign * eye[0] > 0.01 and eye[1] > p["nose"][1] and eye[2] > head[2] + 0.05
        assert sign * ear[0] > sign * eye[0] + 0.04 and ear[2] < eye[2] - 0.05
        foot = "L" if side == "l" else "R"
        ankle = joints[7 if side == "l" else 8]
        big, small, heel = p[f"{foot}BigToe"], p[f"{foot}SmallToe"], p[f"{foot}Heel"]
        assert big[2] > ankle[2] + 0.12 and small[2] > ankle[2] + 0.12  # toes at the front
        assert heel[2] < ankle[2] - 0.02  # heel at the back
        assert max(big[1], small[1], heel[1]) < ankle[1] - 0.04  # all near the floor
        assert sign * big[0] < sign * small[0]  # big toe on the inside
        wrist = joints[20 if side == "l" else 21]
        tips = [p[f"{side}{finger}"] for finger in ("thumb", "index", "middle", "ring", "pinky")]
        assert all(sign * (t[0] - wrist[0]) > 0.08 for t in tips)  # beyond the wrist
        assert [t[2] for t in tips] == sorted((t[2] for t in tips), reverse=True)  # thumb first


def test_symmetry_map(smpl_arrays, model_dir):
    v, faces = smpl_arrays["v_template"], smpl_arrays["f"].astype(np.int64)
    sym = np.load(model_dir / "extras" / "vert_sym_idxs.npy")
    assert np.array_equal(sym[sym], np.arange(6890))
    np.testing.assert_allclose(v[sym] * [-1, 1, 1], v, atol=1e-9)
    mirrored_faces = {tuple(sorted(f)) for f in sym[faces]}
    assert mirrored_faces == {tuple(sorted(f)) for f in faces}
    assert np.array_equal(sym, smpl_arrays["vert_sym_idxs"])


def test_flipping_the_pose_mirrors_the_mesh(neutral_model, model_dir):
    sym = torch.as_tensor(np.load(model_dir / "extras" / "vert_sym_idxs.npy"))
    pose = random_pose(4, seed=3)
    betas = torch.randn(4, 10, generator=torch.Generator().manual_seed(4))
    vertices = neutral_model(pose, betas).vertices
    flipped = neutral_model(flip_smpl_pose(pose), betas).vertices
    mirrored = vertices[:, sym] * torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(flipped, mirrored, atol=1e-5, rtol=0)


def test_global_orientation_rotates_rigidly_about_the_pelvis(neutral_model):
    betas = torch.randn(1, 10, generator=torch.Generator().manual_seed(5))
    rest = neutral_model(torch.zeros(1, 72), betas)
    root = rest.joints[:, 0]
    pose = torch.zeros(1, 72)
    pose[0, :3] = torch.tensor([0.3, -1.1, 0.7])
    turned = neutral_model(pose, betas)
    rotation = axis_angle_to_matrix(pose[:, :3])[0]
    expected = (rest.vertices[0] - root) @ rotation.T + root
    torch.testing.assert_close(turned.vertices[0], expected, atol=1e-5, rtol=0)


def test_first_shape_component_changes_height_monotonically(neutral_model):
    betas = torch.zeros(13, 10)
    betas[:, 0] = torch.linspace(-3, 3, 13)
    heights = neutral_model(torch.zeros(13, 72), betas).vertices[..., 1]
    heights = heights.amax(dim=1) - heights.amin(dim=1)
    assert (heights.diff() > 0).all()
    assert 1.4 < heights[0] < 1.65 and 1.8 < heights[-1] < 2.05


@pytest.mark.parametrize("component", range(10))
def test_shapes_within_three_sigma_stay_human(neutral_model, component):
    betas = torch.zeros(2, 10)
    betas[:, component] = torch.tensor([-3.0, 3.0])
    out = neutral_model(torch.zeros(2, 72), betas)
    rest = neutral_model(torch.zeros(1, 72)).vertices
    change = (out.vertices - rest).norm(dim=-1).amax(dim=1)
    assert (change > 0.005).all(), "the component does nothing"
    for vertices in out.vertices.numpy():
        mesh = trimesh.Trimesh(vertices, neutral_model.faces.numpy(), process=False)
        assert 1.4 < np.ptp(vertices[:, 1]) < 2.05 and 0.03 < mesh.volume < 0.13
    # every joint stays inside the shaped body
    for vertices, joints in zip(out.vertices.numpy(), out.joints.numpy(), strict=True):
        mesh = trimesh.Trimesh(vertices, neutral_model.faces.numpy(), process=False)
        assert mesh.contains(joints).all()


def test_skinning_weights_follow_the_parts(smpl_arrays, model_dir):
    weights = smpl_arrays["weights"]
    assert (weights >= 0).all() and np.allclose(weights.sum(axis=1), 1.0)
    parts = json.loads((model_dir / "extras" / "smpl_part_segmentation.json").read_text())
    assert len(parts) == 24
    assigned = np.concatenate([np.asarray(ids) for ids in parts.values()])
    assert np.array_equal(np.sort(assigned), np.arange(6890))  # each vertex in one part
    for part, name in enumerate(SMPL_PART_NAMES):
        ids = np.asarray(parts[name])
        assert len(ids) > 10, name
        assert np.median(weights[ids, part]) > 0.5, name  # a part moves with its own joint
    smooth = np.sort(weights, axis=1)[:, -2] > 0.05
    assert 0.05 < smooth.mean() < 0.6  # blends exist near joints, not everywhere


def test_posed_arms_down_and_sitting_are_plausible(neutral_model):
    pose = torch.zeros(1, 72)
    pose[0, 3 * 16 + 2], pose[0, 3 * 17 + 2] = -1.2, 1.2  # arms down
    for hip in (1, 2):
        pose[0, 3 * hip] = -1.5  # thighs forward
    for knee in (4, 5):
        pose[0, 3 * knee] = 1.5  # shins back down
    out = neutral_model(pose)
    joints = out.joints[0]
    assert joints[20, 1] < joints[16, 1] - 0.3  # wrists well below shoulders
    assert joints[4, 2] > joints[1, 2] + 0.3  # knees in front of the hips
    assert abs(joints[7, 2] - joints[4, 2]) < 0.15  # ankles below the knees
    lengths = (out.vertices[0][neutral_model.faces[:, :2]].diff(dim=1)).norm(dim=-1)
    assert lengths.max() < 0.15  # no triangle torn apart by the skinning


def test_mean_params_are_spin_format(model_dir):
    params = np.load(model_dir / "extras" / "smpl_mean_params.npz")
    assert params["pose"].shape == (144,) and params["shape"].shape == (10,)
    np.testing.assert_allclose(params["cam"], [0.9, 0.0, 0.0])
    rotations = rotation_6d_to_matrix(torch.as_tensor(params["pose"]).reshape(24, 6))
    torch.testing.assert_close(
        rotations[0], torch.diag(torch.tensor([1.0, -1, -1], dtype=torch.float64))
    )
    assert not torch.allclose(rotations[16], torch.eye(3, dtype=torch.float64))  # arms relaxed


def test_generation_is_deterministic(model_dir, tmp_path):
    from body.mannequin import make_mannequin

    make_mannequin(tmp_path / "again")
    for gender in ("NEUTRAL", "MALE", "FEMALE"):
        first = (model_dir / "smpl" / f"SMPL_{gender}.pkl").read_bytes()
        second = (tmp_path / "again" / "smpl" / f"SMPL_{gender}.pkl").read_bytes()
        assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest(), gender


def test_build_returns_the_arrays_that_were_written(smpl_arrays):
    mannequin = build_mannequin()
    np.testing.assert_array_equal(mannequin.faces.astype(np.uint32), smpl_arrays["f"])
    np.testing.assert_allclose(mannequin.vertices, smpl_arrays["v_template"])
