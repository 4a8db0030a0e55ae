"""Fitting the body model to a surface and 3D joints (BodyNet section 3.4, eq. 6), batched.

    E(theta, beta, t) = sum_{p in V_n} w(p) |p - nn_s(p)|^2
                        + sum_{q in V_s} w(nn_n(q)) |q - nn_n(q)|^2
                        + lambda sum_j |j_n - j_s(theta, beta, t)|^2

V_n are the target surface points (BodyNet: the marching-cubes isosurface of the predicted
occupancy at 0.5) with confidences w, V_s the body model's vertices, nn the nearest point of
the other set, refreshed at every iteration (`geometry.meshes.nearest_neighbors`), and j the
target 3D joints against the same joints of the model (lambda = 5, the paper's). The terms are
sums, as in eq. 6 (lambda is relative to those sums).

Everything is compared in a *target frame* given by a differentiable map from camera-frame
metres (`to_frame`, e.g. BodyNet's voxel-grid units: `geometry.volumes.bodynet_grid_vertices`),
so a grid's surface and joints are used where they were predicted; the optimised parameters
are the model's pose (72 axis-angle), betas and translation in the camera frame.

The paper minimises E with Powell's dogleg in chumpy; here it is PyTorch's Adam (chumpy is
unmaintained and not installable on current Python), for `steps` iterations from the given
start, the learning rate annealed (cosine) to 5 % of `lr` so the last steps settle (on the
mannequin voxelized at 128^3 the defaults reach 0.48 voxel of mean vertex error from 7, about
9 s per sample on two CPU cores). `rigid_start` gives BodyNet's start: zero shape and body
pose, the global orientation and translation that align the model's rest joints with the
target joints (Kabsch).

`fit_occupancy` is the whole of section 3.4 for a batch of BodyNet predictions: marching cubes
on each predicted occupancy grid at 0.5 (`geometry.meshes.grid_to_mesh`, the paper's
threshold), each isosurface vertex weighted by the confidence of the voxels it bounds (the
largest predicted probability in its 3 x 3 x 3 neighbourhood: the inside voxels whose surface
it is; the paper weights by "the confidence of the corresponding point in the isosurface which
depends on the voxel predictions"), the predicted 3D joints as the joint term, the rigid start
from those joints, and the fit in the crop-aligned grid's units
(`geometry.volumes.bodynet_grid_vertices`), so one voxel weighs the same everywhere. A grid
with nothing above 0.5 is fitted to its joints alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from body.model import BodyModel
from geometry.meshes import NearestIndex, grid_to_mesh, nearest_neighbors
from geometry.procrustes import similarity_procrustes
from geometry.rotations import matrix_to_axis_angle
from geometry.volumes import bodynet_grid_vertices

Frame = Callable[[Tensor], Tensor]  # (B, N, 3) camera metres -> (B, N, 3) target frame


@dataclass
class FitResult:
    """Fitted parameters (camera frame) and the model's vertices and keypoints with them."""

    pose: Tensor  # (B, 72)
    betas: Tensor  # (B, num_betas)
    transl: Tensor  # (B, 3)
    vertices: Tensor  # (B, V, 3) camera metres
    energies: list[float] = field(default_factory=list)  # E summed over the batch, per step
    final_energy: Tensor | None = None  # (B,) E of each sample at the last step


