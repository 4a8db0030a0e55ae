"""Drawing: blends touch only masked pixels, skeletons land on their segments, grids and
volume projections put things where they belong, and views are oriented as documented."""

from __future__ import annotations

import math

import cv2
import matplotlib
import numpy as np
import pytest
import torch

from geometry.drawing import (
    _LABEL_HEIGHT,
    _PANEL_GAP,
    VIEW_ROTATIONS,
    confidence_volume,
    draw_skeleton,
    heatmap_grid,
    max_projections,
    overlay,
    overlay_mesh,
    save_png,
    scene_views,
)

RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def random_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_overlay_changes_only_masked_pixels() -> None:
    rng = np.random.default_rng(1)
    image = random_image()
    original = image.copy()
    render = rng.random((48, 64, 3))
    mask = rng.random((48, 64)) < 0.3

    blended = overlay(image, render, mask, alpha=0.6)

    assert blended.dtype == np.uint8 and blended.shape == image.shape
    np.testing.assert_array_equal(blended[~mask], image[~mask])
    expected = np.round(0.4 * image[mask] + 0.6 * 255.0 * render[mask])
    np.testing.assert_allclose(blended[mask], expected, atol=1)
    assert (blended[mask] != image[mask]).any()
    np.testing.assert_array_equal(image, original)  # input untouched


def test_overlay_alpha_extremes() -> None:
    rng = np.random.default_rng(2)
    image = random_image(seed=2)
    render = rng.integers(0, 256, image.shape, dtype=np.uint8)
    mask = rng.random(image.shape[:2]) < 0.5
    np.testing.assert_array_equal(overlay(image, render, mask, alpha=0.0), image)
    opaque = overlay(image, render, mask, alpha=1.0)
    np.testing.assert_array_equal(opaque[mask], render[mask])
    np.testing.assert_array_equal(opaque[~mask], image[~mask])


def test_overlay_rejects_mismatched_shapes() -> None:
    image = random_image()
    with pytest.raises(ValueError, match="do not match"):
        overlay(image, np.zeros((48, 63, 3)), np.ones((48, 64), bool))


def posed_people(body_models_root, translations: list[list[float]]):
    """Mannequins facing an OpenCV camera (rotated by pi about x) at the given translations."""
    from body import BodyModel

    model = BodyModel(body_models_root)
    pose = torch.zeros(len(translations), 72)
    pose[:, :3] = torch.tensor([math.pi, 0.0, 0.0])
    with torch.no_grad():
        vertices = model(pose, transl=torch.tensor(translations)).vertices
    return vertices, model.faces


def test_overlay_mesh_covers_the_projected_body(body_models_root) -> None:
    pytest.importorskip("geometry.render")
    vertices, faces = posed_people(body_models_root, [[0.1, 0.2, 3.0]])
    height, width = 120, 160
    K = torch.tensor([[150.0, 0.0, 80.0], [0.0, 150.0, 60.0], [0.0, 0.0, 1.0]])
    image = np.zeros((height, width, 3), np.uint8)

    drawn = overlay_mesh(image, vertices[0], faces, K, alpha=0.7)

    assert drawn.dtype == np.uint8 and drawn.shape == image.shape
    changed = (drawn != image).any(axis=2)
    projected = (vertices[0] / vertices[0, :, 2:]) @ K.T  # (V, 3) pixel u, v, 1
    low = projected[:, :2].min(dim=0).values.floor().int() - 1
    high = projected[:, :2].max(dim=0).values.ceil().int() + 1
    rows, cols = np.nonzero(changed)
    assert cols.min() >= low[0] and cols.max() <= high[0]
    assert rows.min() >= low[1] and rows.max() <= high[1]
    assert changed.sum() > 0.15 * (high - low).prod()  # a body, not a few stray pixels
    # The default colour is light blue; alpha 0.7 over black keeps at most 70% of full white.
    torso = drawn[rows, cols]
    assert (torso[:, 2] >= torso[:, 0]).all() and torso.max() <= round(0.7 * 255)


def colour_centroid(view: np.ndarray, channel: int) -> np.ndarray:
    """(row, col) centroid of the pixels in which ``channel`` clearly dominates."""
    values = view.astype(int)
    others = np.delete(values, channel, axis=2).max(axis=2)
    rows, cols = np.nonzero((values[..., channel] > others + 40) & (values.sum(axis=2) < 600))
    assert rows.size > 20, "person not visible"
    return np.array([rows.mean(), cols.mean()])


