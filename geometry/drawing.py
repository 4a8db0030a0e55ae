"""Pictures for people: overlays, scene views, skeletons, heatmaps and volumes, as uint8 RGB.

One module for the visualisation callbacks, the data inspector and the demo. Every function
returns a new (H, W, 3) uint8 RGB array and never modifies its inputs; ``save_png`` writes one.
Drawing is OpenCV (anti-aliased lines and text), colour maps are matplotlib's, and meshes are
rendered with the suite's own rasterizer (``geometry.render.render_shaded``).

Conventions (DESIGN.md): camera-frame points are OpenCV (x right, y down, z forward, metres);
integer pixel coordinates are pixel centres; volumes are (D, H, W) = (z, y, x).

Scene views and volume projections use the same orientations, so they read alike:
    - front: the camera's own view, x to the right, y down;
    - side: seen from the camera's right (+x) looking along -x, depth z to the right, y down
      (the camera is at the left edge);
    - top: seen from above (-y, the camera's up) looking along +y, x to the right, depth z
      upwards (the camera is at the bottom edge).
"up" is the camera's -y axis, so for a tilted camera the top view is tilted alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import torch
from torch import Tensor

from geometry.meshes import concatenate_meshes

ArrayLike = Tensor | np.ndarray

DEFAULT_MESH_COLOR = (0.65, 0.74, 0.86)
# Distinct, light colours (float RGB) for the people of a scene, the first one the overlay's.
PERSON_COLORS = (
    DEFAULT_MESH_COLOR,
    (0.95, 0.65, 0.45),
    (0.60, 0.85, 0.55),
    (0.90, 0.55, 0.70),
    (0.95, 0.85, 0.45),
    (0.60, 0.85, 0.85),
    (0.75, 0.65, 0.90),
    (0.80, 0.80, 0.80),
)

# Rotations (rows: the virtual camera's right, down and forward axes in the scene's camera
# frame) of the side and top views described in the module docstring.
VIEW_ROTATIONS = {
    "side": np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]),
    "top": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
}

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LABEL_HEIGHT = 18  # pixels of the label strip above each panel of confidence_volume
_PANEL_GAP = 4  # pixels between the panels of confidence_volume
_SUBPIXEL_BITS = 4  # cv2 'shift': coordinates drawn with 1/16 pixel precision
_MAX_COORDINATE = 1e5  # pixels; farther points are clipped so cv2's fixed point cannot overflow


def overlay(
    image: np.ndarray, rendered_rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.7
) -> np.ndarray:
    """Alpha-blend a render over an image where the mask is set.

    Args:
        image: (H, W, 3) uint8 RGB.
        rendered_rgb: (H, W, 3) float RGB in [0, 1] or uint8.
        mask: (H, W) bool, True where the render covers the image.
        alpha: opacity of the render, 0 (invisible) to 1 (opaque).

    Returns:
        (H, W, 3) uint8: ``(1 - alpha) image + alpha render`` (rounded) inside the mask, the
        image unchanged outside.
    """
    _check_image(image)
    render = _to_uint8_rgb(rendered_rgb).astype(np.float32)
    mask = np.asarray(mask, dtype=bool)
    if render.shape != image.shape or mask.shape != image.shape[:2]:
        raise ValueError(
            f"image {image.shape}, render {render.shape} and mask {mask.shape} do not match"
        )
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * render
    blended = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return np.where(mask[..., None], blended, image)


def overlay_mesh(
    image: np.ndarray,
    vertices: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    color: Sequence[float] | ArrayLike = DEFAULT_MESH_COLOR,
    alpha: float = 0.7,
) -> np.ndarray:
    """Render a mesh with Lambertian shading and blend it over the image it projects into.

    Args:
        image: (H, W, 3) uint8 RGB.
        vertices: (V, 3) camera-frame metres (several people: ``meshes.concatenate_meshes``).
        faces: (F, 3) int64.
        K: (3, 3) intrinsics of ``image``.
        color: float RGB in [0, 1], one (3,) for the whole mesh or (V, 3) per vertex.
        alpha: opacity of the mesh.

    Returns:
        (H, W, 3) uint8. Rendering runs on the device of ``vertices`` when it is a tensor.
    """
    from geometry.render import render_shaded

    _check_image(image)
    vertices_t = torch.as_tensor(vertices, dtype=torch.float32)
    device = vertices_t.device
    faces_t = torch.as_tensor(faces, dtype=torch.int64, device=device)
    K_t = torch.as_tensor(K, dtype=torch.float32, device=device)
    colors = torch.as_tensor(color, dtype=torch.float32, device=device)
    colors = colors.expand(vertices_t.shape[0], 3) if colors.ndim == 1 else colors
    rgb, mask = render_shaded(
        vertices_t[None], faces_t, K_t[None], (image.shape[0], image.shape[1]), colors
    )
    return overlay(image, rgb[0].cpu().numpy(), mask[0].cpu().numpy(), alpha)


def scene_views(
    meshes: Sequence[tuple[ArrayLike, ArrayLike]],
    image_size: tuple[int, int] = (256, 256),
    colors: Sequence[Sequence[float]] | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    margin: float = 0.1,
) -> dict[str, np.ndarray]:
    """Side and top views of a scene of people, fitted to all of them.

    Args:
        meshes: one (vertices (V_k, 3) camera-frame metres, faces (F_k, 3)) per person.
        image_size: (H, W) of each view.
        colors: one float RGB in [0, 1] per person; default ``PERSON_COLORS`` in turn.
        background: uint8 RGB where no mesh is.
        margin: fraction of the image's width and height left free (half on each side).

    Returns:
        {"side": (H, W, 3) uint8, "top": (H, W, 3) uint8}: perspective virtual cameras looking
        at the centre of the scene's bounding box along the axes of ``VIEW_ROTATIONS`` (module
        docstring), from 2.5 times the box's half diagonal, with the focal length and principal
        point chosen so that every vertex lands inside the image, centred, with ``margin`` left
        free. No people (or no vertices) gives plain background images.
    """
    from geometry.render import render_shaded

    height, width = image_size
    views = {name: np.empty((height, width, 3), np.uint8) for name in VIEW_ROTATIONS}
    for view in views.values():
        view[:] = background
    vertices, faces, person = concatenate_meshes(meshes)
    if vertices.shape[0] == 0:
        return views
    palette = (
        colors if colors is not None else [_cycle(PERSON_COLORS, k) for k in range(len(meshes))]
    )
    vertex_colors = torch.as_tensor(np.asarray(palette, dtype=np.float32)[person.numpy()])
    points = vertices.double().numpy()
    cameras = [fit_view_camera(points, VIEW_ROTATIONS[name], image_size, margin) for name in views]
    view_vertices = torch.as_tensor(np.stack([view for view, _ in cameras]), dtype=torch.float32)
    K = torch.as_tensor(np.stack([K for _, K in cameras]), dtype=torch.float32)
    rgb, mask = render_shaded(view_vertices, faces, K, (height, width), vertex_colors)
    for index, view in enumerate(views.values()):
        view[:] = overlay(view, rgb[index].cpu().numpy(), mask[index].cpu().numpy(), alpha=1.0)
    return views


def fit_view_camera(
    points: np.ndarray, rotation: np.ndarray, image_size: tuple[int, int], margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) -> (points in the virtual camera's frame (N, 3), its K (3, 3)).

    The camera looks at the bounding-box centre along ``rotation``'s third row from 2.5 half
    diagonals away; one focal length for both axes, fitted so the projections fill the image
    minus the margin, and the principal point centres them.
    """
    height, width = image_size
    low, high = points.min(axis=0), points.max(axis=0)
    radius = max(0.5 * float(np.linalg.norm(high - low)), 1e-3)
    view = (points - 0.5 * (low + high)) @ rotation.T + np.array([0.0, 0.0, 2.5 * radius])
    normalised = view[:, :2] / view[:, 2:]  # (N, 2) x/z, y/z
    lo, hi = normalised.min(axis=0), normalised.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    focal = (1.0 - margin) * min(width / span[0], height / span[1])
    principal = np.array([(width - 1) / 2.0, (height - 1) / 2.0]) - focal * 0.5 * (lo + hi)
    K = np.array([[focal, 0.0, principal[0]], [0.0, focal, principal[1]], [0.0, 0.0, 1.0]])
    return view, K