def rigid_start(
    model: BodyModel,
    joints: Tensor,
    joint_indices: Sequence[int],
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(pose (B, 72), transl (B, 3)): zero body pose and shape, the global rotation and
    translation that best align the rest-pose joints `joint_indices` of the model's canonical
    keypoints with `joints` (B, J, 3) camera metres (rotation and translation only)."""
    batch = joints.shape[0]
    rest = model(joints.new_zeros(batch, 72)).keypoints[:, list(joint_indices)]
    weights = None if valid is None else valid.to(joints.dtype)
    _, rotation, _ = similarity_procrustes(rest, joints, weights)
    pose = joints.new_zeros(batch, 72)
    pose[:, :3] = matrix_to_axis_angle(rotation)
    rotated = model(pose).keypoints[:, list(joint_indices)]
    w = torch.ones_like(joints[..., 0]) if weights is None else weights
    offset = ((joints - rotated) * w[..., None]).sum(dim=1) / w.sum(dim=1, keepdim=True).clamp_min(
        1
    )
    return pose, offset


def fit_body(
    model: BodyModel,
    surface: Tensor,
    pose: Tensor,
    transl: Tensor,
    to_frame: Frame,
    surface_weights: Tensor | None = None,
    joints: Tensor | None = None,
    joint_indices: Sequence[int] = (),
    joint_weight: float = 5.0,
    betas: Tensor | None = None,
    steps: int = 400,
    lr: float = 0.03,
) -> FitResult:
    """Minimise eq. 6 (module docstring) from (pose, betas = 0 unless given, transl).

    Args:
        model: a `body.BodyModel` (forward(pose, betas, transl) -> vertices, keypoints).
        surface: (B, N, 3) target surface points in the target frame.
        pose, transl: (B, 72), (B, 3) start (e.g. `rigid_start`).
        to_frame: camera metres -> target frame, differentiable (module docstring).
        surface_weights: (B, N) confidences (>= 0; 0 = padding), default ones.
        joints: (B, J, 3) target joints in the target frame, or None.
        joint_indices: the model keypoints (canonical indices) matching `joints`.
        joint_weight: lambda of eq. 6.
        betas: (B, num_betas) start of the shape, default zeros.
        steps, lr: Adam iterations and learning rate (radians, shape units, metres).
    """
    if surface.dim() != 3 or surface.shape[-1] != 3:
        raise ValueError(f"surface must be (B, N, 3), got {tuple(surface.shape)}")
    batch = surface.shape[0]
    weights = surface.new_ones(surface.shape[:2]) if surface_weights is None else surface_weights
    if joints is not None and joints.shape[1] != len(joint_indices):
        raise ValueError(f"{joints.shape[1]} target joints but {len(joint_indices)} joint_indices")
    num_betas = int(model.smpl.num_betas)
    shape0 = surface.new_zeros(batch, num_betas) if betas is None else betas
    params = [p.detach().clone().requires_grad_(True) for p in (pose, shape0, transl)]
    surface_index = NearestIndex(surface, weights > 0)  # the target is fixed: built once
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=0.05 * lr)
    energies: list[float] = []
    energy = surface.new_zeros(batch)
    for _ in range(steps):
        optimizer.zero_grad()
        energy = _energy(model, params, surface_index, weights, to_frame, joints, joint_indices,
                         joint_weight)  # fmt: skip
        energy.sum().backward()
        optimizer.step()
        schedule.step()
        energies.append(float(energy.sum().detach()))
    with torch.no_grad():
        vertices = model(params[0], params[1], params[2]).vertices
    return FitResult(params[0].detach(), params[1].detach(), params[2].detach(), vertices, energies,
                     energy.detach())  # fmt: skip


def isosurface(occupancy: Tensor, level: float = 0.5) -> tuple[Tensor, Tensor, Tensor]:
    """(points (N, 3), faces (F, 3), confidences (N,)) of the marching-cubes isosurface of one
    (R, R, R) occupancy grid, in grid units ([0, R]^3, cell i spanning [i, i + 1]), on the
    grid's device; the confidence of a point is that of the voxels it bounds (module
    docstring)."""
    resolution = occupancy.shape[-1]
    grid = occupancy.detach().float().cpu()
    points, faces = grid_to_mesh(grid, (0.0,) * 3, (float(resolution),) * 3, level=level)
    pooled = torch.nn.functional.max_pool3d(grid[None, None], 3, 1, 1)[0, 0]
    cells = points.floor().long().clamp(0, resolution - 1)  # (x, y, z) -> grid [z, y, x]
    confidence = pooled[cells[:, 2], cells[:, 1], cells[:, 0]]
    device = occupancy.device
    return points.to(device), faces.to(device), confidence.to(device)


def isosurface_points(occupancy: Tensor, level: float = 0.5) -> tuple[Tensor, Tensor]:
    """(points (N, 3), confidences (N,)) of `isosurface`."""
    points, _, confidence = isosurface(occupancy, level)
    return points, confidence


def fit_occupancy(
    model: BodyModel,
    occupancy: Tensor,
    joints: Tensor,
    joint_indices: Sequence[int],
    K: Tensor,
    root_depth: Tensor,
    crop_size: int,
    steps: int = 400,
    lr: float = 0.03,
    joint_weight: float = 5.0,
) -> FitResult:
    """Fit the body model to BodyNet's outputs (section 3.4; module docstring), batched.

    Args:
        model: the body model to fit (BodyNet: the neutral SMPL).
        occupancy: (B, R, R, R) predicted probabilities in the crop-aligned grid.
        joints: (B, J, 3) predicted camera-frame joints (metres), the canonical keypoints
            `joint_indices` of the model.
        K: (B, 3, 3) crop intrinsics; root_depth: (B,) the root's depth the grid is centred on.
        crop_size: side of the crop in pixels.
        steps, lr, joint_weight: as for `fit_body`.
    """
    batch, resolution = occupancy.shape[0], occupancy.shape[-1]
    surfaces = [isosurface_points(occupancy[b]) for b in range(batch)]
    count = max(1, max(len(points) for points, _ in surfaces))
    surface = occupancy.new_zeros(batch, count, 3)
    weights = occupancy.new_zeros(batch, count)
    for b, (points, confidence) in enumerate(surfaces):
        surface[b, : len(points)], weights[b, : len(points)] = points, confidence

    def to_grid(vertices: Tensor) -> Tensor:
        return torch.stack([
            bodynet_grid_vertices(vertices[b], K[b], float(root_depth[b]), crop_size, resolution)
            for b in range(len(vertices))
        ])  # fmt: skip

    pose, transl = rigid_start(model, joints, joint_indices)
    return fit_body(model, surface, pose, transl, to_grid, weights, to_grid(joints),
                    joint_indices, joint_weight, steps=steps, lr=lr)  # fmt: skip


def _energy(
    model: BodyModel,
    params: list[Tensor],
    surface: NearestIndex,
    weights: Tensor,
    to_frame: Frame,
    joints: Tensor | None,
    joint_indices: Sequence[int],
    joint_weight: float,
) -> Tensor:
    """(B,) eq. 6 at the current parameters."""
    posed = model(params[0], params[1], params[2])
    vertices = to_frame(posed.vertices)
    valid = weights > 0
    _, distance_s = nearest_neighbors(surface.points, vertices)  # target point -> body
    index_n, distance_n = surface.query(vertices)  # body vertex -> target
    to_body = (weights * distance_s.square()).where(valid, torch.zeros_like(distance_s)).sum(1)
    matched_weight = torch.gather(weights, 1, index_n.clamp_min(0))
    to_surface = (matched_weight * distance_n.square()).where(index_n >= 0, 0.0).sum(1)
    energy = to_body + to_surface
    if joints is not None:
        model_joints = to_frame(posed.keypoints[:, list(joint_indices)])
        energy = energy + joint_weight * (model_joints - joints).square().sum(dim=(1, 2))
    return energy
