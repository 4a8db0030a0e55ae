"""Build the mannequin body model and write it in SMPL's own file format.

`make_mannequin(out_dir)` writes `smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl` (plain pickles of numpy
arrays and a scipy sparse J_regressor, no chumpy) that `smplx.create(out_dir, model_type='smpl')`
loads unchanged, and the `extras/` folder of DESIGN.md. It is deterministic: the same arrays
on every run. The three genders share one topology, as SMPL's do: they differ only in their
template, which is the neutral template moved along fixed directions of the shape space.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from body.joint_sets import SMPL_PARENTS, SMPL_PART_NAMES
from body.mannequin import design, rig, surface
from body.safe_pickle import dump_legacy_pickle
from geometry.rotations import axis_angle_to_matrix, matrix_to_rotation_6d

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
VOXEL_SIZE = 0.006  # metres; marching-cubes grid spacing
BLEND_RADIUS = 0.035  # metres; smooth-union blend between primitives

# Gendered templates: the neutral template moved by these shape coefficients (see
# rig.SHAPE_COMPONENT_NAMES: size, girth, leg length, arm length, shoulders, hips, ...).
GENDER_BETAS = {
    "neutral": np.zeros(10),
    "male": np.array([0.8, 0.2, 0.3, 0.3, 1.0, -0.8, 0.0, 0.2, 0.3, 0.3]),
    "female": np.array([-0.8, -0.2, 0.0, -0.3, -1.0, 1.2, 0.0, -0.2, 0.2, -0.4]),
}


@dataclass
class Mannequin:
    """The neutral mannequin, rigged. Arrays in SMPL's shapes; vertices in final order."""

    vertices: np.ndarray  # (6890,3) neutral template, metres
    faces: np.ndarray  # (13776,3) outward-facing
    mirror: np.ndarray  # (6890,) index of each vertex's mirror image
    labels: np.ndarray  # (6890,) SMPL part of each vertex
    weights: np.ndarray  # (6890,24) skinning weights
    joint_regressor: np.ndarray  # (24,6890)
    shapedirs: np.ndarray  # (6890,3,10)
    h36m_regressor: np.ndarray  # (17,6890)
    extra_regressor: np.ndarray  # (9,6890)
    landmark_regressor: np.ndarray  # (L,6890), rows named by design.LANDMARK_DESIGN


def build_mannequin() -> Mannequin:
    """Generate and rig the neutral mannequin (a few seconds on 2 cores)."""
    primitives = design.all_primitives()
    vertices, faces, side, mirror = _closed_mesh(primitives)
    vertices, faces, side, mirror = _reorder(vertices, faces, side, mirror)
    averaging = rig.vertex_adjacency(faces, len(vertices))
    labels = _symmetric_labels(vertices, primitives, side, mirror)
    weights = rig.skinning_weights(labels, averaging)
    weights = 0.5 * (weights + weights[mirror][:, rig.JOINT_MIRROR])
    joints = design.rest_joints()
    joint_regressor = rig.regressor(
        vertices, joints, rig.joint_axes(joints), mirror, rig.JOINT_MIRROR
    )
    radial = rig.radial_offsets(vertices, labels, primitives)
    shapedirs = rig.shapedirs(vertices, labels, radial, joints, averaging, mirror)
    return Mannequin(
        vertices=vertices,
        faces=faces,
        mirror=mirror,
        labels=labels,
        weights=weights,
        joint_regressor=joint_regressor,
        shapedirs=shapedirs,
        h36m_regressor=_design_regressor(vertices, mirror, design.H36M_REGRESSOR_DESIGN),
        extra_regressor=_design_regressor(vertices, mirror, design.EXTRA_REGRESSOR_DESIGN),
        landmark_regressor=_design_regressor(vertices, mirror, design.LANDMARK_DESIGN),
    )


def _closed_mesh(primitives):
    half_vertices, half_faces = surface.left_half_surface(primitives, VOXEL_SIZE, BLEND_RADIUS)
    half_vertices, half_faces = surface.decimate_half(
        half_vertices, half_faces, surface.SMPL_NUM_FACES // 2
    )
    vertices, faces, side, mirror = surface.mirror_and_weld(half_vertices, half_faces)
    faces = surface.orient_outward(vertices, faces)
    if len(vertices) != surface.SMPL_NUM_VERTICES or len(faces) != surface.SMPL_NUM_FACES:
        raise RuntimeError(f"mannequin mesh has {len(vertices)} vertices and {len(faces)} faces")
    return vertices, faces, side, mirror


