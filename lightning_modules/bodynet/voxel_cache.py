"""BodyNet's voxel-target cache: each split's un-augmented crops voxelized once.

`BodyNetTargets` voxelizes the posed ground-truth mesh of every sample (14 ms at 32^3, 60 ms at
128^3 on one CPU core). Where the crop is not geometrically augmented (validation and test
splits; training with colour jitter only, as `bodynet.yaml` does) the grid is the same every
epoch, so `python -m experiments prepare surreal --targets bodynet_voxels --voxel-resolution R`
(also `up3d`) voxelizes every present split once, into

    <cache_root>/bodynet_voxels/v<CACHE_VERSION>/<key>/
        meta.json           dataset, split, resolution, crop_size, box_factor, body model, count
        voxels.npy          (N, ceil(R^3 / 8)) uint8: `np.packbits` of each flattened (R, R, R)
                            grid (all zeros without `has_voxels`)
        has_voxels.npy      (N,) bool: the sample has SMPL in the crop's camera
        crop_matrices.npy   (N, 3, 3) float64: the crop (`meta["crop_matrix"]`) of each grid
        sample_keys.npy     (N,) bytes `<sample_id>#<person>`, sorted; sample_rows.npy their rows

Row i is item i of a test-time `CropDataset` of the split: crop side the step's `crop_size`
option (`--crop-size`, default 2 R: BodyNet's ratio of input to grid, 256 crops for 128^3 and
bodynet_tiny's 64 for 32^3), the default `box_factor`, no
augmentation. 128^3 takes 256 KiB per sample, 32^3 4 KiB.
`key` is `datamodules.cache.source_key` of the split's source (SURREAL: the split folder and
the size and mtime of every clip's `_info.mat`; UP-3D: the split list and every listed image's
annotation files) with the split, resolution, crop size, box factor and the body model's name
and sha256, so editing an annotation or changing the model makes a new entry. UP-3D's grids
are those of its SMPLify fits in the fit camera (`targets.has_voxels`); its images without a
fit hold `has_voxels` False and zero grids.

Reading (`VoxelCache`, from `BodyNetTargets(cache_root=..., data_root=...)`): the entry of the
sample's dataset, split, crop side and the transform's resolution is found once per worker; a
sample's cached grid is used only when its `meta["crop_matrix"]` equals the stored one exactly
(any shift, scale, rotation, flip or partial crop changes it; colour does not), else the caller
voxelizes. An entry whose stored resolution differs from the transform's, or that lacks the
sample, is stale or foreign: ValueError naming the entry, never a silent wrong grid.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from datamodules.base import (
    BodyModels,
    DatasetReader,
    ReaderOptions,
    body_model_sha256,
    reader_class,
)
from datamodules.cache import (
    PrepareContext,
    build_entry,
    entry_dir,
    is_complete,
    register_target,
    source_key,
)
from datamodules.crops import crop_key
from datamodules.datasets import CropDataset
from datamodules.io import MissingDataError
from datamodules.surreal import SurrealReader
from datamodules.up3d import S31_LIST, S31_SPLITS, UP3DReader

log = logging.getLogger(__name__)

STEP, CACHE_VERSION = "bodynet_voxels", 2  # 2: UP-3D fits voxelized
DATASETS = ("surreal", "up3d")
# The test-time crop: CropDataset's default box factor (read from it, so the two cannot drift).
DEFAULT_BOX_FACTOR: float = inspect.signature(CropDataset).parameters["box_factor"].default
CROP_SIDE_PER_CELL = 2  # default crop_size = 2 R (module docstring)
# What a UP-3D record's crop and SMPL come from (`_dataset_info.txt` also selects lsp_test).
UP3D_FILES = ("body.pkl", "joints.npy", "fit_crop_info.txt", "render_light.png", "image.png",
              "dataset_info.txt")  # fmt: skip
S31_FILES = ("image.png", "ann.png")


def packed_size(resolution: int) -> int:
    """Bytes of one packed (R, R, R) grid: ceil(R^3 / 8)."""
    return -(-(resolution**3) // 8)


def pack(grid: Tensor) -> np.ndarray:
    """(R, R, R) bool -> (ceil(R^3 / 8),) uint8, `np.packbits` of the flattened grid."""
    return np.packbits(grid.numpy().reshape(-1))


def unpack(row: np.ndarray, resolution: int) -> Tensor:
    """Inverse of `pack`: (ceil(R^3 / 8),) uint8 -> (R, R, R) bool."""
    bits = np.unpackbits(np.asarray(row), count=resolution**3)
    return torch.from_numpy(bits.astype(bool).reshape((resolution,) * 3))


def sample_key(meta: dict) -> bytes:
    """`datamodules.crops.crop_key` as the bytes the entry's sorted key array holds."""
    return crop_key(meta).encode()


