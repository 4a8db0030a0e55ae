"""What every dataset reader shares: the reader interface, the body-model check, SYNTHETIC.json.

A reader (`DatasetReader` subclass, one per dataset format) opens one named split of one
dataset folder under `data_root` and returns `SceneRecord`s by position in the split's
documented order. It validates only the split it was asked for, raises `MissingDataError`
naming the path and the expected layout when something is absent, and `DataError` naming the
file, sample and field when a file is corrupt or holds NaN or infinite values.

Body models. Readers that derive SMPL translations or render part labels need the body model.
A synthetic root (one with `SYNTHETIC.json`) must be read with the body model that file names
(its sha256 must match), or the reader refuses; a real root refuses the generated mannequin
unless `allow_mannequin_on_real_data=True` (DESIGN.md "Data on disk"), which results record.
"""

from __future__ import annotations

import abc
import copy
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from datamodules.io import DataError, MissingDataError
from datamodules.records import SceneRecord

SYNTHETIC_FILE = "SYNTHETIC.json"
GENDER_MODEL_NAMES = {0: "neutral", 1: "male", 2: "female", -1: "neutral"}


class BodyModelMismatch(ValueError):
    """The configured body model is not the one this data root must be read with."""


def read_synthetic_info(data_root: Path) -> dict | None:
    """The parsed `SYNTHETIC.json` of `data_root`, or None for a real (non-synthetic) root."""
    path = Path(data_root) / SYNTHETIC_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from error