def _landmark_vertices(
    vertices: np.ndarray, side: np.ndarray, mirror: np.ndarray
) -> dict[int, int]:
    """{old vertex index: required smplx vertex id} for all 21 landmarks, mirror-consistent."""
    fixed: dict[int, int] = {}
    taken: set[int] = set()
    for name, place in design.SMPLX_LANDMARK_PLACES.items():
        allowed = side == (0 if name == "nose" else 1)
        distance = np.linalg.norm(vertices - np.asarray(place), axis=1)
        distance[~allowed | np.isin(np.arange(len(vertices)), list(taken))] = np.inf
        vertex = int(np.argmin(distance))
        taken.add(vertex)
        fixed[vertex] = design.SMPLX_LANDMARK_VERTEX_IDS[name]
        if name in design.SMPLX_LANDMARK_MIRROR:
            fixed[int(mirror[vertex])] = design.SMPLX_LANDMARK_VERTEX_IDS[
                design.SMPLX_LANDMARK_MIRROR[name]
            ]
    return fixed


def vertex_order(vertices: np.ndarray, side: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """order[new_id] = old index. Midline and left vertices take ids below the right ones.

    The 21 smplx landmarks land on their fixed ids; the other left-block vertices follow in
    order of height (top first); each right vertex follows the order of its mirror image.
    """
    fixed = _landmark_vertices(vertices, side, mirror)
    left_block = np.flatnonzero(side >= 0)
    order = np.full(len(vertices), -1)
    for old, new in fixed.items():
        order[new] = old
    if not all((new < len(left_block)) == (side[old] >= 0) for old, new in fixed.items()):
        raise RuntimeError("a landmark vertex id falls in the wrong half of the vertex order")
    rest_left = [
        v
        for v in left_block[np.lexsort((vertices[left_block, 0], -vertices[left_block, 1]))]
        if v not in fixed
    ]
    free_left = [i for i in range(len(left_block)) if order[i] < 0]
    order[free_left] = rest_left
    new_id = np.empty(len(vertices), dtype=int)
    new_id[order[: len(left_block)]] = np.arange(len(left_block))
    rest_right = [v for v in np.flatnonzero(side < 0) if v not in fixed]
    rest_right.sort(key=lambda v: new_id[mirror[v]])
    free_right = [i for i in range(len(left_block), len(vertices)) if order[i] < 0]
    order[free_right] = rest_right
    return order


def _reorder(vertices, faces, side, mirror):
    order = vertex_order(vertices, side, mirror)
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))
    return vertices[order], new_id[faces], side[order], new_id[mirror[order]]


def _symmetric_labels(vertices, primitives, side, mirror) -> np.ndarray:
    labels = rig.part_labels(vertices, primitives, side)
    right = side < 0
    labels[right] = rig.JOINT_MIRROR[labels[mirror[right]]]
    return labels


def _design_regressor(vertices, mirror, rows) -> np.ndarray:
    points = np.array([place for _, place, _ in rows], dtype=float)
    axes = np.array([axis for _, _, axis in rows], dtype=float)
    return rig.regressor(vertices, points, axes, mirror, _point_mirror(points))


def _point_mirror(points: np.ndarray) -> np.ndarray:
    """Index of the point whose position is each point's mirror image."""
    flipped = points * np.array([-1.0, 1.0, 1.0])
    distance = np.linalg.norm(flipped[:, None] - points[None], axis=-1)
    return np.argmin(distance, axis=1)


def gendered_template(mannequin: Mannequin, gender: str) -> np.ndarray:
    """(6890,3) rest template of one gender: the neutral one moved in the shape space."""
    return mannequin.vertices + mannequin.shapedirs @ GENDER_BETAS[gender]


def smpl_dict(mannequin: Mannequin, gender: str) -> dict:
    """The SMPL .pkl content for one gender, with SMPL's keys, shapes and dtypes."""
    template = gendered_template(mannequin, gender)
    kintree = np.array([SMPL_PARENTS, range(24)], dtype=np.int64)
    kintree[0, 0] = 4294967295  # SMPL stores the root's parent as uint32(-1)
    return {
        "v_template": template,
        "shapedirs": mannequin.shapedirs,
        "posedirs": np.zeros((surface.SMPL_NUM_VERTICES, 3, 207)),
        "J_regressor": scipy.sparse.csc_matrix(mannequin.joint_regressor),
        "J": mannequin.joint_regressor @ template,
        "weights": mannequin.weights,
        "kintree_table": kintree,
        "f": mannequin.faces.astype(np.uint32),
        "bs_type": "lrotmin",
        "bs_style": "lbs",
        "vert_sym_idxs": mannequin.mirror.astype(np.int64),
    }


