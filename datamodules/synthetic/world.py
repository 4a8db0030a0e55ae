"""`python -m experiments synth`: write the synthetic world, every dataset in its native layout.

    <out>/<folder>/...       one folder per dataset (DESIGN.md's data table), native files
    <out>/SYNTHETIC.json     generator_version, seed, size, datasets {id: size},
                             body_model {name, sha256}; created or updated by each run

Each dataset's writer lives in `datamodules/synthetic/<dataset>.py` and exposes `SIZES` (counts
per size name: `tiny` for format tests, `ci` for the learning tests, `small` for the demo,
`full` for bigger worlds; every count can be overridden) and `write(dataset_dir, renderer, rng,
counts, progress) -> {split: number of samples}`. The random generator of a dataset is seeded
from (seed, dataset index), so a dataset's content does not depend on which others are
written with it. SYNTHETIC.json is written last: a root whose run was interrupted lacks its
entry, and readers refuse to read a synthetic dataset the file does not list.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datamodules.base import SYNTHETIC_FILE, body_model_sha256
from datamodules.io import write_text
from datamodules.synthetic.render import SceneRenderer

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SIZE_NAMES = ("tiny", "ci", "small", "full")
# dataset id -> (writer module, folder under the world root); DESIGN.md's data table.
WRITERS: dict[str, tuple[str, str]] = {
    "surreal": ("datamodules.synthetic.surreal", "surreal"),
    "up3d": ("datamodules.synthetic.up3d", "up3d"),
    "h36m": ("datamodules.synthetic.h36m", "h36m"),
    "pw3d": ("datamodules.synthetic.pw3d", "3dpw"),
    "coco": ("datamodules.synthetic.coco", "coco"),
    "panoptic": ("datamodules.synthetic.panoptic", "panoptic"),
    "jta": ("datamodules.synthetic.jta", "jta"),
    "mupots": ("datamodules.synthetic.mupots", "mupots"),
}
DATASET_INDEX = {
    name: index
    for index, name in enumerate(
        ("surreal", "up3d", "h36m", "pw3d", "coco", "panoptic", "jta", "mupots")
    )
}


def write_world(
    out: Path,
    size: str,
    datasets: Sequence[str] | None = None,
    seed: int = 0,
    body_model_root: Path = Path("body_models"),
    body_model_name: str = "mannequin",
    overrides: dict[str, dict[str, int]] | None = None,
    progress: bool = True,
) -> dict:
    """Write the requested datasets (all if None) of world `size` under `out`; return the
    updated SYNTHETIC.json content. `overrides` maps dataset id -> {count name: value}."""
    if size not in SIZE_NAMES:
        raise ValueError(f"unknown size {size!r}; sizes: {SIZE_NAMES}")
    datasets = list(datasets or WRITERS)
    unknown = [d for d in datasets if d not in WRITERS]
    if unknown:
        raise ValueError(f"unknown dataset ids {unknown}; synthetic datasets: {sorted(WRITERS)}")
    out = Path(out)
    renderer = SceneRenderer(body_model_root, body_model_name)
    info = _read_info(out)
    model_sha = body_model_sha256(renderer.models["neutral"].model_dir)
    if info.get("body_model", {}).get("sha256", model_sha) != model_sha:
        info["datasets"] = {}  # another body model: earlier datasets no longer match
    for dataset_id in datasets:
        module_name, folder = WRITERS[dataset_id]
        module = importlib.import_module(module_name)
        counts = {**module.SIZES[size], **(overrides or {}).get(dataset_id, {})}
        rng = np.random.default_rng([seed, DATASET_INDEX[dataset_id]])
        with tqdm(desc=f"synth {dataset_id} ({size})", unit="frame", disable=not progress) as bar:
            written = module.write(out / folder, renderer, rng, counts, bar.update)
        log.info("synthetic %s: %s", dataset_id, written)
        info.setdefault("datasets", {})[dataset_id] = size
        info.setdefault("counts", {})[dataset_id] = written
    info.update(
        generator_version=GENERATOR_VERSION,
        seed=seed,
        size=size,
        body_model={"name": body_model_name, "sha256": model_sha},
    )
    write_text(out / SYNTHETIC_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def _read_info(out: Path) -> dict:
    path = out / SYNTHETIC_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
