"""People on a ground plane for the multi-person synthetic worlds: contact, view, no overlap."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.coco import default_intrinsics
from datamodules.synthetic.ground import interpenetrate, place_group, rest_vertices
from datamodules.synthetic.prior import sample_betas, sample_pose_sequence
from datamodules.synthetic.render import Person, SceneRenderer


@pytest.fixture(scope="module")
def renderer(body_models_root) -> SceneRenderer:
    return SceneRenderer(body_models_root)


def _person(renderer: SceneRenderer, rng: np.random.Generator) -> Person:
    pose = sample_pose_sequence(rng, 1, still=True)
    return Person(pose, sample_betas(rng), np.zeros((1, 3)), "neutral", renderer.random_colors(rng))


def test_interpenetration_is_detected_only_when_bodies_intersect(renderer):
    rng = np.random.default_rng(0)
    body = rest_vertices(renderer, _person(renderer, rng))
    assert interpenetrate(body, body + np.array([0.1, 0.0, 0.05]), renderer.faces)
    assert not interpenetrate(body, body + np.array([1.5, 0.0, 0.0]), renderer.faces)
    # Same place, one body moved back by its depth extent and a little: boxes just apart.
    extent = body.max(axis=0) - body.min(axis=0)
    assert not interpenetrate(body, body + np.array([0.0, 0.0, 1.01 * extent[2]]), renderer.faces)


def test_group_stands_on_the_ground_in_view_without_intersections(renderer):
    rng = np.random.default_rng(3)
    K = default_intrinsics(640, 480)
    people = [_person(renderer, rng) for _ in range(5)]
    place_group(renderer, people, K, (480, 640), rng, (3.0, 6.0), camera_height=1.6)
    bodies = [renderer.pose(p).vertices[0].astype(np.float64) for p in people]
    for k, body in enumerate(bodies):
        assert body[:, 1].max() == pytest.approx(1.6, abs=1e-5)  # lowest point on the ground
        centre = body.mean(axis=0)
        assert 3.0 - 1.0 < centre[2] < 6.0 + 1.0
        u = K[0, 0] * centre[0] / centre[2] + K[0, 2]
        assert 0 <= u < 640
        for other in bodies[k + 1 :]:
            assert not interpenetrate(body, other, renderer.faces)