def draw_skeleton(
    image: np.ndarray,
    keypoints: ArrayLike,
    edges: Sequence[tuple[int, int]],
    color: Sequence[int] | Sequence[Sequence[int]] = (255, 64, 64),
    radius: int = 3,
    thickness: int = 2,
    min_confidence: float = 0.0,
) -> np.ndarray:
    """Draw a 2D skeleton: anti-aliased segments for the edges and filled circles at joints.

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints: (J, 2) pixel (x, y), or (J, 3) with a confidence last.
        edges: (i, j) joint index pairs to connect (``body`` gives them for a named set).
        color: uint8 RGB for everything, or one RGB per edge (joints then take the colour of
            the first edge that uses them; joints in no edge are white).
        radius: joint circle radius in pixels (0: no circles).
        thickness: line thickness in pixels.
        min_confidence: a joint is drawn only when its confidence is *greater* than this (so
            with the default 0, the suite's absent joints, confidence 0, are skipped) and its
            coordinates are finite; an edge only when both its joints are drawn.

    Returns:
        (H, W, 3) uint8 copy of the image with the skeleton.
    """
    _check_image(image)
    canvas = np.ascontiguousarray(image).copy()
    points = _to_numpy(keypoints, np.float64)
    visible = np.isfinite(points[:, :2]).all(axis=1)
    if points.shape[1] >= 3:
        visible &= points[:, 2] > min_confidence
    fixed = np.round(np.clip(points[:, :2], -_MAX_COORDINATE, _MAX_COORDINATE) * 16.0)
    fixed = np.nan_to_num(fixed).astype(np.int64)
    edge_colors = _edge_colors(color, len(edges))
    joint_colors: dict[int, tuple[int, ...]] = {}
    for (start, end), edge_color in zip(edges, edge_colors, strict=True):
        joint_colors.setdefault(start, edge_color)
        joint_colors.setdefault(end, edge_color)
        if visible[start] and visible[end] and thickness > 0:
            first, second = tuple(fixed[start].tolist()), tuple(fixed[end].tolist())
            cv2.line(canvas, first, second, edge_color, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)
    single_color = (
        tuple(np.asarray(color).astype(int).tolist()) if np.ndim(color) == 1 else (255, 255, 255)
    )
    for joint in np.flatnonzero(visible) if radius > 0 else ():
        center = tuple(fixed[joint].tolist())
        joint_color = joint_colors.get(int(joint), single_color)
        cv2.circle(
            canvas, center, radius << _SUBPIXEL_BITS, joint_color, -1, cv2.LINE_AA, _SUBPIXEL_BITS
        )
    return canvas