def mean_params() -> dict[str, np.ndarray]:
    """SPIN's `smpl_mean_params.npz` content for the mannequin.

    pose (144,): 24 rotations in SPIN's 6D layout (columns): the body turned to face an OpenCV
    camera (pi about x, as in SPIN's file) with the arms relaxed 60 degrees down from the
    T-pose; shape (10,) zeros; cam (3,) SPIN's mean weak-perspective camera (0.9, 0, 0).
    """
    axis_angle = np.zeros((24, 3))
    axis_angle[0] = (np.pi, 0.0, 0.0)
    axis_angle[16] = (0.0, 0.0, -np.pi / 3)
    axis_angle[17] = (0.0, 0.0, np.pi / 3)
    matrices = axis_angle_to_matrix(torch.as_tensor(axis_angle))
    pose = matrix_to_rotation_6d(matrices, layout="columns").reshape(-1).numpy()
    return {"pose": pose, "shape": np.zeros(10), "cam": np.array([0.9, 0.0, 0.0])}


def part_segmentation(labels: np.ndarray) -> dict[str, list[int]]:
    """SMPL part name -> vertex ids (each vertex in exactly one part)."""
    return {
        name: np.flatnonzero(labels == part).tolist() for part, name in enumerate(SMPL_PART_NAMES)
    }


def landmarks_json(mannequin: Mannequin) -> dict:
    """`extras/landmarks.json`: named keypoints as sparse vertex-weight rows."""
    result = {}
    for (name, _, _), row in zip(design.LANDMARK_DESIGN, mannequin.landmark_regressor, strict=True):
        indices = np.flatnonzero(row)
        result[name] = {"vertices": indices.tolist(), "weights": row[indices].tolist()}
    return result


def make_mannequin(out_dir: Path, overwrite: bool = False) -> Path:
    """Write the mannequin body model to `out_dir` (smpl/ and extras/); returns out_dir.

    Does nothing if the files exist and `overwrite` is false.
    """
    out_dir = Path(out_dir)
    smpl_dir, extras_dir = out_dir / "smpl", out_dir / "extras"
    if not overwrite and (extras_dir / "metadata.json").exists():
        return out_dir
    log.info("generating the mannequin body model in %s", out_dir)
    mannequin = build_mannequin()
    smpl_dir.mkdir(parents=True, exist_ok=True)
    extras_dir.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for gender in ("neutral", "male", "female"):
        path = smpl_dir / f"SMPL_{gender.upper()}.pkl"
        dump_legacy_pickle(smpl_dict(mannequin, gender), path)
        hashes[gender] = hashlib.sha256(path.read_bytes()).hexdigest()
    _write_extras(mannequin, extras_dir, hashes)
    return out_dir


def _write_extras(mannequin: Mannequin, extras_dir: Path, hashes: dict[str, str]) -> None:
    np.save(extras_dir / "J_regressor_h36m.npy", mannequin.h36m_regressor)
    np.save(extras_dir / "J_regressor_extra.npy", mannequin.extra_regressor)
    np.save(extras_dir / "vert_sym_idxs.npy", mannequin.mirror.astype(np.int64))
    params = mean_params()
    np.savez(
        extras_dir / "smpl_mean_params.npz",
        pose=params["pose"],
        shape=params["shape"],
        cam=params["cam"],
    )
    (extras_dir / "smpl_part_segmentation.json").write_text(
        json.dumps(part_segmentation(mannequin.labels))
    )
    (extras_dir / "landmarks.json").write_text(json.dumps(landmarks_json(mannequin), indent=1))
    metadata = {
        "kind": "mannequin",
        "generated": True,
        "note": "A procedurally generated SMPL-format mannequin, NOT the SMPL body model. "
        "Numbers computed with it are not comparable with published SMPL results.",
        "generator_version": GENERATOR_VERSION,
        "num_vertices": surface.SMPL_NUM_VERTICES,
        "num_faces": surface.SMPL_NUM_FACES,
        "num_betas": 10,
        "shape_components": list(rig.SHAPE_COMPONENT_NAMES),
        "gender_betas": {g: b.tolist() for g, b in GENDER_BETAS.items()},
        "posedirs": "zeros (no pose-dependent correctives)",
        "sha256": hashes,
    }
    (extras_dir / "metadata.json").write_text(json.dumps(metadata, indent=1))
