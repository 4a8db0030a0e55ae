"""People on a ground plane for the multi-person synthetic worlds: contact, view, no overlap."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.synthetic.ground import interpenetrate, walkers
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
    body = renderer.pose(_person(renderer, rng)).vertices[0].astype(np.float64)
    assert interpenetrate(body, body + np.array([0.1, 0.0, 0.05]), renderer.faces)
    assert not interpenetrate(body, body + np.array([1.5, 0.0, 0.0]), renderer.faces)
    # Same place, one body moved back by its depth extent and a little: boxes just apart.
    extent = body.max(axis=0) - body.min(axis=0)
    assert not interpenetrate(body, body + np.array([0.0, 0.0, 1.01 * extent[2]]), renderer.faces)


def test_walkers_stand_on_the_floor_at_their_positions_without_intersections(renderer):
    rng = np.random.default_rng(3)
    step = np.array([0.05, 0.0])

    def start(rng):  # a tight cluster: some draws must be rejected
        return rng.uniform([-2.0, 3.0], [2.0, 5.0])

    people = walkers(renderer, rng, 5, 3, start, lambda rng: step)
    bodies = [renderer.pose(p).vertices.astype(np.float64) for p in people]  # (T, V, 3)
    for k, body in enumerate(bodies):
        np.testing.assert_allclose(body[:, :, 1].max(axis=1), 0.0, atol=1e-5)  # y down: floor
        middle = (body.min(axis=1) + body.max(axis=1)) / 2
        np.testing.assert_allclose(np.diff(middle[:, 0]), 0.05, atol=1e-5)  # walks its step
        for other in bodies[k + 1 :]:
            for t in (0, 2):
                assert not interpenetrate(body[t], other[t], renderer.faces)