def test_scene_views_are_oriented_as_documented(body_models_root) -> None:
    pytest.importorskip("geometry.render")
    # Person 0 (red): left, higher (y up is -y) and nearer; person 1 (blue): right, lower, farther.
    vertices, faces = posed_people(body_models_root, [[-0.6, -0.4, 3.0], [0.8, 0.4, 4.5]])
    meshes = [(vertices[0], faces), (vertices[1].numpy(), faces.numpy())]

    views = scene_views(meshes, image_size=(96, 128), colors=[RED, BLUE])

    assert set(views) == {"side", "top"}
    for view in views.values():
        assert view.dtype == np.uint8 and view.shape == (96, 128, 3)
        foreground = (view != 255).any(axis=2)
        # Everyone fits, with the margin free: nothing touches the border.
        assert foreground.any()
        assert not foreground[[0, -1]].any() and not foreground[:, [0, -1]].any()
    side_red, side_blue = colour_centroid(views["side"], 0), colour_centroid(views["side"], 2)
    top_red, top_blue = colour_centroid(views["top"], 0), colour_centroid(views["top"], 2)
    # Side: depth grows to the right, up is up.
    assert side_red[1] < side_blue[1] and side_red[0] < side_blue[0]
    # Top: x to the right, depth grows upwards (the nearer person is lower in the image).
    assert top_red[1] < top_blue[1] and top_red[0] > top_blue[0]


def test_view_rotations_are_proper_rotations() -> None:
    # A mirrored virtual camera would flip the faces' winding and light only their backs.
    for name, rotation in VIEW_ROTATIONS.items():
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), err_msg=name)
        assert np.linalg.det(rotation) == pytest.approx(1.0), name


def test_scene_views_default_colours_differ_and_empty_scene_is_background(
    body_models_root,
) -> None:
    pytest.importorskip("geometry.render")
    vertices, faces = posed_people(body_models_root, [[-0.5, 0.0, 3.0], [0.5, 0.0, 3.0]])
    top = scene_views([(vertices[0], faces), (vertices[1], faces)], image_size=(64, 64))["top"]
    left, right = top[:, :32], top[:, 32:]
    # Brightest pixel of each half: the shading scales both colours alike, their hue differs.
    left_colour = left.reshape(-1, 3)[left.reshape(-1, 3).astype(int).sum(1).argmin()]
    right_colour = right.reshape(-1, 3)[right.reshape(-1, 3).astype(int).sum(1).argmin()]
    assert np.argmax(left_colour) != np.argmax(right_colour)
    empty = scene_views([], image_size=(20, 30))
    assert empty["side"].shape == (20, 30, 3) and (empty["top"] == 255).all()


def segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(N,) distance of pixel positions (N, 2) to the segment start-end."""
    direction = end - start
    t = np.clip(((points - start) @ direction) / (direction @ direction), 0.0, 1.0)
    return np.linalg.norm(points - (start + t[:, None] * direction), axis=1)


def test_draw_skeleton_draws_along_the_segment_only() -> None:
    image = np.zeros((60, 80, 3), np.uint8)
    keypoints = np.array([[10.0, 20.0, 0.9], [60.0, 45.0, 0.8], [30.0, 50.0, 0.1]])
    edges = [(0, 1), (1, 2)]

    drawn = draw_skeleton(
        image, keypoints, edges, color=(255, 0, 0), radius=3, thickness=2, min_confidence=0.5
    )

    assert drawn.dtype == np.uint8 and drawn.shape == image.shape
    assert not image.any()  # input untouched
    rows, cols = np.mgrid[0:60, 0:80]
    pixels = np.stack((cols.ravel(), rows.ravel()), axis=1).astype(float)
    distance = segment_distance(pixels, keypoints[0, :2], keypoints[1, :2]).reshape(60, 80)
    painted = drawn.any(axis=2)
    assert not painted[distance > 4.5].any()  # nothing off the segment (joint 2 skipped)
    assert not drawn[..., 1:].any()  # pure red, blended over black
    for t in np.linspace(0.0, 1.0, 11):
        x, y = np.round(keypoints[0, :2] + t * (keypoints[1, :2] - keypoints[0, :2])).astype(int)
        assert drawn[y, x, 0] > 100
    assert drawn[20, 10, 0] == 255 and drawn[45, 60, 0] == 255  # joint discs, pixel centres


def test_draw_skeleton_skips_non_finite_joints_and_takes_edge_colours() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    keypoints = np.array([[5.0, 5.0], [30.0, 5.0], [np.nan, 20.0], [5.0, 30.0]])
    edges = [(0, 1), (1, 2), (0, 3)]
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]

    drawn = draw_skeleton(image, torch.as_tensor(keypoints), edges, color=colors)

    assert drawn[5, 18, 0] > 100 and drawn[5, 18, 2] == 0  # edge (0, 1) red
    assert drawn[18, 5, 2] > 100 and drawn[18, 5, 0] == 0  # edge (0, 3) blue
    assert not drawn[..., 1].any()  # edge (1, 2) needs the NaN joint: not drawn


def test_heatmap_grid_layout() -> None:
    heatmaps = np.zeros((7, 16, 24), np.float32)
    grid = heatmap_grid(heatmaps, columns=3, cell_size=48)
    assert grid.dtype == np.uint8 and grid.shape == (3 * 32, 3 * 48, 3)
    default = heatmap_grid(heatmaps[:2])
    assert default.shape == (64, 2 * 96, 3)  # width 24 scaled by 4 to reach 96
    over_image = heatmap_grid(heatmaps, image=random_image(), columns=4)
    assert over_image.shape == (2 * 64, 4 * 96, 3)


def test_heatmap_grid_puts_each_peak_in_its_cell() -> None:
    heatmaps = np.zeros((5, 16, 16), np.float32)
    # Joint 4 is in row 1, column 1 with 3 columns; its peak (a 3x3 block, so that bilinear
    # upsampling keeps the maximum) in the bottom-left of the cell; normalised to 1.
    heatmaps[4, 11:14, 2:5] = 0.2
    grid = heatmap_grid(heatmaps, columns=3, cell_size=64)  # 4 pixels per heatmap pixel
    hottest = matplotlib.colormaps["jet"](1.0, bytes=True)[:3]
    rows, cols = np.nonzero((grid == hottest).all(axis=2))
    assert rows.size > 0
    assert np.all((rows >= 64 + 11 * 4) & (rows < 64 + 14 * 4))
    assert np.all((cols >= 64 + 2 * 4) & (cols < 64 + 5 * 4))
    assert not grid[128:, 128:].any()  # the unused last cell stays black


def blob_volume() -> tuple[np.ndarray, tuple[int, int, int]]:
    """(D, H, W) = (12, 20, 16) zeros with a 3-voxel cube of ones centred at (k, j, i)."""
    volume = np.zeros((12, 20, 16), np.float32)
    k, j, i = 3, 14, 5
    volume[k - 1 : k + 2, j - 1 : j + 2, i - 1 : i + 2] = 1.0
    return volume, (k, j, i)


def test_max_projections_place_an_off_centre_blob() -> None:
    volume, (k, j, i) = blob_volume()
    projections = max_projections(torch.as_tensor(volume))
    depth = volume.shape[0]
    expected = {"front": (j, i), "side": (j, k), "top": (depth - 1 - k, i)}
    for name, (row, col) in expected.items():
        peak = np.unravel_index(np.argmax(projections[name]), projections[name].shape)
        assert peak == (row - 1, col - 1), name  # first voxel of the 3-voxel block
        assert projections[name][row, col] == 1.0


def test_confidence_volume_shows_the_blob_in_each_panel() -> None:
    volume, (k, j, i) = blob_volume()
    depth, height, width = volume.shape
    scale = 7  # default: ceil(128 / 20)

    picture = confidence_volume(volume, threshold=0.5)

    assert picture.dtype == np.uint8
    assert picture.shape == (
        _LABEL_HEIGHT + height * scale,
        (2 * width + depth) * scale + 2 * _PANEL_GAP,
        3,
    )
    hottest = matplotlib.colormaps["viridis"](1.0, bytes=True)[:3]
    lefts = {"front": 0, "side": width * scale + _PANEL_GAP}
    lefts["top"] = lefts["side"] + depth * scale + _PANEL_GAP
    panels = {"front": (j, i, width), "side": (j, k, depth), "top": (depth - 1 - k, i, width)}
    for name, (row, col, panel_width) in panels.items():
        region = picture[_LABEL_HEIGHT:, lefts[name] : lefts[name] + panel_width * scale]
        rows, cols = np.nonzero((region == hottest).all(axis=2))
        assert rows.size > 0, name
        centre = np.array([rows.mean(), cols.mean()])
        expected = (np.array([row, col]) + 0.5) * scale - 0.5
        np.testing.assert_allclose(centre, expected, atol=1.0, err_msg=name)
        assert (region == 255).all(axis=2).any(), name  # the threshold outline


def test_save_png_round_trip(tmp_path) -> None:
    image = random_image(30, 50, seed=3)
    path = tmp_path / "out" / "picture.png"
    save_png(path, image)
    loaded = cv2.imread(str(path), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(loaded[..., ::-1], image)
