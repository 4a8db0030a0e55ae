"""Meshing the mannequin: signed distance -> marching cubes -> decimation -> mirrored closed mesh.

Why our own pipeline: no library builds a symmetric, closed, genus-0 triangle mesh with an exact
vertex and face count from implicit primitives. We use the libraries for each step:
scikit-image's marching cubes, pymeshlab's quadric edge-collapse decimation and trimesh for the
topology checks, and add only the glue.

Recipe:
1. Evaluate the smooth-union signed distance of all primitives on a grid covering x >= 0 whose
   first plane is exactly x = 0. Marching cubes gives the left half of the surface, an open
   disk whose boundary loop lies in the plane x = 0 (the field is mirror-symmetric, so the
   surface crosses that plane at right angles).
2. Decimate the half to exactly `SMPL_NUM_FACES / 2` faces with its boundary kept in the plane.
3. Mirror the half and weld it along the boundary loop. For a disk with F faces and b boundary
   vertices, V = 1 + (F + b) / 2, so the closed mesh has 2V - b = F + 2 vertices: 13776 faces
   always give 6890 vertices, whatever b is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pymeshlab
import trimesh
from skimage import measure

from body.mannequin.design import Capsule, Ellipsoid, Primitive

SMPL_NUM_VERTICES = 6890
SMPL_NUM_FACES = 13776


def capsule_distance(points: np.ndarray, capsule: Capsule) -> np.ndarray:
    """Approximate signed distance (N,) from points (N,3) to a tapered capsule."""
    start = np.asarray(capsule.start)
    axis = np.asarray(capsule.end) - start
    h = np.clip((points - start) @ axis / (axis @ axis), 0.0, 1.0)  # (N,)
    closest = start + h[:, None] * axis
    radius = capsule.r_start + h * (capsule.r_end - capsule.r_start)
    return np.linalg.norm(points - closest, axis=1) - radius


def ellipsoid_distance(points: np.ndarray, ellipsoid: Ellipsoid) -> np.ndarray:
    """Approximate signed distance (N,) from points (N,3) to an axis-aligned ellipsoid."""
    radii = np.asarray(ellipsoid.radii)
    scaled = np.linalg.norm((points - np.asarray(ellipsoid.center)) / radii, axis=1)
    return (scaled - 1.0) * radii.min()


def primitive_distance(points: np.ndarray, primitive: Primitive) -> np.ndarray:
    """Signed distance (N,) of points (N,3) to one primitive (negative inside)."""
    if isinstance(primitive, Capsule):
        return capsule_distance(points, primitive)
    return ellipsoid_distance(points, primitive)


def smooth_min(a: np.ndarray, b: np.ndarray, blend: float) -> np.ndarray:
    """Polynomial smooth minimum (smooth union of two distance fields), blend radius in metres."""
    h = np.clip(0.5 + 0.5 * (b - a) / blend, 0.0, 1.0)
    return b + (a - b) * h - blend * h * (1.0 - h)


def body_distance(points: np.ndarray, primitives: Sequence[Primitive], blend: float) -> np.ndarray:
    """Smooth-union signed distance (N,) of the whole body at points (N,3)."""
    distance = np.full(len(points), np.inf)
    for primitive in primitives:
        d = primitive_distance(points, primitive)
        distance = d if np.isinf(distance).all() else smooth_min(distance, d, blend)
    return distance


def left_half_surface(
    primitives: Sequence[Primitive], voxel: float, blend: float, margin: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes surface of the body on x >= 0: vertices (V,3) and faces (F,3).

    The grid's first x plane is exactly x = 0, so the open boundary lies in that plane.
    """
    lo, hi = _bounds(primitives, margin)
    xs = np.arange(0.0, hi[0] + voxel, voxel)
    ys = np.arange(lo[1], hi[1] + voxel, voxel)
    zs = np.arange(lo[2], hi[2] + voxel, voxel)
    grid = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), axis=-1).reshape(-1, 3)
    field = body_distance(grid, primitives, blend).reshape(len(xs), len(ys), len(zs))
    vertices, faces, _, _ = measure.marching_cubes(field, level=0.0, spacing=(voxel,) * 3)
    vertices = vertices + np.array([0.0, ys[0], zs[0]])
    vertices[np.abs(vertices[:, 0]) < 1e-9, 0] = 0.0
    return _largest_component(vertices, faces)


def _bounds(primitives: Sequence[Primitive], margin: float) -> tuple[np.ndarray, np.ndarray]:
    lows, highs = [], []
    for p in primitives:
        if isinstance(p, Capsule):
            r = max(p.r_start, p.r_end)
            ends = np.array([p.start, p.end])
            lows.append(ends.min(0) - r)
            highs.append(ends.max(0) + r)
        else:
            lows.append(np.asarray(p.center) - p.radii)
            highs.append(np.asarray(p.center) + p.radii)
    return np.min(lows, axis=0) - margin, np.max(highs, axis=0) + margin


