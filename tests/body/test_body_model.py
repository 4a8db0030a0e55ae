"""BodyModel: loading, named keypoints, dtype/device following, clear errors."""

import json
import shutil

import numpy as np
import pytest
import torch

from body import BodyModel, BodyModelFilesError, ensure_body_model, joint_sets
from geometry.rotations import axis_angle_to_matrix


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(BodyModelFilesError) as error:
        BodyModel(tmp_path, "smpl")
    message = str(error.value)
    assert str(tmp_path / "smpl") in message
    assert "SMPL_NEUTRAL.pkl" in message
    assert "convert-smpl" in message and "make-mannequin" in message


def test_mannequin_is_generated_on_first_use(tmp_path, body_models_root):
    shutil.copytree(body_models_root / "mannequin", tmp_path / "copy")
    (tmp_path / "copy" / "smpl" / "SMPL_MALE.pkl").unlink()
    with pytest.raises(BodyModelFilesError):
        ensure_body_model(tmp_path, "copy")  # only the mannequin is generated automatically


def test_keypoints_come_from_their_sources(neutral_model, body_models_root):
    extras = body_models_root / "mannequin" / "extras"
    pose = 0.3 * torch.randn(2, 72, generator=torch.Generator().manual_seed(0))
    out = neutral_model(pose)
    vertices = out.vertices.double()
    h36m = torch.as_tensor(np.load(extras / "J_regressor_h36m.npy"))
    extra = torch.as_tensor(np.load(extras / "J_regressor_extra.npy"))
    torch.testing.assert_close(neutral_model(pose, joint_set="smpl_24").keypoints, out.joints)
    torch.testing.assert_close(
        neutral_model(pose, joint_set="h36m_17").keypoints.double(),
        torch.einsum("kv,bvc->bkc", h36m, vertices),
        atol=1e-5,
        rtol=0,
    )
    lsp = neutral_model(pose, joint_set="lsp_14").keypoints.double()
    torch.testing.assert_close(lsp[:, 13], extra[3] @ vertices, atol=1e-5, rtol=0)  # head top
    coco = neutral_model(pose, joint_set="coco_17").keypoints
    torch.testing.assert_close(coco[:, 0], out.vertices[:, 332])  # smplx's nose vertex
    jta = neutral_model(pose, joint_set="jta_22").keypoints
    landmarks = json.loads((extras / "landmarks.json").read_text())["head_center"]
    head_center = (
        torch.tensor(landmarks["weights"], dtype=torch.float64) @ vertices[:, landmarks["vertices"]]
    )
    torch.testing.assert_close(jta[:, 1].double(), head_center, atol=1e-5, rtol=0)
    spine0 = 0.5 * (out.joints[:, 0] + out.joints[:, 3])
    torch.testing.assert_close(jta[:, 11], spine0)


def test_every_joint_set_and_the_canonical_superset(neutral_model):
    pose = torch.zeros(1, 72)
    canonical = neutral_model(pose).keypoints
    assert canonical.shape == (1, len(joint_sets.CANONICAL_NAMES), 3)
    for name in joint_sets.JOINT_SETS:
        keypoints = neutral_model(pose, joint_set=name).keypoints
        assert keypoints.shape == (1, len(joint_sets.joint_names(name)), 3)
        assert torch.isfinite(keypoints).all()


def test_rotation_matrices_equal_axis_angle(neutral_model):
    pose = 0.5 * torch.randn(3, 72, generator=torch.Generator().manual_seed(1))
    matrices = axis_angle_to_matrix(pose.reshape(3, 24, 3))
    a = neutral_model(pose).vertices
    b = neutral_model(matrices).vertices
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_translation_and_dtype_follow_the_inputs(body_models_root):
    model = BodyModel(body_models_root)
    pose = torch.zeros(1, 72, dtype=torch.float64)
    transl = torch.tensor([[0.1, -0.2, 3.0]], dtype=torch.float64)
    moved = model(pose, transl=transl)
    still = model(pose)
    assert moved.vertices.dtype == torch.float64
    torch.testing.assert_close(moved.vertices - still.vertices, transl.expand(6890, 3)[None])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_constants_follow_inputs_to_the_gpu(body_models_root):
    model = BodyModel(body_models_root)
    pose = torch.zeros(2, 72, device="cuda")
    out = model(pose, joint_set="h36m_17")
    assert out.vertices.device.type == "cuda" and out.keypoints.device.type == "cuda"
    torch.testing.assert_close(out.vertices.cpu(), BodyModel(body_models_root)(pose.cpu()).vertices)


def test_bad_pose_shape_is_refused(neutral_model):
    with pytest.raises(ValueError, match="axis-angle"):
        neutral_model(torch.zeros(1, 69))


def test_missing_extras_fail_only_for_sets_that_need_them(tmp_path, body_models_root):
    shutil.copytree(body_models_root / "mannequin", tmp_path / "bare")
    (tmp_path / "bare" / "extras" / "J_regressor_h36m.npy").unlink()
    model = BodyModel(tmp_path, "bare")
    assert model(torch.zeros(1, 72), joint_set="smpl_24").keypoints.shape == (1, 24, 3)
    with pytest.raises(BodyModelFilesError, match=r"J_regressor_h36m\.npy"):
        model(torch.zeros(1, 72), joint_set="h36m_17")