def _edge_colors(
    color: Sequence[int] | Sequence[Sequence[int]], num_edges: int
) -> list[tuple[int, ...]]:
    """One colour or one per edge -> list of num_edges (r, g, b) int tuples."""
    colors = np.asarray(color, dtype=np.int64)
    if colors.ndim == 1:
        colors = np.broadcast_to(colors, (num_edges, 3))
    if colors.shape != (num_edges, 3):
        raise ValueError(f"color must be one RGB or {num_edges} of them, got {colors.shape}")
    return [tuple(int(c) for c in rgb) for rgb in colors]


def heatmap_grid(
    heatmaps: ArrayLike,
    image: np.ndarray | None = None,
    columns: int = 4,
    cell_size: int | None = None,
    labels: Sequence[str] | None = None,
    normalize: bool = True,
    colormap: str = "jet",
) -> np.ndarray:
    """Tile colour-mapped heatmaps into a grid, one labelled cell per joint.

    Args:
        heatmaps: (J, h, w) float.
        image: optional (H, W, 3) uint8 shown under every heatmap (resized to the cell).
        columns: cells per row.
        cell_size: width of a cell in pixels (height follows the heatmaps' aspect); default the
            heatmap width times the smallest integer that makes it at least 96.
        labels: text for each cell; default the joint index.
        normalize: divide each heatmap by its maximum (when positive) before the colour map;
            otherwise values are taken as they are. Either way they are clipped to [0, 1].
        colormap: matplotlib colour map name.

    Returns:
        (rows * cell_height, min(columns, J) * cell_size, 3) uint8 with rows = ceil(J / columns),
        cells in row-major joint order, each framed by a 1-pixel grey border, unused cells
        black.
    """
    maps = _to_numpy(heatmaps, np.float32)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"heatmaps must be (J, h, w) with J > 0, got shape {maps.shape}")
    num_maps, map_height, map_width = maps.shape
    cell_width = cell_size or map_width * math.ceil(96 / map_width)
    cell_height = max(1, round(cell_width * map_height / map_width))
    rows, cols = math.ceil(num_maps / columns), min(columns, num_maps)
    grid = np.zeros((rows * cell_height, cols * cell_width, 3), np.uint8)
    background = None
    if image is not None:
        _check_image(image)
        background = cv2.resize(image, (cell_width, cell_height), interpolation=cv2.INTER_AREA)
    for index, heatmap in enumerate(maps):
        if normalize and heatmap.max() > 0:
            heatmap = heatmap / heatmap.max()
        resized = cv2.resize(heatmap, (cell_width, cell_height), interpolation=cv2.INTER_LINEAR)
        cell = _colorize(resized, colormap)
        if background is not None:
            cell = cv2.addWeighted(cell, 0.5, background, 0.5, 0.0)
        cv2.rectangle(cell, (0, 0), (cell_width - 1, cell_height - 1), (96, 96, 96), 1)
        _put_label(cell, labels[index] if labels is not None else str(index), (3, 13))
        row, col = divmod(index, columns)
        grid[
            row * cell_height : (row + 1) * cell_height, col * cell_width : (col + 1) * cell_width
        ] = cell
    return grid