def _largest_component(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    parts = mesh.split(only_watertight=False)
    largest = max(parts, key=lambda m: len(m.faces))
    return np.asarray(largest.vertices), np.asarray(largest.faces)


def decimate_half(vertices: np.ndarray, faces: np.ndarray, target_faces: int):
    """Quadric decimation of the open half to exactly `target_faces`.

    The boundary is decimated too (keeping it would leave slivers along the midline); its
    vertices move off the plane by about a millimetre and are put back on x = 0.
    """
    mesh_set = pymeshlab.MeshSet()
    mesh_set.add_mesh(pymeshlab.Mesh(vertices, faces))
    mesh_set.meshing_decimation_quadric_edge_collapse(
        targetfacenum=target_faces,
        preserveboundary=False,
        preservenormal=True,
        preservetopology=True,
        optimalplacement=True,
        planarquadric=True,
        qualitythr=0.5,
        autoclean=True,
    )
    mesh = mesh_set.current_mesh()
    vertices = np.asarray(mesh.vertex_matrix(), dtype=np.float64)
    faces = np.asarray(mesh.face_matrix(), dtype=np.int64)
    vertices, faces = _drop_unreferenced(vertices, faces)
    boundary = boundary_vertices(faces)
    vertices[boundary, 0] = 0.0
    return _fill_to_count(vertices, faces, target_faces)


def _drop_unreferenced(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = np.unique(faces)
    remap = np.full(len(vertices), -1)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces]


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """(E,2) directed edges that belong to exactly one face, in face winding order."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    keys = np.sort(edges, axis=1)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    return edges[counts[inverse.ravel()] == 1]


def boundary_vertices(faces: np.ndarray) -> np.ndarray:
    """Sorted indices of the vertices on the open boundary."""
    return np.unique(boundary_edges(faces))


def _fill_to_count(vertices: np.ndarray, faces: np.ndarray, target_faces: int):
    """Split edges until the face count is exactly `target_faces` (decimation may undershoot).

    A boundary edge split adds one face, an interior edge split two.
    """
    if len(faces) > target_faces:
        raise RuntimeError(f"decimation left {len(faces)} faces, more than {target_faces}")
    while len(faces) < target_faces:
        deficit = target_faces - len(faces)
        vertices, faces = _split_longest_edge(vertices, faces, boundary=deficit == 1)
    return vertices, faces


def _split_longest_edge(vertices: np.ndarray, faces: np.ndarray, boundary: bool):
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    keys = np.sort(edges, axis=1)
    unique, counts = np.unique(keys, axis=0, return_counts=True)
    wanted = unique[counts == (1 if boundary else 2)]
    lengths = np.linalg.norm(vertices[wanted[:, 0]] - vertices[wanted[:, 1]], axis=1)
    a, b = wanted[np.argmax(lengths)]
    new_index = len(vertices)
    vertices = np.vstack([vertices, 0.5 * (vertices[a] + vertices[b])])
    new_faces = []
    for face in faces:
        position = _edge_position(face, a, b)
        if position is None:
            new_faces.append(face)
            continue
        i, j, k = face[position], face[(position + 1) % 3], face[(position + 2) % 3]
        new_faces.extend([(i, new_index, k), (new_index, j, k)])
    return vertices, np.asarray(new_faces, dtype=np.int64)


def _edge_position(face: np.ndarray, a: int, b: int) -> int | None:
    """Position p such that (face[p], face[p+1]) is the edge {a, b}, or None."""
    for p in range(3):
        if {int(face[p]), int(face[(p + 1) % 3])} == {a, b}:
            return p
    return None


def mirror_and_weld(vertices: np.ndarray, faces: np.ndarray):
    """Close the left half with its mirror image.

    Returns (vertices (V,3), faces (F,3), side (V,) int: 0 midline, 1 left, -1 right,
    mirror (V,) the index of each vertex's mirror image).
    """
    boundary = boundary_vertices(faces)
    is_boundary = np.zeros(len(vertices), dtype=bool)
    is_boundary[boundary] = True
    interior = np.flatnonzero(~is_boundary)
    mirrored_index = np.arange(len(vertices))
    mirrored_index[interior] = len(vertices) + np.arange(len(interior))
    mirrored_vertices = vertices[interior] * np.array([-1.0, 1.0, 1.0])
    all_vertices = np.vstack([vertices, mirrored_vertices])
    mirrored_faces = mirrored_index[faces][:, ::-1]  # reflection flips the winding
    all_faces = np.vstack([faces, mirrored_faces])
    side = np.concatenate([np.where(is_boundary, 0, 1), -np.ones(len(interior), dtype=int)])
    mirror = np.concatenate([mirrored_index, interior])
    return all_vertices, all_faces, side, mirror


def orient_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces reversed if needed so that normals point out of the closed surface."""
    volume = trimesh.Trimesh(vertices, faces, process=False).volume
    return faces if volume > 0 else faces[:, ::-1].copy()