def resolution_option(options: dict) -> int:
    """The required `voxel_resolution` prepare option (`--voxel-resolution R`)."""
    resolution = options.get("voxel_resolution")
    if resolution is None:
        raise ValueError(
            f"{STEP} needs the grid side: pass --voxel-resolution R (e.g. 32, or 128 as the paper)"
        )
    if int(resolution) < 1:
        raise ValueError(f"{STEP}: --voxel-resolution must be positive, got {resolution}")
    return int(resolution)


# ---------------------------------------------------------------------------------------------
# Entries


def annotation_files(reader: DatasetReader) -> tuple[Path, list[Path]]:
    """(source, files): the path that names a split and the files its voxels are made from,
    whose sizes and mtimes key its entry (module docstring)."""
    if isinstance(reader, SurrealReader):
        return reader.split_dir, [clip.path("_info.mat") for clip in reader.clips]
    if isinstance(reader, UP3DReader):
        ids = [up_id for up_id, _ in reader.entries]
        files = [reader.up_dir / f"{i}_{s}" for i in ids for s in UP3D_FILES]
        if reader.split in S31_SPLITS:
            files += [reader.s31_dir / f"{i}_{s}" for i in ids for s in S31_FILES]
            return reader.s31_dir / S31_LIST.format(S31_SPLITS[reader.split]), files
        list_name = "test" if reader.split == "lsp_test" else reader.split
        return reader.up_dir / f"{list_name}.txt", files
    raise ValueError(f"{reader.dataset_id}: no {STEP} cache (datasets: {', '.join(DATASETS)})")


def _file_stats(files: list[Path], data_root: Path) -> str:
    """sha256 over (relative path, size, mtime) of each file; absent files count as size -1."""
    stats = []
    for path in files:
        stat = path.stat() if path.is_file() else None
        relative = str(path.relative_to(data_root))
        stats.append((relative, stat.st_size, stat.st_mtime_ns) if stat else (relative, -1, 0))
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()


def entry_for(
    reader: DatasetReader, cache_root: Path, resolution: int, crop_size: int, models: BodyModels
) -> Path:
    """The entry folder of a split's voxels at this resolution, crop size and body model."""
    source, files = annotation_files(reader)
    key = source_key(
        source,
        reader.data_root,
        files=_file_stats(files, reader.data_root),
        split=reader.split,
        resolution=resolution,
        crop_size=crop_size,
        box_factor=DEFAULT_BOX_FACTOR,
        body_model=models.name,
        body_model_sha256=body_model_sha256(models.model_dir),
    )
    return entry_dir(cache_root, STEP, CACHE_VERSION, key)


# ---------------------------------------------------------------------------------------------
# The prepare step


@dataclass
class SplitEntry:
    """What `prepare` reports of one split's entry."""

    split: str
    num_samples: int
    num_bytes: int
    built: bool


def prepare_voxels(dataset_id: str, context: PrepareContext) -> str:
    """Prepare step `bodynet_voxels`: every present split of `dataset_id` voxelized once at
    `context.options["voxel_resolution"]`; returns the one-line summary."""
    resolution = resolution_option(context.options)
    crop_size = int(context.options.get("crop_size", CROP_SIDE_PER_CELL * resolution))
    cls = reader_class(dataset_id)
    splits = cls.present_splits(context.data_root)
    if not splits:
        raise MissingDataError(
            f"{Path(context.data_root) / cls.folder}: no split of {dataset_id} found; "
            f"expected layout: {cls.layout}"
        )
    models = BodyModels(context.body_model_root, context.body_model_name)
    options = ReaderOptions(cache_root=Path(context.cache_root), body_models=models)
    entries = [
        prepare_split(cls(context.data_root, split, options), context, resolution, crop_size)
        for split in splits
    ]
    return _summary(entries, resolution, crop_size, Path(context.cache_root) / STEP)


