"""The data commands of `python -m experiments`: synth, prepare, check-data, inspect-data.

- `synth --out DIR --size tiny|ci|small|full [--datasets a,b] [--seed N] [--count ID.NAME=N]`
  writes the synthetic world (`datamodules.synthetic.world`).
- `prepare <dataset> [--targets NAME ...] [--voxel-resolution R]` runs the dataset's registered
  method-agnostic steps (or the named method targets) into `cache_root`. Method targets
  register from the method's module, which `TARGET_MODULES` names (datamodules never import a
  method, so this layer imports it).
- `check-data <dataset> --data-root DIR [--split S]` reads every annotation of the requested
  splits (all present splits by default), prints the sample count per split and one
  `path: problem` line per problem; the exit status is 1 when anything is wrong. It reads with
  `allow_mannequin_on_real_data` set, since it validates files rather than producing ground
  truth.
- `inspect-data <dataset> --data-root DIR --split S --index I [--json] [--png OUT]` shows the
  record at position I of the split, without augmentation.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from body import joint_sets
from datamodules.base import BodyModels, DatasetReader, ReaderOptions, reader_class
from datamodules.io import DataError, MissingDataError
from datamodules.records import GENDER_NAMES, SceneRecord, native_keypoints

# Method target name -> the module whose import registers it (`datamodules.cache.register_target`).
TARGET_MODULES = {"bodynet_voxels": "lightning_modules.bodynet.targets"}


def reader_options(cfg: DictConfig, allow_mannequin: bool | None = None) -> ReaderOptions:
    allow = cfg.allow_mannequin_on_real_data if allow_mannequin is None else allow_mannequin
    return ReaderOptions(
        cache_root=Path(cfg.cache_root),
        body_models=BodyModels(cfg.body_model.root, cfg.body_model.name),
        allow_mannequin_on_real_data=bool(allow),
    )


def synth(
    out: Path, size: str, datasets: list[str] | None, seed: int, counts: list[str], cfg: DictConfig
) -> None:
    from datamodules.synthetic.world import write_world

    overrides: dict[str, dict[str, int]] = {}
    for item in counts:
        key, _, value = item.partition("=")
        dataset_id, _, name = key.partition(".")
        if not value or not name:
            raise ValueError(f"--count takes DATASET.NAME=N, got {item!r}")
        overrides.setdefault(dataset_id, {})[name] = int(value)
    info = write_world(
        out, size, datasets, seed, Path(cfg.body_model.root), cfg.body_model.name, overrides
    )
    print(json.dumps(info.get("counts", {}), indent=2, sort_keys=True))


def prepare(dataset_id: str, targets: list[str], options: dict, cfg: DictConfig) -> None:
    from datamodules.cache import PrepareContext, steps_for, target_for

    reader_class(dataset_id)  # registers the dataset's steps
    if targets:  # every method target module, so an unknown name lists them all
        for module in sorted(set(TARGET_MODULES.values())):
            importlib.import_module(module)
    context = PrepareContext(
        data_root=Path(cfg.data_root),
        cache_root=Path(cfg.cache_root),
        body_model_root=Path(cfg.body_model.root),
        body_model_name=cfg.body_model.name,
        options=options,
    )
    steps = {name: target_for(dataset_id, name) for name in targets} or steps_for(dataset_id)
    if not steps:
        print(f"{dataset_id}: nothing to prepare (no derived files)")
    for name, step in steps.items():
        print(f"{dataset_id} {name}: {step(context)}")


def check_data(dataset_id: str, split: str | None, cfg: DictConfig) -> int:
    """Print counts and problems; return the exit status."""
    cls = reader_class(dataset_id)
    data_root = Path(cfg.data_root)
    options = reader_options(cfg, allow_mannequin=True)
    splits = [split] if split else cls.present_splits(data_root)
    problems: list[str] = []
    if not splits:
        problems.append(
            f"{data_root / cls.folder}: no split of {dataset_id} found; expected "
            f"layout: {cls.layout}"
        )
    for name in splits:
        try:
            reader = cls(data_root, name, options)
        except (MissingDataError, DataError, ValueError) as error:
            problems.append(str(error).splitlines()[0])
            continue
        split_problems = reader.check()
        print(f"{dataset_id}/{name}: {len(reader)} samples")
        problems += split_problems
    for line in problems:
        print(line)
    print(f"{len(problems)} problem(s)" if problems else "ok")
    return 1 if problems else 0


def inspect_data(
    dataset_id: str, split: str, index: int, as_json: bool, png: str | None, cfg: DictConfig
) -> None:
    reader = reader_class(dataset_id)(Path(cfg.data_root), split, reader_options(cfg))
    record = reader.record(index, load_image=png is not None)
    description = describe_record(record)
    if as_json:
        json.dump(description, sys.stdout, indent=1)
        print()
    else:
        print(
            f"{record.dataset}/{record.split}[{index}] {record.sample_id}: "
            f"{len(record.people)} people, image {record.image_path} {record.image_size}"
        )
    if png is not None:
        draw_record(record, reader, Path(png))
        print(f"wrote {png}")


def describe_record(record: SceneRecord) -> dict:
    """The `inspect-data --json` dictionary (exactly the issue's keys)."""
    people = [_describe_person(record, person) for person in record.people]
    first = (
        people[0]
        if people
        else {"keypoints2d": None, "keypoints3d": None, "smpl": None, "flags": dict(record.flags)}
    )
    return {
        "dataset": record.dataset,
        "split": record.split,
        "index": record.index,
        "sample_id": record.sample_id,
        "image_path": str(record.image_path),
        "image_size": list(record.image_size),
        "K": np.asarray(record.K).tolist(),
        "joint_set": record.joint_set,
        "joint_names": list(joint_sets.joint_names(record.joint_set)),
        "people": people,
        "keypoints2d": first["keypoints2d"],
        "keypoints3d": first["keypoints3d"],
        "smpl": first["smpl"],
        "flags": first["flags"],
    }


def _describe_person(record: SceneRecord, person) -> dict:
    flags = {**record.flags, **person.flags}
    keypoints3d = None
    if flags.get("has_keypoints3d"):
        keypoints3d = native_keypoints(person.keypoints3d, record.joint_set).tolist()
    smpl = None
    if flags.get("has_smpl") and person.pose is not None:
        smpl = {
            "pose": np.asarray(person.pose).tolist(),
            "betas": np.asarray(person.betas).tolist(),
            "transl": None if person.transl is None else np.asarray(person.transl).tolist(),
            "gender": GENDER_NAMES.get(person.gender, "unknown"),
        }
    return {
        "keypoints2d": native_keypoints(person.keypoints2d, record.joint_set).tolist(),
        "keypoints3d": keypoints3d,
        "smpl": smpl,
        "flags": flags,
    }


def draw_record(record: SceneRecord, reader: DatasetReader, out: Path) -> None:
    """Image with the 2D skeletons | mesh overlays from SMPL | part labels, else each person's
    instance in its colour (silhouette in white without either; `ignore_mask` grey) | for
    records with 3D, a top view (meshes where SMPL is known, else the 3D keypoints; the camera
    looks up the image)."""
    from geometry.drawing import draw_skeleton, save_png

    assert record.image is not None
    edges = joint_sets.drawing_edges(record.joint_set)
    skeleton, meshed = record.image, record.image
    meshes = []
    for person in record.people:
        points = native_keypoints(person.keypoints2d, record.joint_set)
        skeleton = draw_skeleton(skeleton, points, edges)
        mesh = _person_mesh(person, reader)
        if mesh is not None:
            meshes.append(mesh)
            meshed = _overlay(meshed, mesh, record.K)
    panels = [skeleton, meshed, _label_panel(record)]
    top = _top_view(record, meshes, record.image_size[0])
    save_png(out, np.concatenate(panels + ([top] if top is not None else []), axis=1))


def _person_mesh(person, reader: DatasetReader):
    import torch

    if person.pose is None or person.transl is None or reader.options.body_models is None:
        return None
    model = reader.body_models.get(person.gender)
    with torch.no_grad():
        body = model(
            torch.as_tensor(person.pose, dtype=torch.float32)[None],
            torch.as_tensor(person.betas, dtype=torch.float32)[None],
            torch.as_tensor(person.transl, dtype=torch.float32)[None],
        )
    return body.vertices[0], model.faces


def _overlay(image: np.ndarray, mesh, K: np.ndarray) -> np.ndarray:
    from geometry.drawing import overlay_mesh

    return overlay_mesh(image, mesh[0], mesh[1], K)


def _label_panel(record: SceneRecord) -> np.ndarray:
    import torch

    from geometry.drawing import PERSON_COLORS
    from geometry.render import part_colors

    panel = np.zeros((*record.image_size, 3), np.uint8)
    if record.part_segm is not None and record.part_segm.any():
        palette = part_colors(torch.arange(25), 25).numpy()
        panel = (palette[record.part_segm] * 255).astype(np.uint8)
        panel[record.part_segm == 0] = 0
        if record.mask is not None:
            panel[record.mask & (record.part_segm == 0)] = 255  # silhouette without labels
    elif record.instance_map is not None and len(record.people) > 1:
        for k in range(len(record.people)):
            color = np.asarray(PERSON_COLORS[k % len(PERSON_COLORS)]) * 255
            panel[record.instance_map == k + 1] = color.astype(np.uint8)
    elif record.mask is not None:
        panel[record.mask] = 255
    if record.ignore_mask is not None:
        panel[record.ignore_mask] = 128
    return panel


def _top_view(record: SceneRecord, meshes: list, size: int) -> np.ndarray | None:
    """(size, size, 3) view from above: meshes when every person has one, else the people's
    3D keypoints as dots (x right, depth up the panel); None without 3D."""
    import cv2

    from geometry.drawing import PERSON_COLORS, scene_views

    if meshes and len(meshes) == len(record.people):
        return scene_views(meshes, (size, size))["top"]
    people = [p.keypoints3d[p.keypoints3d[:, 3] > 0, :3] for p in record.people]
    people = [points for points in people if len(points)]
    if not people:
        return None
    panel = np.full((size, size, 3), 255, np.uint8)
    everything = np.concatenate(people)
    low, high = everything[:, [0, 2]].min(axis=0), everything[:, [0, 2]].max(axis=0)
    scale = 0.9 * size / max(float((high - low).max()), 1e-3)
    for k, points in enumerate(people):
        color = tuple(int(255 * c) for c in PERSON_COLORS[k % len(PERSON_COLORS)])
        for x, z in points[:, [0, 2]]:
            u = int(0.05 * size + (x - low[0]) * scale)
            v = int(size - 1 - 0.05 * size - (z - low[1]) * scale)
            cv2.circle(panel, (u, v), max(2, size // 200), color, -1)
    return panel
