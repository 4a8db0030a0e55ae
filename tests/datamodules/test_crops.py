"""crop_from_scene, the scene sample and the augmentation draws, on records rendered in memory."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from body import joint_sets
from datamodules.augment import Augmentation
from datamodules.crops import CropParams, crop_from_scene, to_tensors, warp_image
from datamodules.scenes import collate_scenes, scene_sample
from datamodules.synthetic.render import SceneRenderer
from geometry.cameras import project_points
from geometry.rasterizer import rasterize
from tests.datamodules.scene_fixtures import rendered_record

S = 128
AUGMENTED = CropParams(scale=1.15, shift=(0.05, -0.04), rotation=0.35, flip=True)


@pytest.fixture(scope="module")
def renderer(body_models_root) -> SceneRenderer:
    return SceneRenderer(body_models_root)


@pytest.fixture(scope="module")
def record(renderer):
    return rendered_record(renderer, seed=3, people=2)


def _root(renderer, betas):
    return (
        renderer.models["neutral"]
        .rest_root_joint(torch.as_tensor(betas[None]).float())[0]
        .double()
        .numpy()
    )


def _posed(renderer, pose, betas, transl):
    with torch.no_grad():
        out = renderer.models["neutral"](
            torch.as_tensor(pose[None]).float(),
            torch.as_tensor(betas[None]).float(),
            torch.as_tensor(transl[None]).float(),
        )
    return out.vertices[0].double().numpy(), out.keypoints[0].double().numpy()


@pytest.mark.parametrize("params", [CropParams(), AUGMENTED, CropParams(rotation=-0.5)])
def test_crop_keypoints3d_project_onto_crop_keypoints2d(renderer, record, params):
    person = record.people[0]
    crop = crop_from_scene(record, 0, S, params, root_joint=_root(renderer, person.betas))
    projected = project_points(torch.as_tensor(crop.keypoints3d[:, :3]), torch.as_tensor(crop.K))
    np.testing.assert_allclose(projected.numpy(), crop.keypoints2d[:, :2], atol=1e-3)
    assert crop.K[0, 1] == 0 and crop.K[1, 0] == 0  # scaled and shifted, never rotated


@pytest.mark.parametrize("params", [CropParams(rotation=0.35), AUGMENTED])
def test_moved_smpl_reproduces_moved_keypoints(renderer, record, params):
    person = record.people[0]
    crop = crop_from_scene(record, 0, S, params, root_joint=_root(renderer, person.betas))
    _, keypoints = _posed(renderer, crop.pose, crop.betas, crop.transl)
    np.testing.assert_allclose(keypoints, crop.keypoints3d[:, :3], atol=2e-5)


def test_flip_moves_left_wrist_to_right_slot_at_mirrored_x(renderer, record):
    root = _root(renderer, record.people[0].betas)
    plain = crop_from_scene(record, 0, S, CropParams(), root_joint=root)
    flipped = crop_from_scene(record, 0, S, CropParams(flip=True), root_joint=root)
    left, right = (joint_sets.CANONICAL_NAMES.index(n) for n in ("left_wrist", "right_wrist"))
    assert flipped.keypoints2d[right, 0] == pytest.approx(
        S - 1 - plain.keypoints2d[left, 0], abs=1e-6
    )
    assert flipped.keypoints2d[right, 1] == pytest.approx(plain.keypoints2d[left, 1], abs=1e-6)
    np.testing.assert_allclose(
        flipped.image.astype(float), plain.image[:, ::-1].astype(float), atol=2
    )


def test_flipped_smpl_mesh_is_the_mirrored_mesh_through_the_symmetry_map(
    renderer, record, body_models_root
):
    person = record.people[0]
    root = _root(renderer, person.betas)
    flipped = crop_from_scene(record, 0, S, CropParams(flip=True), root_joint=root)
    symmetry = np.load(body_models_root / "mannequin" / "extras" / "vert_sym_idxs.npy")
    original, _ = _posed(renderer, person.pose, person.betas, person.transl)
    mirrored, _ = _posed(renderer, flipped.pose, flipped.betas, flipped.transl)
    expected = original[symmetry] * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(mirrored, expected, atol=2e-5)


def test_flip_swaps_part_labels_and_mirrors_the_maps(renderer, record):
    root = _root(renderer, record.people[0].betas)
    plain = crop_from_scene(record, 0, S, CropParams(), root_joint=root)
    flipped = crop_from_scene(record, 0, S, CropParams(flip=True), root_joint=root)
    swap = np.array([0, *(p + 1 for p in joint_sets.SMPL_FLIP_PERMUTATION)])
    agreement = (swap[plain.part_segm[:, ::-1]] == flipped.part_segm).mean()
    assert agreement > 0.999
    assert (plain.mask[:, ::-1] == flipped.mask).mean() > 0.999


@pytest.mark.parametrize(
    ("params", "min_labels"),
    # Resampling the native map costs a few percent at part borders; with a flip, faces are
    # labelled by their first vertex, which the mirror map does not preserve, so borders move.
    [(CropParams(scale=1.1, rotation=0.35), 0.93), (AUGMENTED, 0.85)],
)
def test_crop_part_labels_match_a_render_of_the_moved_body(renderer, record, params, min_labels):
    person = record.people[0]
    crop = crop_from_scene(record, 0, S, params, root_joint=_root(renderer, person.betas))
    vertices, _ = _posed(renderer, crop.pose, crop.betas, crop.transl)
    faces = renderer.faces
    face = rasterize(
        torch.as_tensor(vertices[None]).float(),
        faces,
        torch.as_tensor(crop.K[None]).float(),
        (S, S),
    ).face_index[0]
    labels = torch.where(face >= 0, renderer.vertex_parts[faces[face.clamp(min=0), 0]] + 1, 0)
    covered = (labels.numpy() > 0) | (crop.part_segm > 0)
    assert (labels.numpy() == crop.part_segm)[covered].mean() > min_labels
    assert ((labels.numpy() > 0) == crop.mask)[covered].mean() > 0.96


def test_crop_keeps_only_its_person_in_the_maps(record):
    import cv2

    crop = crop_from_scene(record, 1, S, CropParams(scale=2.5))
    matrix = crop.meta["crop_matrix"][:2]
    instances = cv2.warpAffine(record.instance_map, matrix, (S, S), flags=cv2.INTER_NEAREST)
    other = instances == 1
    assert other.any(), "the crop must show part of the other person"
    assert not (crop.part_segm[other] > 0).any() and not crop.mask[other].any()
    assert (crop.mask == (instances == 2)).all()


def test_rotation_of_smpl_without_root_joint_is_refused(record):
    with pytest.raises(ValueError, match="root joint"):
        crop_from_scene(record, 0, S, CropParams(rotation=0.2))


def test_to_tensors_gives_the_documented_crop_sample(record):
    sample = to_tensors(crop_from_scene(record, 0, S))
    assert sample["image"].shape == (3, S, S) and sample["image"].dtype == torch.float32
    assert sample["part_segm"].dtype == torch.int64 and sample["mask"].dtype == torch.bool
    assert sample["keypoints2d"].shape == (101, 3) and sample["keypoints3d"].shape == (101, 4)
    assert sample["has_smpl"] and sample["has_camera"] and not sample["keypoints3d_root_relative"]


def test_scene_sample_transforms_K_keypoints_and_pads(record):
    sample = scene_sample(record, (200, 200))
    keypoints3d = sample["keypoints3d"][:, :, :3].double()
    projected = project_points(keypoints3d, sample["K"].double())
    np.testing.assert_allclose(
        projected.numpy(), sample["keypoints2d"][:, :, :2].numpy(), atol=1e-2
    )
    assert sample["image"].shape == (3, 200, 200)
    assert sample["instance_map"].max() == 2
    small = scene_sample(record, (120, 160))
    small["gender"] = small["gender"][:1]
    for name in ("boxes", "keypoints2d", "keypoints3d", "pose", "betas", "transl", "has_smpl"):
        small[name] = small[name][:1]
    batch = collate_scenes(
        [
            sample,
            {
                **small,
                "image": sample["image"],
                "K": sample["K"],
                **{k: sample[k] for k in ("part_segm", "instance_map", "mask", "ignore_mask")},
            },
        ]
    )
    assert batch["person_valid"].tolist() == [[True, True], [True, False]]
    assert batch["keypoints2d"].shape == (2, 2, 101, 3)


def test_augmentation_names_are_checked_and_draws_are_reproducible():
    with pytest.raises(ValueError, match="valid names"):
        Augmentation(["jitter", "mixup"])
    augmentation = Augmentation(["jitter", "scale", "rotation", "flip"])
    first = [augmentation.crop_params(np.random.default_rng(7)) for _ in range(2)]
    assert first[0] == first[1]
    box = np.array([10.0, 20.0, 110.0, 220.0])
    partial = Augmentation(["partial_crop"], partial_crop_prob=1.0)
    cut = partial.partial_box(box, np.random.default_rng(0))
    kept = (cut[2] - cut[0]) * (cut[3] - cut[1]) / (100.0 * 200.0)
    assert 0.5 - 1e-9 <= kept <= 0.7 + 1e-9
    assert Augmentation().partial_box(box, np.random.default_rng(0)) is box


def test_shrinking_warps_are_anti_aliased():
    checks = (np.indices((400, 400)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(checks[..., None], 3, axis=2)
    matrix = np.array([[0.26, 0.0, 3.0], [0.0, 0.26, 2.0]])  # shrink by 3.85
    aliased = cv2.warpAffine(image, matrix, (64, 64), flags=cv2.INTER_LINEAR)[8:56, 8:56]
    smooth = warp_image(image, matrix, (64, 64))[8:56, 8:56]
    assert aliased.std() > 40  # plain bilinear sampling turns the checks into noise
    assert smooth.std() < 6 and abs(smooth.mean() - 127.5) < 6


def test_anti_aliasing_blurs_only_the_region_read_but_equals_a_full_blur():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    angle, shrink = 0.4, 3.0
    linear = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / shrink
    matrix = np.concatenate([linear, [[-20.0], [-40.0]]], axis=1)
    full = cv2.GaussianBlur(image, (0, 0), (shrink - 1.0) / 2.0)
    expected = cv2.warpAffine(full, matrix, (48, 48), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones((300, 400), np.uint8), matrix, (48, 48)) > 0
    assert inside.mean() > 0.9
    difference = np.abs(warp_image(image, matrix, (48, 48)).astype(int) - expected)
    assert difference[inside].max() <= 1


def test_unscaled_warps_are_not_blurred(record):
    matrix = np.array([[1.0, 0.0, -30.0], [0.0, 1.0, -20.0]])
    expected = cv2.warpAffine(record.image, matrix, (S, S), flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(warp_image(record.image, matrix, (S, S)), expected)
