"""BodyNet's losses against values computed by hand on small known grids."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_modules.bodynet import losses

# Occupancy probabilities p[d][h][w] of one 2 x 2 x 2 grid, and the ground truth.
P = torch.tensor([[[0.9, 0.2], [0.1, 0.4]], [[0.3, 0.8], [0.6, 0.5]]], dtype=torch.float64)
V = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [1, 1]]], dtype=torch.float64)
SILHOUETTE = torch.tensor([[1, 0], [1, 1]], dtype=torch.float64)


def _logits(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p / (1 - p))


def test_views_are_maxima_over_depth_and_width() -> None:
    assert losses.front_view(P).tolist() == [[0.9, 0.8], [0.6, 0.5]]  # max over d
    assert losses.side_view(P).tolist() == [[0.9, 0.4], [0.8, 0.6]]  # [d][h], max over w


def test_reprojection_losses_equal_hand_computed_values() -> None:
    front, side = losses.reprojection_losses([_logits(P)[None]], SILHOUETTE[None], V[None])
    # front view [[.9, .8], [.6, .5]] against the silhouette [[1, 0], [1, 1]]
    expected_front = -(math.log(0.9) + math.log(0.2) + math.log(0.6) + math.log(0.5)) / 4
    # side view [[.9, .4], [.8, .6]] against the side of V: [[1, 0], [0, 1]]
    expected_side = -(math.log(0.9) + math.log(0.6) + math.log(0.2) + math.log(0.6)) / 4
    assert front.item() == pytest.approx(expected_front, rel=1e-9)
    assert side.item() == pytest.approx(expected_side, rel=1e-9)
    two_stacks = losses.reprojection_losses([_logits(P)[None]] * 2, SILHOUETTE[None], V[None])
    assert two_stacks[0].item() == pytest.approx(2 * expected_front, rel=1e-9)


def test_voxel_bce_is_eq_1_averaged() -> None:
    value = losses.voxel_bce([_logits(P)[None]], V[None]).item()
    expected = (
        -sum(
            math.log(p) if v else math.log(1 - p)
            for p, v in zip(P.flatten().tolist(), V.flatten().tolist(), strict=True)
        )
        / 8
    )
    assert value == pytest.approx(expected, rel=1e-9)


def test_part_views_take_the_max_for_parts_and_the_min_for_background() -> None:
    probabilities = torch.tensor(
        [[[[0.7, 0.2]]], [[[0.1, 0.5]]], [[[0.2, 0.3]]]], dtype=torch.float64
    )[None]  # (1, K=3, D=1, H=1, W=2)
    side = losses.part_views(probabilities, dim=-1)  # along W
    assert side.flatten().tolist() == [0.2, 0.5, 0.3]


def test_part_reprojection_losses_equal_hand_computed_values() -> None:
    # K = 2 (background, one part) on a D = 1, H = 1, W = 2 grid; the part's probabilities:
    part = torch.tensor([0.8, 0.3], dtype=torch.float64)
    zeros = torch.zeros(2, dtype=torch.float64)
    scores = torch.stack((zeros, _logits(part)))[None, :, None, None, :]  # (1, 2, 1, 1, 2)
    front_labels = torch.tensor([[[1, 0]]])  # (B, H, W): the part, then background
    voxel_labels = torch.tensor([[[[1, 0]]]])  # (B, D, H, W)
    front, side = losses.part_reprojection_losses([scores], front_labels, voxel_labels)
    # Front (one depth): background 1 - p = [0.2, 0.7] against [0, 1], part [0.8, 0.3]
    # against [1, 0]: four BCE terms, averaged.
    expected_front = -(math.log(0.8) + math.log(0.7) + math.log(0.8) + math.log(0.7)) / 4
    # Side (along W): background min(0.2, 0.7) = 0.2 against min(0, 1) = 0; part
    # max(0.8, 0.3) = 0.8 against max(1, 0) = 1.
    expected_side = -(math.log(0.8) + math.log(0.8)) / 2
    assert front.item() == pytest.approx(expected_front, rel=1e-9)
    assert side.item() == pytest.approx(expected_side, rel=1e-9)


def test_heatmap_mse_drops_absent_joints() -> None:
    target = torch.zeros(1, 2, 2, 2)
    prediction = torch.ones(1, 2, 2, 2)
    prediction[0, 1] = 3.0
    assert losses.heatmap_mse([prediction], target).item() == pytest.approx((1 + 9) / 2)
    weight = torch.tensor([[1.0, 0.0]])
    assert losses.heatmap_mse([prediction], target, weight).item() == pytest.approx(1 / 2)


def test_the_paper_weights_sum_to_one() -> None:
    weights = losses.normalised_weights(losses.PAPER_WEIGHTS)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["pose2d"] == pytest.approx(1e7 / (1e7 + 1e3 + 1e6 + 1e1 + 2))
    with pytest.raises(ValueError, match="non-negative"):
        losses.normalised_weights({"a": -1.0, "b": 2.0})