def body_model_sha256(model_dir: Path) -> str:
    """sha256 over the three SMPL pickles of a body model folder (in gender order); computed
    once per (folder, file sizes and modification times)."""
    files = [Path(model_dir) / "smpl" / f"SMPL_{g}.pkl" for g in ("NEUTRAL", "MALE", "FEMALE")]
    stamp = tuple((f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _sha256_of(str(Path(model_dir).resolve()), stamp)


@functools.lru_cache(maxsize=16)
def _sha256_of(model_dir: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for gender in ("NEUTRAL", "MALE", "FEMALE"):
        digest.update((Path(model_dir) / "smpl" / f"SMPL_{gender}.pkl").read_bytes())
    return digest.hexdigest()


def check_body_model(
    data_root: Path, model_dir: Path, generated: bool, allow_mannequin_on_real_data: bool = False
) -> None:
    """Refuse a body model that does not belong with `data_root` (module docstring)."""
    info = read_synthetic_info(data_root)
    name = model_dir.name
    if info is not None:
        wanted = info.get("body_model", {})
        sha = body_model_sha256(model_dir)
        if wanted.get("sha256") != sha:
            raise BodyModelMismatch(
                f"{Path(data_root) / SYNTHETIC_FILE}: this synthetic world was rendered with body "
                f"model {wanted.get('name')!r} (sha256 {str(wanted.get('sha256'))[:12]}...), but "
                f"the configured one is {name!r} (sha256 {sha[:12]}...). Set body_model.name to "
                "the world's model, or re-render the world with `python -m experiments synth`."
            )
    elif generated and not allow_mannequin_on_real_data:
        raise BodyModelMismatch(
            f"{data_root} is a real data root (no {SYNTHETIC_FILE}), but the body model {name!r} "
            "is the generated mannequin: ground truth from real SMPL parameters would be wrong. "
            "Convert real SMPL files (README 'Using real SMPL files') and set "
            "body_model.name=smpl, or set allow_mannequin_on_real_data=true (results record it)."
        )


class BodyModels:
    """The three gendered body models of one name, built on first use (readers share one).

    One model per (gender, dtype): `BodyModel` follows its input's dtype by casting its
    buffers, which costs milliseconds per call when float32 part-label renders and float64
    keypoint fits share one model; each dtype gets its own copy instead."""

    def __init__(self, root: str | Path, name: str = "mannequin") -> None:
        self.root, self.name = Path(root), name
        self._models: dict[tuple[str, torch.dtype], torch.nn.Module] = {}

    def get(self, gender: str | int, dtype: torch.dtype = torch.float32):
        from body import BodyModel

        key = GENDER_MODEL_NAMES[gender] if isinstance(gender, int) else gender
        if (key, dtype) not in self._models:
            if (key, torch.float32) not in self._models:
                self._models[key, torch.float32] = BodyModel(self.root, self.name, key)
            if dtype != torch.float32:
                model = copy.deepcopy(self._models[key, torch.float32])
                self._models[key, dtype] = model.to(dtype)
        return self._models[key, dtype]

    @property
    def model_dir(self) -> Path:
        return self.get("neutral").model_dir

    @property
    def generated(self) -> bool:
        return bool(self.get("neutral").metadata.get("generated"))

    def rest_root_joint(self, betas: np.ndarray, gender: str | int) -> np.ndarray:
        """(..., 3) float64 rest-pose pelvis J0 of the shaped body (for world-to-camera moves).

        J0 is linear in betas, so it comes from a cached (3,) offset and (3, B) map per gender,
        without touching the model (which stays in whatever dtype its callers use)."""
        offset, directions = self._root_map(
            GENDER_MODEL_NAMES[gender] if isinstance(gender, int) else gender
        )
        betas = np.asarray(betas, dtype=np.float64)
        return offset + betas @ directions.T

    @functools.lru_cache(maxsize=3)  # noqa: B019  (one entry per gender, lives with the object)
    def _root_map(self, gender: str) -> tuple[np.ndarray, np.ndarray]:
        smpl = self.get(gender).smpl
        regressor = smpl.J_regressor[0].double()  # (V,)
        offset = regressor @ smpl.v_template.double()  # (3,)
        directions = torch.einsum("v,vcl->cl", regressor, smpl.shapedirs.double())  # (3, B)
        return offset.numpy(), directions.numpy()

    def keypoints(
        self, pose: np.ndarray, betas: np.ndarray, transl: np.ndarray, gender: str | int
    ) -> np.ndarray:
        """(N, K, 3) float64 canonical keypoints of N bodies (camera-frame SMPL parameters)."""
        model = self.get(gender, torch.float64)
        with torch.no_grad():
            out = model(
                torch.as_tensor(np.asarray(pose, np.float64).reshape(-1, 72)),
                torch.as_tensor(np.asarray(betas, np.float64).reshape(-1, 10)),
                torch.as_tensor(np.asarray(transl, np.float64).reshape(-1, 3)),
            )
        return out.keypoints.numpy()


@dataclass
class ReaderOptions:
    """Options every reader takes (plain values; the DataModule passes them on).

    `render_part_labels=False` skips the part labels that readers render from SMPL ground truth
    (3DPW, Human3.6M) for consumers that do not use them; those records then say
    `has_part_segm=False`."""

    cache_root: Path | None = None
    body_models: BodyModels | None = None
    allow_mannequin_on_real_data: bool = False
    render_part_labels: bool = True


class DatasetReader(abc.ABC):
    """One named split of one dataset folder; records by position (module docstring).

    Subclasses set the class attributes and implement `_open`, `__len__` and `record`.
    """

    dataset_id: ClassVar[str]  # DESIGN.md's dataset id (`surreal`, `pw3d`, ...)
    folder: ClassVar[str]  # folder under data_root
    joint_set: ClassVar[str]  # the dataset's native joint set
    splits: ClassVar[tuple[str, ...]]  # every named split
    layout: ClassVar[str]  # the expected tree, for error messages

    def __init__(self, data_root: str | Path, split: str, options: ReaderOptions | None = None):
        if split not in self.splits:
            raise ValueError(
                f"{self.dataset_id}: unknown split {split!r}; named splits: {self.splits}"
            )
        self.data_root = Path(data_root)
        self.root = self.data_root / self.folder
        self.split = split
        self.options = options or ReaderOptions()
        self.synthetic = read_synthetic_info(self.data_root) is not None
        if not self.root.is_dir():
            raise MissingDataError(
                f"{self.root}: {self.dataset_id} folder not found.\n  expected layout: "
                f"{self.layout}\n  (README section 'Datasets'; `make synth` writes a synthetic one)"
            )
        if self.options.body_models is not None:
            models = self.options.body_models
            check_body_model(
                self.data_root,
                models.model_dir,
                models.generated,
                self.options.allow_mannequin_on_real_data,
            )
        self._open()

    @property
    def cache_root(self) -> Path:
        return Path(self.options.cache_root or self.data_root / ".cache")

    @property
    def body_models(self) -> BodyModels:
        if self.options.body_models is None:
            raise ValueError(f"{self.dataset_id} reader needs body_models for split {self.split}")
        return self.options.body_models

    @abc.abstractmethod
    def _open(self) -> None:
        """Read the split's index (lists, annotation files); raise on a missing split file."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def record(self, index: int, load_image: bool = True) -> SceneRecord:
        """The scene record at position `index` of the split (image pixels if `load_image`)."""

    def num_people(self, index: int) -> int:
        """People in record `index` (readers override this when the default read is slow)."""
        return len(self.record(index, load_image=False).people)

    @classmethod
    def present_splits(cls, data_root: str | Path) -> list[str]:
        """The named splits whose files exist under `data_root` (for check-data)."""
        present = []
        for split in cls.splits:
            try:
                cls(data_root, split)
            except (MissingDataError, DataError):
                continue
            present.append(split)
        return present

    def check(self) -> list[str]:
        """Problems of this split as `path: problem` lines: reads every annotation (not pixels)."""
        problems = []
        for index in range(len(self)):
            try:
                self.record(index, load_image=False)
            except (MissingDataError, DataError) as error:
                problems.append(str(error).splitlines()[0])
        return problems

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(
                f"{self.dataset_id}/{self.split}: index {index} not in [0, {len(self)})"
            )


READERS: dict[str, type[DatasetReader]] = {}


def register_reader(cls: type[DatasetReader]) -> type[DatasetReader]:
    """Class decorator: make a reader findable by its dataset id (check-data, inspect-data)."""
    READERS[cls.dataset_id] = cls
    return cls


def reader_class(dataset_id: str) -> type[DatasetReader]:
    import datamodules.readers  # noqa: F401  (registers every reader)

    if dataset_id not in READERS:
        raise KeyError(f"unknown dataset id {dataset_id!r}; known: {sorted(READERS)}")
    return READERS[dataset_id]


def frames_in_ranges(frames: Sequence[int], ranges: Sequence[tuple[int, int]]) -> list[int]:
    """The frames inside any of the half-open `ranges` [start, end)."""
    return [f for f in frames if any(start <= f < end for start, end in ranges)]