def max_projections(volume: ArrayLike) -> dict[str, np.ndarray]:
    """Maximum projections of a (D, H, W) = (z, y, x) volume, oriented as the scene views.

    Returns:
        {"front": (H, W) max over z, rows y, columns x;
         "side": (H, D) max over x, rows y, columns z;
         "top": (D, W) max over y, rows z from far (row 0 = the last z) to near, columns x}.
    """
    values = _to_numpy(volume, np.float32)
    if values.ndim != 3:
        raise ValueError(f"volume must be (D, H, W), got shape {values.shape}")
    return {
        "front": values.max(axis=0),
        "side": values.max(axis=2).T,
        "top": values.max(axis=1)[::-1],
    }


def confidence_volume(
    volume: ArrayLike, threshold: float = 0.5, scale: int | None = None, colormap: str = "viridis"
) -> np.ndarray:
    """A picture of a voxel or confidence volume: its three maximum projections side by side.

    Args:
        volume: (D, H, W) = (z, y, x) floats in [0, 1] (clipped).
        threshold: the outline of where each projection reaches this value (the silhouette of
            the thresholded volume) is drawn in white.
        scale: integer upscaling of every voxel (nearest neighbour, so voxels stay square);
            default the smallest that makes the volume's largest side at least 128 pixels.
        colormap: matplotlib colour map name.

    Returns:
        uint8 image: panels "front", "side" and "top" from ``max_projections`` left to right,
        each ``_PANEL_GAP`` pixels apart, with tops aligned below a ``_LABEL_HEIGHT`` pixel strip
        holding their labels (front x right y down; side z right y down; top x right z up).
    """
    projections = max_projections(volume)
    scale = scale or math.ceil(128 / max(np.asarray(volume).shape))
    panels = []
    for projection in projections.values():
        values = np.clip(np.repeat(np.repeat(projection, scale, 0), scale, 1), 0.0, 1.0)
        panel = _colorize(values, colormap)
        outline = (values >= threshold).astype(np.uint8)
        contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(panel, contours, -1, (255, 255, 255), 1)
        panels.append(panel)
    height = _LABEL_HEIGHT + max(panel.shape[0] for panel in panels)
    width = sum(panel.shape[1] for panel in panels) + _PANEL_GAP * (len(panels) - 1)
    canvas = np.full((height, width, 3), 32, np.uint8)
    left = 0
    for name, panel in zip(("front (x, y)", "side (z, y)", "top (x, z)"), panels, strict=True):
        canvas[_LABEL_HEIGHT : _LABEL_HEIGHT + panel.shape[0], left : left + panel.shape[1]] = panel
        _put_label(canvas, name, (left + 2, _LABEL_HEIGHT - 5))
        left += panel.shape[1] + _PANEL_GAP
    return canvas


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image (parent folders are created); OSError on failure."""
    _check_image(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f"cv2 could not write {path}")


def _colorize(values: np.ndarray, colormap: str) -> np.ndarray:
    """(h, w) floats in [0, 1] -> (h, w, 3) uint8 RGB through a matplotlib colour map."""
    rgba = matplotlib.colormaps[colormap](np.clip(values, 0.0, 1.0), bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def _put_label(image: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    """Write white text with a black outline, baseline-left at ``origin``, in place."""
    cv2.putText(image, text, origin, _FONT, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, 0.4, (255, 255, 255), 1, cv2.LINE_AA)


def _to_uint8_rgb(rgb: ArrayLike) -> np.ndarray:
    """Float RGB in [0, 1] (rounded) or uint8 -> uint8."""
    values = rgb.detach().cpu().numpy() if isinstance(rgb, Tensor) else np.asarray(rgb)
    if values.dtype == np.uint8:
        return values
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def _to_numpy(values: ArrayLike, dtype: type) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("image must be an (H, W, 3) uint8 numpy array")
    if image.shape[2] != 3:
        raise ValueError(f"image must have 3 channels, got shape {image.shape}")


def _cycle(palette: Sequence, index: int) -> Sequence[float]:
    return palette[index % len(palette)]
