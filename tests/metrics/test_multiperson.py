"""Multi-person metrics and matching: depth order, collisions, LoCO detection, COCO keypoint
AP on real COCO annotations, the matching strategies, MuPoTS-3D and CRMH's Panoptic rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import trimesh

import metrics
from metrics.matching import box_iou
from metrics.multiperson import rescale_bone_lengths
from tests.conftest import SHARED_SAMPLES
from tests.metrics import references as ref

# ----------------------------------------------------------------------------- depth order


def depth_value(metric, preds, target, valid=None) -> float:
    metric.update(torch.tensor(preds), torch.tensor(target), valid)
    return float(metric.compute())


def test_depth_order_counts_unordered_pairs_and_a_predicted_tie_is_wrong() -> None:
    target = [[2.0, 3.0, 4.0]]
    assert depth_value(metrics.DepthOrderAccuracy(), [[2.5, 3.5, 9.0]], target) == 100.0
    assert depth_value(metrics.DepthOrderAccuracy(), [[3.0, 3.0, 9.0]], target) == pytest.approx(
        200 / 3
    )
    assert depth_value(metrics.DepthOrderAccuracy(), [[5.0, 4.0, 3.0]], target) == 0.0
    hidden = torch.tensor([[True, True, False]])
    assert depth_value(metrics.DepthOrderAccuracy(), [[3.0, 2.0, 9.0]], target, hidden) == 0.0


def test_depth_order_skips_ground_truth_gaps_up_to_min_gap() -> None:
    target = [[2.0, 2.04, 4.0]]
    preds = [[2.1, 2.0, 5.0]]  # the close pair is reversed
    assert depth_value(metrics.DepthOrderAccuracy(), preds, target) == pytest.approx(200 / 3)
    assert depth_value(metrics.DepthOrderAccuracy(min_gap_m=0.05), preds, target) == 100.0
    ties = [[3.0, 3.0]]  # exact ties are skipped by default: nothing to count
    assert math.isnan(depth_value(metrics.DepthOrderAccuracy(), [[1.0, 2.0]], ties))


def test_depth_order_pcrd_three_classes() -> None:
    target = [[2.0, 2.2, 4.0]]  # pairs: equal (0.2 < 0.3), farther, farther
    assert (
        depth_value(metrics.DepthOrderAccuracy(variant="pcrd"), [[3.0, 3.1, 5.0]], target) == 100.0
    )
    # The first pair predicted 0.25 apart is not "equal" (tolerance 0.2): wrong.
    assert depth_value(
        metrics.DepthOrderAccuracy(variant="pcrd"), [[3.0, 3.25, 5.0]], target
    ) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="min_gap_m applies to variant='sign' only"):
        metrics.DepthOrderAccuracy(min_gap_m=0.1, variant="pcrd")


# ----------------------------------------------------------------------------- collisions


def box(centre, extents) -> tuple[torch.Tensor, torch.Tensor]:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(centre)
    return torch.as_tensor(mesh.vertices), torch.as_tensor(mesh.faces)


def collision_results(people, faces, grid=64) -> dict[str, float]:
    metric = metrics.CollisionScores(grid=grid)
    metric.update(people, faces)
    return metric.results()


@pytest.mark.parametrize("overlap", [0.1, 0.15, 0.25])
def test_two_interpenetrating_boxes(overlap) -> None:
    """Two 0.5 x 0.4 x 0.3 m boxes overlapping by `overlap` along x (and shifted 2 cm in y).

    The grid discretises each overlap face to within about a cell (9.4 mm here), so the
    5 % tolerance holds for overlaps of 10 cells and more."""
    first, faces = box([0.0, 0.0, 3.0], [0.5, 0.4, 0.3])
    second, _ = box([0.5 - overlap, 0.02, 3.0], [0.5, 0.4, 0.3])
    result = collision_results([first, second], faces)
    expected_litres = 1000 * 0.4 * 0.3 * overlap - 1000 * 0.02 * 0.3 * overlap  # shifted in y
    assert result["collisions/num_collisions_count"] == 1
    assert result["collisions/mean_volume_l"] == pytest.approx(expected_litres, rel=0.05)


def test_separated_boxes_and_lonely_people_do_not_collide() -> None:
    first, faces = box([0.0, 0.0, 3.0], [0.5, 0.4, 0.3])
    second, _ = box([0.51, 0.0, 3.0], [0.5, 0.4, 0.3])
    result = collision_results([first, second], faces)
    assert result["collisions/num_collisions_count"] == 0
    assert result["collisions/mean_volume_l"] == 0.0
    metric = metrics.CollisionScores()
    metric.update([first], faces)
    metric.update([], faces)
    assert metric.results() == {
        "collisions/num_collisions_count": 0.0,
        "collisions/mean_volume_l": 0.0,
        "collisions/num_images_count": 2.0,
    }


def test_overlapping_spheres_match_the_lens_volume() -> None:
    """Two spheres of radius r at distance d share pi (4r + d)(2r - d)^2 / 12."""
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.25)
    faces = torch.as_tensor(mesh.faces)
    first = torch.as_tensor(mesh.vertices)
    people = [first, first + torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64), first + 2.0]
    radius, distance = 0.25, 0.3
    lens = math.pi * (4 * radius + distance) * (2 * radius - distance) ** 2 / 12
    result = collision_results(people, faces)
    assert result["collisions/mean_volume_l"] == pytest.approx(1000 * lens, rel=0.05)


def test_collision_inputs_are_checked() -> None:
    first, faces = box([0.0, 0.0, 3.0], [0.5, 0.4, 0.3])
    with pytest.raises(ValueError, match="faces index outside the 8 vertices"):
        metrics.CollisionScores().update([first, first], faces + 10)
    with pytest.raises(ValueError, match=r"vertices\[1\] must have shape \(V, 3\).*V = 8"):
        metrics.CollisionScores().update([first, first[:5]], faces)


# ----------------------------------------------------------------------------- LoCO detection


def detection_results(preds, target, thresholds=(0.4, 0.8, 1.2)) -> dict[str, float]:
    metric = metrics.JointDetectionScores(thresholds)
    metric.update(
        [torch.tensor(p, dtype=torch.float64).reshape(-1, 4) for p in preds],
        [torch.tensor(g, dtype=torch.float64).reshape(-1, 4) for g in target],
    )
    return metric.results()


def test_loco_worked_example() -> None:
    result = detection_results([[[0, 0.5, 0, 0]]], [[[0, 0, 0, 0], [0, 1, 0, 0]]], (0.8,))
    assert result["joint_detection/precision_pct@0.8"] == pytest.approx(100.0)
    assert result["joint_detection/recall_pct@0.8"] == pytest.approx(50.0)
    assert result["joint_detection/f1_pct@0.8"] == pytest.approx(200 / 3)


def test_loco_matching_is_not_hungarian() -> None:
    """Both ground-truth joints keep prediction p in the row pass, so q is lost; an optimal
    assignment would match both."""
    target = [[0, 0.0, 0, 0], [0, 0.5, 0, 0]]
    preds = [[0, 0.3, 0, 0], [0, -0.4, 0, 0]]
    result = detection_results([preds], [target], (1.0,))
    assert result["joint_detection/recall_pct@1"] == pytest.approx(50.0)
    cost = torch.cdist(torch.tensor(target)[:, 1:], torch.tensor(preds)[:, 1:])
    assert (metrics.hungarian(cost) >= 0).sum() == 2


def test_loco_types_must_match_and_empty_sides() -> None:
    assert (
        detection_results([[[1, 0, 0, 0]]], [[[0, 0, 0, 0]]])["joint_detection/f1_pct@1.2"] == 0.0
    )
    both_empty = detection_results([[]], [[]])
    assert set(both_empty.values()) == {100.0}
    only_preds = detection_results([[[0, 0, 0, 0]]], [[]])
    only_target = detection_results([[]], [[[0, 0, 0, 0]]])
    assert set(only_preds.values()) == set(only_target.values()) == {0.0}
    # Images are averaged: one perfect and one empty-sided image give 50.
    assert (
        detection_results([[], [[0, 0, 0, 0]]], [[[0, 0, 0, 0]], [[0, 0, 0, 0]]])[
            "joint_detection/f1_pct@0.4"
        ]
        == 50.0
    )


def test_detection_thresholds_are_inclusive_and_name_keys() -> None:
    result = detection_results([[[0, 0.4, 0, 0]]], [[[0, 0, 0, 0]]], (0.0, 0.4))
    assert result == {
        "joint_detection/precision_pct@0": 0.0,
        "joint_detection/recall_pct@0": 0.0,
        "joint_detection/f1_pct@0": 0.0,
        "joint_detection/precision_pct@0.4": 100.0,
        "joint_detection/recall_pct@0.4": 100.0,
        "joint_detection/f1_pct@0.4": 100.0,
    }


# ----------------------------------------------------------------------------- COCO keypoint AP


@pytest.fixture(scope="module")
def coco_annotations() -> dict:
    path = SHARED_SAMPLES / "coco" / "annotations" / "mmpose_test_coco.json"
    if not path.exists():
        pytest.skip(f"real COCO sample annotations not found at {path}")
    return json.loads(path.read_text())


def coco_inputs(dataset: dict, rng: np.random.Generator, noise: float):
    """Per-image tensors of the real annotations and noisy predictions from them."""
    preds, target, results = [], [], []
    for image in dataset["images"]:
        people = [a for a in dataset["annotations"] if a["image_id"] == image["id"]]
        keypoints = np.array([a["keypoints"] for a in people], dtype=np.float64).reshape(-1, 17, 3)
        guess = keypoints.copy()
        guess[..., :2] += rng.normal(0, noise, guess[..., :2].shape)
        guess[..., 2] = 1.0
        scores = rng.random(len(people))
        target.append(
            {
                "keypoints": torch.as_tensor(keypoints),
                "area": torch.tensor([a["area"] for a in people]),
                "bbox": torch.tensor([a["bbox"] for a in people]),
                "iscrowd": torch.tensor([a["iscrowd"] for a in people]),
            }
        )
        preds.append({"keypoints": torch.as_tensor(guess), "scores": torch.as_tensor(scores)})
        results += [
            {
                "image_id": image["id"],
                "category_id": 1,
                "keypoints": g.reshape(-1).tolist(),
                "score": s,
            }
            for g, s in zip(guess, scores, strict=True)
        ]
    return preds, target, results


def test_keypoint_ap_on_real_coco_annotations_matches_pycocotools(coco_annotations) -> None:
    preds, target, results = coco_inputs(coco_annotations, np.random.default_rng(0), noise=8.0)
    stats = ref.pycocotools_keypoint_stats(coco_annotations, results)
    metric = metrics.KeypointAP()
    metric.update(preds, target)
    result = metric.results()
    assert result["keypoint/ap_pct"] == pytest.approx(100 * stats[0], abs=1e-9)
    assert result["keypoint/ap_pct@0.5"] == pytest.approx(100 * stats[1], abs=1e-9)
    assert result["keypoint/ar_pct@0.5"] == pytest.approx(100 * stats[6], abs=1e-9)
    assert 5.0 < result["keypoint/ap_pct"] < 95.0  # a non-trivial value


def test_keypoint_ap_reads_coco_records_as_pycocotools_does(coco_annotations) -> None:
    """The real annotation records and COCO-format results, passed as they are on disk."""
    _, _, results = coco_inputs(coco_annotations, np.random.default_rng(2), noise=5.0)
    stats = ref.pycocotools_keypoint_stats(coco_annotations, results)
    metric = metrics.KeypointAP()
    metric.update(results, coco_annotations["annotations"])
    result = metric.results()
    assert result["keypoint/ap_pct"] == pytest.approx(100 * stats[0], abs=1e-9)
    assert result["keypoint/ar_pct@0.5"] == pytest.approx(100 * stats[6], abs=1e-9)
    with pytest.raises(ValueError, match="keypoints must hold 3 x 17 values, got 3"):
        metrics.KeypointAP().update([{**results[0], "keypoints": [1, 2, 3]}], [])


def test_keypoint_ap_of_perfect_predictions_is_100(coco_annotations) -> None:
    preds, target, _ = coco_inputs(coco_annotations, np.random.default_rng(1), noise=0.0)
    for pred, truth in zip(preds, target, strict=True):  # people without keypoints are ignored
        labelled = (truth["keypoints"][..., 2] > 0).any(dim=1)
        pred["keypoints"], pred["scores"] = pred["keypoints"][labelled], pred["scores"][labelled]
    metric = metrics.KeypointAP()
    metric.update(preds, target)
    assert set(metric.results().values()) == {100.0}


def test_keypoint_ap_without_predictions_or_people() -> None:
    person = {
        "keypoints": torch.ones(1, 17, 3) * 10,
        "area": torch.tensor([100.0]),
        "bbox": torch.tensor([[5.0, 5.0, 10.0, 10.0]]),
    }
    nobody = {"keypoints": torch.zeros(0, 17, 3), "scores": torch.zeros(0)}
    metric = metrics.KeypointAP()
    metric.update([nobody], [person])
    assert set(metric.results().values()) == {0.0}
    metric = metrics.KeypointAP()
    metric.update(
        [nobody],
        [{"keypoints": torch.zeros(0, 17, 3), "area": torch.zeros(0), "bbox": torch.zeros(0, 4)}],
    )
    assert all(math.isnan(v) for v in metric.results().values())
    with pytest.raises(ValueError, match=r"target\[0\]: missing key 'bbox'"):
        metrics.KeypointAP().update(
            [nobody], [{"keypoints": torch.zeros(0, 17, 3), "area": torch.zeros(0)}]
        )


# ----------------------------------------------------------------------------- matching


def test_argmin3d_allows_duplicates_and_uses_joints_visible_for_everyone() -> None:
    target = torch.zeros(2, 3, 3)
    target[1, 1:] += 0.5  # person 1 differs from person 0 on joints 1 and 2
    preds = target[:1].clone()
    assert metrics.argmin3d(preds, target).tolist() == [0, 0]  # both take the only prediction
    preds = torch.stack([target[0], target[1]])
    preds[0, 2] += 3.0  # prediction 0 is far off on joint 2 only
    visible = torch.tensor([[True, True, False], [True, True, True]])
    assert metrics.argmin3d(preds, target, visible).tolist() == [0, 1]  # joint 2 not compared
    assert metrics.argmin3d(preds, target).tolist() == [1, 1]
    assert metrics.argmin3d(torch.zeros(0, 3, 3), target).tolist() == [-1, -1]


def test_greedy2d_takes_the_cheapest_pair_first_and_gates_on_iou() -> None:
    # Ground truth A at x = 0 and B at x = 10; predictions p at 6 and q at 13.
    target = torch.tensor([[[0.0, 0.0]], [[10.0, 0.0]]])
    preds = torch.tensor([[[6.0, 0.0]], [[13.0, 0.0]]])
    visible = torch.ones(2, 1, dtype=torch.bool)
    boxes = torch.tensor([[-50.0, -50.0, 60.0, 50.0]]).repeat(2, 1)
    # Cheapest pair B-q (3), then A-p (6): optimal as well here.
    assert metrics.greedy2d(preds, target, visible, boxes, boxes).tolist() == [0, 1]
    # With p at 9: B-p (1) goes first and A must take q (13), although A-p + B-q = 12 < 14.
    preds[0, 0, 0] = 9.0
    assert metrics.greedy2d(preds, target, visible, boxes, boxes).tolist() == [1, 0]
    cost = torch.tensor([[9.0, 13.0], [1.0, 3.0]])
    assert metrics.hungarian(cost).tolist() == [0, 1]
    far = torch.tensor([[500.0, 500.0, 600.0, 600.0]]).repeat(2, 1)
    assert metrics.greedy2d(preds, target, visible, far, boxes).tolist() == [-1, -1]


def test_box_iou_known_values() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0]])
    assert box_iou(a, b).tolist() == [[pytest.approx(1 / 7), 0.0]]


def test_hungarian_respects_max_cost_and_rectangles() -> None:
    cost = torch.tensor([[1.0, 2.0, 8.0], [2.0, 9.0, 9.0]])
    assert metrics.hungarian(cost).tolist() == [1, 0]
    assert metrics.hungarian(cost, max_cost=1.5).tolist() == [0, -1]
    assert metrics.hungarian(torch.zeros(2, 0)).tolist() == [-1, -1]
    assert metrics.hungarian(torch.full((2, 2), math.inf)).tolist() == [-1, -1]


def test_fill_missed_charges_150_mm() -> None:
    errors = torch.tensor([40.0, 70.0, 0.0])
    assert metrics.fill_missed(errors, torch.tensor([2, -1, 0])).tolist() == [40.0, 150.0, 0.0]


def test_mupots_identity_matching_against_the_matlab_rule() -> None:
    rng = np.random.default_rng(4)
    for _ in range(30):
        target = rng.uniform(0, 400, (rng.integers(0, 5), 17, 2))
        preds = np.concatenate(
            [target + rng.normal(0, 30, target.shape), rng.uniform(0, 400, (2, 17, 2))]
        )
        preds = preds[rng.permutation(len(preds))]
        preds[rng.random(preds.shape[:2]) < 0.2] = 0.0  # missing predicted joints
        expected = ref.mupots_match(target, preds)
        actual = metrics.mupots_identity_matching(torch.as_tensor(preds), torch.as_tensor(target))
        assert actual.tolist() == expected


# ----------------------------------------------------------------------------- MuPoTS, Panoptic


def test_bone_rescaling_keeps_directions_and_takes_ground_truth_lengths() -> None:
    from body.joint_sets import root_index, skeleton

    parents, traversal = skeleton("mupots_17")
    rng = np.random.default_rng(5)
    target = torch.as_tensor(rng.normal(0, 0.3, (17, 3)))
    preds = torch.as_tensor(rng.normal(0, 0.3, (17, 3)))
    rescaled = rescale_bone_lengths(preds, target, parents, traversal)
    root = root_index("mupots_17")
    assert torch.equal(rescaled[root], preds[root])
    for joint in traversal:
        bone, original = (
            rescaled[joint] - rescaled[parents[joint]],
            preds[joint] - preds[parents[joint]],
        )
        assert float(bone.norm()) == pytest.approx(
            float((target[joint] - target[parents[joint]]).norm())
        )
        assert float(torch.nn.functional.cosine_similarity(bone, original, dim=0)) == pytest.approx(
            1.0
        )


def mupots_value(metric, preds_2d, preds_3d, target_2d, target_3d, sequence=(1,)):
    metric.update(preds_2d, preds_3d, target_2d, target_3d, list(sequence))
    return {k: float(v) for k, v in metric.compute().items()}


def test_mupots_all_vs_matched_and_bone_lengths() -> None:
    rng = np.random.default_rng(6)
    target_3d = torch.as_tensor(rng.normal(0, 0.3, (2, 17, 3))) + torch.tensor([0.0, 0.0, 4.0])
    target_2d = torch.as_tensor(rng.uniform(0, 800, (2, 17, 2)))
    # Person 0 predicted with every bone twice too long; person 1 missed.
    pelvis = target_3d[0, 14]
    preds_3d = (2.0 * (target_3d[:1] - pelvis) + pelvis).float()
    result = mupots_value(
        metrics.MuPoTSPCK(), [target_2d[:1]], [preds_3d], [target_2d], [target_3d]
    )
    assert result == {"pck_all": pytest.approx(50.0), "pck_matched": pytest.approx(100.0)}


def test_mupots_sequences_are_averaged_not_pooled() -> None:
    rng = np.random.default_rng(7)
    target_3d = torch.as_tensor(rng.normal(0, 0.3, (1, 17, 3)))
    target_2d = torch.as_tensor(rng.uniform(0, 800, (1, 17, 2)))
    missing = torch.zeros(0, 17, 2), torch.zeros(0, 17, 3)
    metric = metrics.MuPoTSPCK(num_sequences=20)
    # Sequence 1: one person, found. Sequence 2: three images of one person, all missed.
    metric.update([target_2d], [target_3d], [target_2d], [target_3d], [1])
    metric.update([missing[0]] * 3, [missing[1]] * 3, [target_2d] * 3, [target_3d] * 3, [2, 2, 2])
    result = metric.compute()
    assert float(result["pck_all"]) == pytest.approx(50.0)  # pooled would be 25
    assert float(result["pck_matched"]) == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r"sequence 21 is outside 1\.\.20"):
        metric.update([target_2d], [target_3d], [target_2d], [target_3d], [21])


def test_panoptic_invisible_joints_count_as_zero_but_stay_in_the_denominator() -> None:
    target = torch.zeros(1, 4, 3)
    target[0, 1:, 0] = torch.tensor([0.1, 0.2, 0.3])
    preds = target.clone()
    preds[0, 1:, 1] += 0.04  # every non-root joint 40 mm off
    visible = torch.tensor([[True, True, False, True]])
    metric = metrics.PanopticMPJPE(groups=("haggling", "mafia"))
    metric.update([preds], [target], [visible], ["mafia"])
    result = metric.results()
    assert result["panoptic_mpjpe/mafia_mm"] == pytest.approx(40.0 * 2 / 4)
    assert math.isnan(result["panoptic_mpjpe/haggling_mm"])
    assert result["panoptic_mpjpe/mean_mm"] == pytest.approx(20.0)
    with pytest.raises(ValueError, match="unknown group 'pizza'"):
        metric.update([preds], [target], [visible], ["pizza"])
