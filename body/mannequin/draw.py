"""Draw posed mannequins to a PNG with matplotlib (docs/mannequin.png).

Run `python -m body.mannequin.draw --root body_models --out docs/mannequin.png`. Matplotlib's
3D polygons are enough for a picture; the suite's rasterizer lives in `geometry`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from body.joint_sets import SMPL_JOINTS
from body.model import BodyModel


def named_pose(rotations: dict[str, tuple[float, float, float]]) -> torch.Tensor:
    """(1,72) axis-angle pose from {SMPL joint name: axis-angle}."""
    pose = torch.zeros(1, 24, 3)
    for name, axis_angle in rotations.items():
        pose[0, SMPL_JOINTS.index(name)] = torch.tensor(axis_angle)
    return pose.reshape(1, 72)


ARMS_DOWN = {"left_shoulder": (0.0, 0.0, -1.25), "right_shoulder": (0.0, 0.0, 1.25)}
POSES = {
    "T-pose": {},
    "arms down": ARMS_DOWN,
    "sitting": {**ARMS_DOWN, "left_hip": (-1.5, 0, 0), "right_hip": (-1.5, 0, 0),
                "left_knee": (1.5, 0, 0), "right_knee": (1.5, 0, 0)},
    "crouching": {**ARMS_DOWN, "spine1": (0.4, 0, 0), "left_hip": (-2.0, 0, 0.15),
                  "right_hip": (-2.0, 0, -0.15), "left_knee": (2.3, 0, 0),
                  "right_knee": (2.3, 0, 0), "left_ankle": (-0.3, 0, 0),
                  "right_ankle": (-0.3, 0, 0), "left_elbow": (0, -1.2, 0),
                  "right_elbow": (0, 1.2, 0)},
    "walking": {**ARMS_DOWN, "left_hip": (-0.5, 0, 0), "right_hip": (0.4, 0, 0),
                "right_knee": (0.6, 0, 0), "left_shoulder": (0.5, 0, -1.25),
                "right_shoulder": (-0.5, 0, 1.25)},
}  # fmt: skip


def draw_mesh(axes, vertices: np.ndarray, faces: np.ndarray, color=(0.75, 0.72, 0.68)) -> None:
    """Lambert-shaded mesh on a 3D matplotlib axis, y up (SMPL frame), seen from the front."""
    points = vertices[:, [0, 2, 1]]  # matplotlib's z is up
    triangles = points[faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = np.array([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5])
    shade = 0.35 + 0.65 * np.clip(normals @ light, 0.0, 1.0)
    axes.add_collection3d(
        Poly3DCollection(triangles, facecolors=shade[:, None] * color, linewidths=0)
    )
    center = points.mean(axis=0)
    for setter, c in zip((axes.set_xlim, axes.set_ylim, axes.set_zlim), center, strict=True):
        setter(c - 0.62, c + 0.62)
    axes.set_box_aspect((1, 1, 1))
    axes.view_init(elev=8, azim=-70)
    axes.axis("off")


def draw(root: Path, out: Path, name: str = "mannequin") -> None:
    models = {g: BodyModel(root, name, g) for g in ("neutral", "male", "female")}
    panels = [("neutral", title, pose) for title, pose in POSES.items()]
    panels += [("male", "male, arms down", ARMS_DOWN), ("female", "female, arms down", ARMS_DOWN)]
    figure = plt.figure(figsize=(2.6 * len(panels), 4.0))
    for index, (gender, title, rotations) in enumerate(panels):
        with torch.no_grad():
            vertices = models[gender](named_pose(rotations)).vertices[0].numpy()
        axes = figure.add_subplot(1, len(panels), index + 1, projection="3d")
        draw_mesh(axes, vertices, models[gender].faces.numpy())
        axes.set_title(f"{gender}: {title}" if gender == "neutral" else title)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=72)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("body_models"))
    parser.add_argument("--name", default="mannequin")
    parser.add_argument("--out", type=Path, default=Path("docs/mannequin.png"))
    args = parser.parse_args()
    draw(args.root, args.out, args.name)