def prepare_split(
    reader: DatasetReader, context: PrepareContext, resolution: int, crop_size: int
) -> SplitEntry:
    """Build one split's entry unless it is complete (built once, atomically)."""
    entry = entry_for(reader, Path(context.cache_root), resolution, crop_size, reader.body_models)
    built = not is_complete(entry)
    if built:
        dataset = CropDataset(reader, crop_size, box_factor=DEFAULT_BOX_FACTOR)
        with build_entry(entry) as folder:
            write_split(folder, dataset, resolution, context.progress)
            meta = {
                "dataset": reader.dataset_id,
                "split": reader.split,
                "resolution": resolution,
                "crop_size": crop_size,
                "box_factor": DEFAULT_BOX_FACTOR,
                "body_model": reader.body_models.name,
                "num_samples": len(dataset),
            }
            (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    count = int(json.loads((entry / "meta.json").read_text())["num_samples"])
    return SplitEntry(reader.split, count, (entry / "voxels.npy").stat().st_size, built)


def write_split(folder: Path, dataset: CropDataset, resolution: int, progress: bool) -> None:
    """The arrays of the module docstring for every item of `dataset` (un-augmented)."""
    # targets.py imports this module (for VoxelCache), so its voxelizer is imported here.
    from lightning_modules.bodynet.targets import has_voxels, sample_voxels

    count, models = len(dataset), dataset.reader.body_models
    voxels = np.lib.format.open_memmap(
        folder / "voxels.npy", "w+", np.uint8, (count, packed_size(resolution))
    )  # written row by row: 128^3 grids of a large split do not fit in memory
    has = np.zeros(count, bool)
    matrices = np.zeros((count, 3, 3))
    keys: list[bytes] = []
    name = f"{dataset.reader.dataset_id}/{dataset.reader.split}"
    for index in tqdm(range(count), desc=f"{name} voxels {resolution}^3", disable=not progress):
        sample = dataset[(index, 0)]  # no augmentation: the seed draws nothing
        has[index] = has_voxels(sample)
        voxels[index] = pack(sample_voxels(models, sample, resolution)) if has[index] else 0
        matrices[index] = sample["meta"]["crop_matrix"]
        keys.append(sample_key(sample["meta"]))
    voxels.flush()
    del voxels
    np.save(folder / "has_voxels.npy", has)
    np.save(folder / "crop_matrices.npy", matrices)
    _save_keys(folder, keys, name)


def _save_keys(folder: Path, keys: list[bytes], name: str) -> None:
    """Sorted sample keys and their rows (for a binary search when reading)."""
    array = np.array(keys, dtype=bytes) if keys else np.zeros(0, dtype="S1")
    order = np.argsort(array, kind="stable")
    if len(np.unique(array)) != len(array):
        raise ValueError(f"{name}: two crop samples share a sample id and person; cannot key them")
    np.save(folder / "sample_keys.npy", array[order])
    np.save(folder / "sample_rows.npy", order.astype(np.int64))


def _summary(entries: list[SplitEntry], resolution: int, crop_size: int, root: Path) -> str:
    samples = sum(e.num_samples for e in entries)
    megabytes = sum(e.num_bytes for e in entries) / 2**20
    splits = ", ".join(f"{e.split} {e.num_samples}" for e in entries)
    built = [e.split for e in entries if e.built]
    state = f"built {', '.join(built)}" if built else "already built, nothing to do"
    return (
        f"{samples} samples ({splits}) at {resolution}^3 in {crop_size} px crops, "
        f"{megabytes:.2f} MB in {root}: {state}"
    )


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class CachedSplit:
    """One complete entry, memory-mapped (module docstring)."""

    entry: Path
    resolution: int
    voxels: np.ndarray  # (N, ceil(R^3 / 8)) uint8
    has_voxels: np.ndarray  # (N,) bool
    crop_matrices: np.ndarray  # (N, 3, 3) float64
    keys: np.ndarray  # (N,) bytes, sorted
    rows: np.ndarray  # (N,) int64

    @classmethod
    def open(cls, entry: Path, resolution: int) -> CachedSplit:
        """The entry's arrays; ValueError naming it when they are not `resolution`^3 grids."""
        stored = json.loads((entry / "meta.json").read_text()).get("resolution")
        voxels = np.load(entry / "voxels.npy", mmap_mode="r")
        if stored != resolution or voxels.shape[1:] != (packed_size(resolution),):
            raise ValueError(
                f"{entry}: holds {stored}^3 voxels ({voxels.shape[1:]} bytes per sample), but "
                f"voxel_resolution is {resolution}; delete the entry and rerun "
                f"`prepare DATASET --targets {STEP} --voxel-resolution {resolution}`"
            )
        return cls(
            entry,
            resolution,
            voxels,
            np.load(entry / "has_voxels.npy"),
            np.load(entry / "crop_matrices.npy", mmap_mode="r"),
            np.load(entry / "sample_keys.npy"),
            np.load(entry / "sample_rows.npy"),
        )

    def row(self, meta: dict) -> int:
        """The sample's row; ValueError naming the entry when it has none (a stale entry)."""
        key = sample_key(meta)
        position = int(np.searchsorted(self.keys, key))
        found = position < len(self.keys) and self.keys[position] == key
        row = int(self.rows[position]) if found else -1
        if not 0 <= row < len(self.voxels):
            raise ValueError(
                f"{self.entry}: no row for sample {key.decode()} among its {len(self.voxels)} "
                f"(stale or foreign entry); delete it and rerun `prepare --targets {STEP}`"
            )
        return row

    def grid(self, meta: dict) -> Tensor | None:
        """(R, R, R) bool cached voxels of an un-augmented crop, None for any other crop."""
        row = self.row(meta)
        if not np.array_equal(self.crop_matrices[row], meta["crop_matrix"]):
            return None  # an augmented (or differently cut) crop: the caller voxelizes it
        if not self.has_voxels[row]:
            raise ValueError(
                f"{self.entry}: sample {sample_key(meta).decode()} has SMPL now but had none "
                f"when the entry was built (stale entry); delete it and rerun prepare"
            )
        return unpack(self.voxels[row], self.resolution)


class VoxelCache:
    """Cached voxels for `BodyNetTargets`: entries found per (dataset, split, crop side) on
    first use in each process; dropped when pickled (module docstring)."""

    def __init__(self, cache_root: str, data_root: str, resolution: int) -> None:
        self.cache_root, self.data_root = Path(cache_root), Path(data_root)
        self.resolution = resolution
        self._splits: dict[tuple[str, str, int], CachedSplit | None] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_splits": {}}

    def grid(self, sample: dict, models: BodyModels) -> Tensor | None:
        """The sample's cached (R, R, R) voxels, or None (no entry, or an augmented crop)."""
        meta = sample.get("meta") or {}
        if meta.get("dataset") not in DATASETS or "crop_matrix" not in meta:
            return None
        split = self.split(meta["dataset"], meta["split"], int(sample["image"].shape[-1]), models)
        return None if split is None else split.grid(meta)

    def split(
        self, dataset_id: str, split: str, crop_size: int, models: BodyModels
    ) -> CachedSplit | None:
        key = (dataset_id, split, crop_size)
        if key not in self._splits:
            self._splits[key] = self._find(dataset_id, split, crop_size, models)
        return self._splits[key]

    def _find(
        self, dataset_id: str, split: str, crop_size: int, models: BodyModels
    ) -> CachedSplit | None:
        options = ReaderOptions(cache_root=self.cache_root)
        reader = reader_class(dataset_id)(self.data_root, split, options)
        entry = entry_for(reader, self.cache_root, self.resolution, crop_size, models)
        if not is_complete(entry):
            return None
        log.info("%s/%s: %d^3 voxels from %s", dataset_id, split, self.resolution, entry)
        return CachedSplit.open(entry, self.resolution)


def register(dataset_ids: tuple[str, ...] = DATASETS) -> None:
    """Make `prepare <dataset> --targets bodynet_voxels` run `prepare_voxels`."""
    for dataset_id in dataset_ids:
        register_target(dataset_id, STEP, functools.partial(prepare_voxels, dataset_id))


register()
