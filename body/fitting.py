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

The alternatives of section 4.2 fit other targets with the same optimiser (`minimise`):
`fit_inputs` is SMPLify++ (the predicted silhouette and 2D / 3D joints, appendix D) and
`fit_joints` the pose for regressed betas (the shape-parameter regression baseline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

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
    optimise_betas: bool = True,
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
        optimise_betas: False keeps `betas` as given (pose and translation only).
    """
    if surface.dim() != 3 or surface.shape[-1] != 3:
        raise ValueError(f"surface must be (B, N, 3), got {tuple(surface.shape)}")
    batch = surface.shape[0]
    weights = surface.new_ones(surface.shape[:2]) if surface_weights is None else surface_weights
    if joints is not None and joints.shape[1] != len(joint_indices):
        raise ValueError(f"{joints.shape[1]} target joints but {len(joint_indices)} joint_indices")
    num_betas = int(model.smpl.num_betas)
    shape0 = surface.new_zeros(batch, num_betas) if betas is None else betas
    surface_index = NearestIndex(surface, weights > 0)  # the target is fixed: built once

    def energy(params: list[Tensor]) -> Tensor:
        return _energy(model, params, surface_index, weights, to_frame, joints, joint_indices,
                       joint_weight)  # fmt: skip

    return minimise(model, energy, pose, shape0, transl, steps, lr, optimise_betas)


def minimise(
    model: BodyModel,
    energy: Callable[[list[Tensor]], Tensor],
    pose: Tensor,
    betas: Tensor,
    transl: Tensor,
    steps: int,
    lr: float,
    optimise_betas: bool = True,
) -> FitResult:
    """Adam on `energy([pose, betas, transl])` (B,) from the given start for `steps`
    iterations, the rate annealed (cosine) to 5 % of `lr`; betas stay fixed unless
    `optimise_betas`."""
    params = [p.detach().clone() for p in (pose, betas, transl)]
    free = [p for i, p in enumerate(params) if i != 1 or optimise_betas]
    for parameter in free:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(free, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=0.05 * lr)
    energies: list[float] = []
    value = pose.new_zeros(pose.shape[0])
    for _ in range(steps):
        optimizer.zero_grad()
        value = energy(params)
        value.sum().backward()
        optimizer.step()
        schedule.step()
        energies.append(float(value.sum().detach()))
    with torch.no_grad():
        vertices = model(params[0], params[1], params[2]).vertices
    return FitResult(params[0].detach(), params[1].detach(), params[2].detach(), vertices, energies,
                     value.detach())  # fmt: skip


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


def grid_frame(K: Tensor, root_depth: Tensor, crop_size: int, resolution: int) -> Frame:
    """The `Frame` of BodyNet's crop-aligned grid of `resolution` cells per side for a batch of
    crops (intrinsics K (B, 3, 3), root depths (B,)): `geometry.volumes.bodynet_grid_vertices`
    per sample."""

    def to_grid(vertices: Tensor) -> Tensor:
        return torch.stack([
            bodynet_grid_vertices(vertices[b], K[b], float(root_depth[b]), crop_size, resolution)
            for b in range(len(vertices))
        ])  # fmt: skip

    return to_grid


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

    to_grid = grid_frame(K, root_depth, crop_size, resolution)
    pose, transl = rigid_start(model, joints, joint_indices)
    return fit_body(model, surface, pose, transl, to_grid, weights, to_grid(joints),
                    joint_indices, joint_weight, steps=steps, lr=lr)  # fmt: skip


def fit_joints(
    model: BodyModel,
    joints: Tensor,
    joint_indices: Sequence[int],
    betas: Tensor,
    steps: int = 400,
    lr: float = 0.03,
) -> FitResult:
    """The pose and translation that put the model's `joint_indices` keypoints, with the given
    `betas` (B, num_betas) fixed, on the camera-frame `joints` (B, J, 3) metres: BodyNet's shape
    parameter regression takes its pose from the 3D pose prediction this way (section 4.2).
    From the rigid start; the joint error is in centimetres so that Adam's steps match
    `fit_body`'s scale."""
    pose, transl = rigid_start(model, joints, joint_indices)

    def energy(params: list[Tensor]) -> Tensor:
        keypoints = model(params[0], params[1], params[2]).keypoints[:, list(joint_indices)]
        return (100.0 * (keypoints - joints)).square().sum(dim=(1, 2))

    return minimise(model, energy, pose, betas, transl, steps, lr, optimise_betas=False)


def silhouette_targets(silhouette: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(outside distance (B, h, w), contour points (B, N, 2), contour valid (B, N)) of
    boolean silhouettes (B, h, w), in pixel units with pixel (i, j) spanning [j, j + 1] x
    [i, i + 1]: the distance of every pixel centre to the nearest foreground pixel centre
    (0 on the silhouette; 0 everywhere for an empty one), and the centres of the foreground
    pixels with a background 4-neighbour (the image border counts as background), padded."""
    from scipy.ndimage import distance_transform_edt

    masks = silhouette.detach().bool().cpu().numpy()
    distances, contours = [], []
    for mask in masks:
        distances.append(distance_transform_edt(~mask) if mask.any() else np.zeros(mask.shape))
        padded = np.pad(mask, 1)
        inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        rows, cols = np.nonzero(mask & ~inner)
        contours.append(np.stack((cols, rows), axis=-1) + 0.5)
    count = max(1, max(len(c) for c in contours))
    points = np.zeros((len(masks), count, 2))
    valid = np.zeros((len(masks), count), dtype=bool)
    for b, contour in enumerate(contours):
        points[b, : len(contour)], valid[b, : len(contour)] = contour, True
    device, dtype = silhouette.device, torch.float32
    return (torch.as_tensor(np.stack(distances), dtype=dtype, device=device),
            torch.as_tensor(points, dtype=dtype, device=device),
            torch.as_tensor(valid, device=device))  # fmt: skip


def silhouette_energy(projected: Tensor, outside: Tensor, contour: Tensor, valid: Tensor) -> Tensor:
    """(B,) the two one-sided silhouette distances (`fit_inputs`) of projected vertices
    (B, V, 2) in pixel units against `silhouette_targets`: the squared outside distance of every
    vertex (bilinear in the distance map, plus its distance to the image when it lies beyond)
    and, for every contour point, the squared distance to its nearest vertex."""
    height, width = outside.shape[-2:]
    size = projected.new_tensor([width, height])
    inside = torch.minimum(projected.clamp_min(0.0), size)
    beyond = (projected - inside).norm(dim=-1)
    grid = (inside / size * 2.0 - 1.0)[:, :, None]  # (B, V, 1, 2), align_corners=False
    sampled = F.grid_sample(outside[:, None], grid, align_corners=False, padding_mode="border")
    to_silhouette = (sampled[:, 0, :, 0] + beyond).square().sum(dim=1)
    nearest = torch.cdist(contour, projected).min(dim=2).values
    return to_silhouette + nearest.square().where(valid, 0.0).sum(dim=1)


def fit_inputs(
    model: BodyModel,
    silhouette: Tensor,
    joints: Tensor,
    keypoints2d: Tensor,
    joint_indices: Sequence[int],
    K: Tensor,
    root_depth: Tensor,
    crop_size: int,
    steps: int = 400,
    lr: float = 0.03,
    joint_weight: float = 100.0,
    shape_weight: float = 5.0,
) -> FitResult:
    """SMPLify++ (BodyNet section 4.2, appendix D eq. 1): the body fitted to a network's inputs
    to the shape network, its predicted silhouette and 2D and 3D joints, instead of its voxels.

        E = E_sil + joint_weight sum_j |j_n - j_s|^2 + sum_j |k_n - k_s|^2 + shape_weight |beta|^2

    all in the pixels of the silhouette (h x w; the crop scaled by h / crop_size, the frame of
    `geometry.volumes.bodynet_grid_vertices` at resolution h, whose x and y are the crop's
    perspective projection). j are the 3D joints in that frame, k the 2D joints (crop pixels
    `keypoints2d` (B, J, 2) scaled alike) against the model's projected joints; joint_weight is
    the paper's lambda_j = 100. The paper's silhouette term matches the model's projected
    silhouette to the predicted contour, which needs a renderer; here E_sil is the two one-sided
    distances that vanish exactly when the projected body covers the predicted silhouette and
    no more (`silhouette_energy`): every model vertex's squared distance outside the silhouette
    and every predicted contour pixel's squared distance to the nearest projected vertex, both
    unweighted (the paper weights contour points by their distance / 10). SMPLify's shape prior
    (|beta|^2, weight ours) keeps the shape from fitting silhouette noise; SMPLify's pose priors
    are not used (the 3D joints constrain the pose). Initialised as the voxel fit: rigid start
    from the 3D joints, zero shape; Adam in place of chumpy's dogleg.

    Args:
        silhouette: (B, h, w) bool predicted foreground (BodyNet: segmentation argmax > 0).
        joints: (B, J, 3) predicted camera-frame joints (metres), keypoints `joint_indices`.
        keypoints2d: (B, J, 2) predicted 2D joints in crop pixels, same joints.
        K, root_depth, crop_size: as for `fit_occupancy`.
    """
    batch, height, width = silhouette.shape
    if height != width:
        raise ValueError(f"the silhouette must be square like the crop, got {height} x {width}")
    if tuple(keypoints2d.shape) != (*joints.shape[:2], 2):
        raise ValueError(f"keypoints2d {tuple(keypoints2d.shape)} must be (B, J, 2) like joints "
                         f"{tuple(joints.shape)}")  # fmt: skip
    outside, contour, valid = silhouette_targets(silhouette)
    scale = height / crop_size
    keypoints = (keypoints2d.float() + 0.5) * scale  # bodynet_grid_vertices' x = (u + 0.5) s

    to_frame = grid_frame(K, root_depth, crop_size, height)
    target_joints = to_frame(joints)

    def energy(params: list[Tensor]) -> Tensor:
        posed = model(params[0], params[1], params[2])
        vertices = to_frame(posed.vertices)
        model_joints = to_frame(posed.keypoints[:, list(joint_indices)])
        silhouette_term = silhouette_energy(vertices[..., :2], outside, contour, valid)
        joint_term = (model_joints - target_joints).square().sum(dim=(1, 2))
        keypoint_term = (model_joints[..., :2] - keypoints).square().sum(dim=(1, 2))
        shape_term = params[1].square().sum(dim=1)
        return (silhouette_term + joint_weight * joint_term + keypoint_term
                + shape_weight * shape_term)  # fmt: skip

    pose, transl = rigid_start(model, joints, joint_indices)
    betas = joints.new_zeros(batch, int(model.smpl.num_betas))
    return minimise(model, energy, pose, betas, transl, steps, lr)


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
