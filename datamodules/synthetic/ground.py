"""Groups of people standing on a ground plane, never interpenetrating (the multi-person worlds).

`walkers` places people in a world frame with y down and the floor at y = 0 (Panoptic's frame;
the other worlds move it under their camera): each person's lowest vertex touches the floor in
every frame, at positions and steps the caller draws. A drawn position is rejected when the
person would interpenetrate someone already placed:
for every pair whose 3D boxes overlap, the vertices of one are looked up in the other's signed
distance grid (`geometry.sdf.signed_distance_grid`, fast variant, 32^3 over the padded box);
any vertex inside (negative distance) rejects the position. The grid's error is below 0.65 of a
cell diagonal (about 4 cm here), so this can only reject a pair that nearly touches, never
accept one that clearly intersects.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from datamodules.synthetic.prior import sample_betas, sample_pose_sequence
from datamodules.synthetic.render import Person, SceneRenderer
from geometry.cameras import world_to_camera_smpl
from geometry.sdf import mesh_box, signed_distance_grid
from geometry.volumes import sample_grid

SDF_RESOLUTION = 32
MAX_TRIES = 30


class PlacementError(RuntimeError):
    """No position without interpenetration was found for a person."""


def interpenetrate(a: np.ndarray, b: np.ndarray, faces: torch.Tensor) -> bool:
    """Whether meshes with vertices `a` and `b` (V, 3) intersect (module docstring)."""
    if (a.min(axis=0) > b.max(axis=0)).any() or (b.min(axis=0) > a.max(axis=0)).any():
        return False
    for inner, outer in ((a, b), (b, a)):
        low, high = mesh_box(torch.as_tensor(outer), padding=0.1)
        grid = signed_distance_grid(outer, faces, SDF_RESOLUTION, low, high)
        points = torch.as_tensor(inner, dtype=torch.float32)
        inside_box = ((points >= low.float()) & (points <= high.float())).all(dim=1)
        if inside_box.any():
            distance = sample_grid(grid, low.float(), high.float(), points[inside_box])
            if (distance < 0).any():
                return True
    return False


def walkers(
    renderer: SceneRenderer,
    rng: np.random.Generator,
    count: int,
    frames: int,
    start: Callable[[np.random.Generator], np.ndarray],
    step: Callable[[np.random.Generator], np.ndarray],
) -> list[Person]:
    """`count` people of `frames` frames in a world frame with y down and the floor at y = 0:
    each starts at `start(rng)` (x, z metres), moves by `step(rng)` (x, z) per frame, its
    lowest point on the floor in every frame; no two interpenetrate in the first or last frame.
    """
    people: list[Person] = []
    placed: list[list[np.ndarray]] = []
    for _ in range(count):
        for _ in range(MAX_TRIES):
            pose, betas = sample_pose_sequence(rng, frames), sample_betas(rng)
            person = Person(
                pose, betas, np.zeros((frames, 3)), "neutral", renderer.random_colors(rng)
            )
            x0, z0 = start(rng)
            dx, dz = step(rng)
            path = np.array([x0, 0.0, z0]) + np.arange(frames)[:, None] * np.array([dx, 0.0, dz])
            vertices = renderer.pose(person).vertices.astype(np.float64)  # (T, V, 3), transl 0
            middle = (vertices.min(axis=1) + vertices.max(axis=1)) / 2
            lowest = vertices.max(axis=1)  # y down: the largest y is the lowest point
            person.transl = path - middle * [1.0, 0.0, 1.0] - lowest * [0.0, 1.0, 0.0]
            ends = [vertices[t] + person.transl[t] for t in (0, frames - 1)]
            clear = not any(
                interpenetrate(ends[i], other[i], renderer.faces)
                for other in placed
                for i in (0, 1)
            )
            if clear:
                break
        else:
            raise PlacementError(f"no free place for person {len(people) + 1} of {count}")
        people.append(person)
        placed.append(ends)
    return people


def seen_from(renderer: SceneRenderer, person: Person, R: np.ndarray, t: np.ndarray) -> Person:
    """The person's SMPL parameters in a camera with extrinsics x_cam = R x_world + t."""
    root_joint = renderer.root_offset(person)[0]
    frames = person.pose.shape[0]
    root, transl = world_to_camera_smpl(
        torch.as_tensor(person.pose[:, :3]), torch.as_tensor(person.transl),
        torch.as_tensor(np.tile(root_joint, (frames, 1))), torch.as_tensor(R), torch.as_tensor(t),
    )  # fmt: skip
    pose = person.pose.copy()
    pose[:, :3] = root.numpy()
    return Person(pose, person.betas, transl.numpy(), person.gender, person.colors)
