"""Ground-truth part labels rendered from SMPL ground truth, for datasets that have SMPL but no
part maps (3DPW, Human3.6M): PARE's part loss and part IoU need them.

The people of a record are posed with the configured body model (each with its gender) and
rendered with `geometry.rasterize` at the original image size: a 24-part label map (a face
takes the part of its first vertex, the argmax of the skinning weights) and an instance map
(nearer person wins). Results are cached per frame under
`<cache_root>/part_labels/v<CACHE_VERSION>/<key>/<frame>.npz`, where the key covers the source
annotation file, the body model's sha256 and the image size; each frame file is written
atomically, so a frame is rendered once, on first use or by `python -m experiments prepare`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from datamodules.base import BodyModels, DatasetReader, ReaderOptions, body_model_sha256
from datamodules.cache import PrepareContext, entry_dir, source_key
from datamodules.io import atomic_path
from datamodules.records import PersonRecord
from geometry.rasterizer import rasterize

CACHE_VERSION = 1
STEP = "part_labels"


def render_part_maps(
    body_models: BodyModels,
    people: list[PersonRecord],
    K: np.ndarray,
    image_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(part_segm, instance_map), both (H, W) uint8, of the people that have SMPL."""
    vertices, faces, labels = [], None, None
    owners = []
    for index, person in enumerate(people):
        if person.pose is None or person.betas is None or person.transl is None:
            continue
        model = body_models.get(person.gender)
        with torch.no_grad():
            out = model(
                torch.as_tensor(person.pose, dtype=torch.float32)[None],
                torch.as_tensor(person.betas, dtype=torch.float32)[None],
                torch.as_tensor(person.transl, dtype=torch.float32)[None],
            )
        vertices.append(out.vertices[0])
        owners.append(index + 1)
        faces, labels = model.faces, model.smpl.lbs_weights.argmax(dim=1)
    height, width = image_size
    if not vertices or faces is None or labels is None:
        return np.zeros((height, width), np.uint8), np.zeros((height, width), np.uint8)
    num_vertices, num_faces = vertices[0].shape[0], faces.shape[0]
    scene_faces = torch.cat([faces + k * num_vertices for k in range(len(vertices))])
    scene = torch.cat(vertices)[None]
    K_tensor = torch.as_tensor(K, dtype=torch.float32)[None]
    face_index = rasterize(scene, scene_faces, K_tensor, (height, width)).face_index[0]
    covered = face_index >= 0
    face = face_index.clamp(min=0)
    part = torch.where(covered, labels[faces[face % num_faces, 0]] + 1, 0)
    owner = torch.as_tensor(owners)[face // num_faces]
    instance = torch.where(covered, owner, 0)
    return part.numpy().astype(np.uint8), instance.numpy().astype(np.uint8)


def render_layered_part_maps(
    body_models: BodyModels,
    layers: list[tuple[PersonRecord, np.ndarray]],
    image_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(part_segm, instance_map) of people each seen by its own camera K, painted in order
    (later ones in front); instance k + 1 for layers[k]. For pseudo-ground-truth fits made
    in per-person crop cameras (COCO's EFT fits), whose depths share no frame."""
    part = np.zeros(image_size, np.uint8)
    instance = np.zeros(image_size, np.uint8)
    for k, (person, K) in enumerate(layers):
        person_part, _ = render_part_maps(body_models, [person], K, image_size)
        part = np.where(person_part > 0, person_part, part)
        instance = np.where(person_part > 0, np.uint8(k + 1), instance)
    return part, instance


def cached_part_maps(
    cache_root: Path,
    data_root: Path,
    source: Path,
    frame_key: str,
    body_models: BodyModels,
    people: list[PersonRecord],
    K: np.ndarray,
    image_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """`render_part_maps` through the cache (module docstring)."""
    return cached_maps(
        cache_root, data_root, source, frame_key, body_models, image_size,
        lambda: render_part_maps(body_models, people, K, image_size),
    )  # fmt: skip


def cached_maps(
    cache_root: Path,
    data_root: Path,
    source: Path,
    frame_key: str,
    body_models: BodyModels,
    image_size: tuple[int, int],
    render: Callable[[], tuple[np.ndarray, np.ndarray]],
    **key_options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """(part_segm, instance_map) of a frame from the cache, or `render()` once and cached; the
    key covers `source`, the body model, the image size and `key_options`."""
    sha = body_model_sha256(body_models.model_dir)
    key = source_key(source, data_root, body_model=sha, size=image_size, **key_options)
    path = entry_dir(cache_root, STEP, CACHE_VERSION, key) / f"{frame_key}.npz"
    if path.is_file():
        with np.load(path) as data:
            return data["part_segm"], data["instance_map"]
    part, instance = render()
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, part_segm=part, instance_map=instance)
    return part, instance


def part_label_step(reader_cls: type[DatasetReader]) -> Callable[[PrepareContext], str]:
    """A prepare step that renders (and caches) the part labels of every present split."""

    def step(context: PrepareContext) -> str:
        from tqdm import tqdm

        options = ReaderOptions(
            cache_root=context.cache_root,
            body_models=BodyModels(context.body_model_root, context.body_model_name),
        )
        total = 0
        for split in reader_cls.present_splits(context.data_root):
            reader = reader_cls(context.data_root, split, options)
            for index in tqdm(
                range(len(reader)), desc=f"part labels {split}", disable=not context.progress
            ):
                reader.record(index, load_image=True)
            total += len(reader)
        return f"part labels cached for {total} records under {context.cache_root / STEP}"

    return step
