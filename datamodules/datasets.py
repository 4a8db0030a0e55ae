"""Torch datasets of crop samples over any reader: one item per (record, person).

`CropDataset` reads a record, draws augmentation, cuts the crop with `crop_from_scene`, applies
the photometric augmentation, makes tensors and hands the sample to the method's
`target_transform` (DESIGN.md: methods add their own targets in the workers).

- Bad samples: a corrupt file raises (the error names file and sample) unless
  `skip_bad_samples`; then the sample is replaced by the next good one and counted in a
  counter shared with the DataLoader workers (`skipped`), which the DataModule logs at the end
  of each epoch. Never a silent zero tensor.
- `cache_decoded_crops`: the first time a person is read, an un-augmented crop with a margin
  (`CACHE_MARGIN` x the crop) is kept in memory as a small scene record; later epochs crop and
  augment from it with the same single warp, without decoding the image again. The cache lives
  in the process that fills it: use it with `num_workers=0` or persistent workers, and budget
  about (1.25 x S)^2 x 3 bytes per person.
- Randomness: an item indexed `(index, seed)` (the training sampler's draws,
  `datamodules.sampling.TrainSampler`) draws its augmentation from a NumPy generator seeded
  with `seed`, so the crop depends on the draw alone and a resumed run repeats it exactly; a
  plain index seeds the generator from torch's RNG (seeded per worker by Lightning).
- `image_masks`: `meta["image_mask"]` is the record's person silhouette (H, W) bool at the
  original image size (None without `has_mask`), for metrics taken at the original resolution
  (BodyNet's UP-3D silhouettes); with `meta["crop_matrix"]` it maps a crop-space prediction
  back. A test split asks for it with `image_masks: true` in its DataModule entry.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from datamodules.augment import Augmentation
from datamodules.base import DatasetReader
from datamodules.crops import Crop, CropParams, crop_from_scene, to_tensors
from datamodules.io import DataError, MissingDataError
from datamodules.records import PersonRecord, SceneRecord
from datamodules.scenes import scene_sample

CACHE_MARGIN = 1.25
MAX_SKIPS = 50


class CropDataset(Dataset):
    """Crops of every person of a reader's split (module docstring)."""

    def __init__(
        self,
        reader: DatasetReader,
        crop_size: int,
        augmentation: Augmentation | None = None,
        target_transform: Callable[[dict], dict] | None = None,
        box_factor: float = 1.2,
        skip_bad_samples: bool = False,
        cache_decoded_crops: bool = False,
        normalize: bool = True,
        image_masks: bool = False,
    ) -> None:
        self.reader, self.crop_size = reader, crop_size
        self.image_masks = image_masks
        self.augmentation, self.target_transform = augmentation, target_transform
        self.box_factor, self.normalize = box_factor, normalize
        self.skip_bad_samples, self.cache_decoded_crops = skip_bad_samples, cache_decoded_crops
        self.skipped = multiprocessing.Value("i", 0)
        self.items = self._index()
        self._cache: dict[tuple[int, int], SceneRecord] = {}

    def _index(self) -> list[tuple[int, int]]:
        """(record, person) pairs; a record whose annotation is bad is skipped and counted
        with `skip_bad_samples`, else its error propagates."""
        items = []
        for record in range(len(self.reader)):
            try:
                people = self.reader.num_people(record)
            except (DataError, MissingDataError):
                if not self.skip_bad_samples:
                    raise
                self.skipped.value += 1
                continue
            items += [(record, person) for person in range(people)]
        return items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        index, seed = item if isinstance(item, tuple) else (item, None)
        return with_skips(self, index, lambda i: self._sample(self.items[i], seed))

    def smpl_annotation(self, index: int) -> dict:
        """{pose (72,), betas (10,), gender, has_smpl} of sample `index` as annotated (no
        pixels read, no augmentation): for training statistics such as the mean-body baseline
        and for selecting evaluation subsets by shape."""
        record_index, person_index = self.items[index]
        person = self.reader.record(record_index, load_image=False).people[person_index]
        has_smpl = bool(person.flags.get("has_smpl")) and person.pose is not None
        return {
            "pose": person.pose if has_smpl else np.zeros(72),
            "betas": person.betas if has_smpl else np.zeros(10),
            "gender": int(person.gender),
            "has_smpl": has_smpl,
        }

    def _sample(self, item: tuple[int, int], seed: int | None = None) -> dict:
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        rng = np.random.default_rng(seed)
        record, person = self._record(item)
        augmentation = self.augmentation or Augmentation()
        params = augmentation.crop_params(rng)
        box = augmentation.partial_box(record.people[person].box, rng)
        crop = crop_from_scene(
            record,
            person,
            self.crop_size,
            params,
            self._box_factor(item),
            self._root_joint(record, person),
            box,
        )
        crop.image = augmentation.photometric(crop.image, rng)
        sample = to_tensors(crop, self.normalize)
        if self.image_masks:  # scoring at the original resolution (BodyNet's UP-3D silhouettes)
            mask = record.mask if bool(record.flags.get("has_mask")) else None
            sample["meta"]["image_mask"] = None if mask is None else mask.astype(bool)
        return self.target_transform(sample) if self.target_transform else sample

    def _box_factor(self, item: tuple[int, int]) -> float:
        return self.box_factor / CACHE_MARGIN if item in self._cache else self.box_factor

    def _record(self, item: tuple[int, int]) -> tuple[SceneRecord, int]:
        if item in self._cache:
            return self._cache[item], 0
        record = self.reader.record(item[0])
        if self.cache_decoded_crops:
            self._cache[item] = self._cached_record(record, item[1])
        return record, item[1]

    def _cached_record(self, record: SceneRecord, person: int) -> SceneRecord:
        """An un-augmented, margin-padded crop of one person, as a one-person scene record."""
        size = round(self.crop_size * CACHE_MARGIN)
        crop = crop_from_scene(record, person, size, CropParams(), self.box_factor * CACHE_MARGIN)
        return crop_as_record(record, person, crop)

    def _root_joint(self, record: SceneRecord, person: int) -> np.ndarray | None:
        target = record.people[person]
        models = self.reader.options.body_models
        if target.betas is None or models is None:
            return None
        return models.rest_root_joint(target.betas, target.gender)


def with_skips(dataset, index: int, sample: Callable[[int], dict]) -> dict:
    """`sample(index)`, or with `dataset.skip_bad_samples` the next good one (counted in
    `dataset.skipped`); DataError after `MAX_SKIPS` bad ones in a row."""
    for attempt in range(MAX_SKIPS):
        try:
            return sample((index + attempt) % len(dataset))
        except (DataError, MissingDataError):
            if not dataset.skip_bad_samples:
                raise
            with dataset.skipped.get_lock():
                dataset.skipped.value += 1
    raise DataError(
        f"{dataset.reader.dataset_id}/{dataset.reader.split}: {MAX_SKIPS} bad samples "
        f"in a row from index {index}"
    )


class SceneDataset(Dataset):
    """Scene samples (`datamodules.scenes.scene_sample`) of every record of a reader's split,
    resized and padded to `size` (H, W), for the multi-person methods; records without a
    person are kept (the scene collate pads people). Bad samples as in `CropDataset`."""

    def __init__(
        self,
        reader: DatasetReader,
        size: tuple[int, int],
        target_transform: Callable[[dict], dict] | None = None,
        skip_bad_samples: bool = False,
        normalize: bool = True,
    ) -> None:
        self.reader, self.normalize = reader, normalize
        self.size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.target_transform, self.skip_bad_samples = target_transform, skip_bad_samples
        self.skipped = multiprocessing.Value("i", 0)

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> dict:
        return with_skips(self, index, self._sample)

    def _sample(self, index: int) -> dict:
        sample = scene_sample(self.reader.record(index), self.size, self.normalize)
        return self.target_transform(sample) if self.target_transform else sample


def crop_as_record(record: SceneRecord, person: int, crop: Crop) -> SceneRecord:
    """A crop turned back into a one-person scene record (for the decoded-crop cache)."""
    source = record.people[person]
    matrix = crop.meta["crop_matrix"]
    corners = source.box.reshape(2, 2) @ matrix[:2, :2].T + matrix[:2, 2]
    has_smpl = source.pose is not None and source.transl is not None
    person_record = PersonRecord(
        keypoints2d=crop.keypoints2d,
        keypoints3d=crop.keypoints3d,
        box=corners.reshape(4),
        pose=crop.pose if has_smpl else None,
        betas=source.betas,
        transl=crop.transl if has_smpl else None,
        gender=source.gender,
        flags=source.flags,
        track_id=source.track_id,
    )
    return SceneRecord(
        dataset=record.dataset,
        split=record.split,
        index=record.index,
        sample_id=record.sample_id,
        image_path=record.image_path,
        image_size=crop.image.shape[:2],
        K=crop.K,
        joint_set=record.joint_set,
        people=[person_record],
        flags=record.flags,
        image=crop.image,
        part_segm=crop.part_segm.astype(np.uint8),
        mask=crop.mask,
        meta=record.meta,
        extra_maps=crop.extra_maps,
    )


def collate_crops(samples: list[dict]) -> dict:
    """Stack crop samples; `meta` stays a list of dicts."""
    metas = [sample["meta"] for sample in samples]
    batch = default_collate([{k: v for k, v in s.items() if k != "meta"} for s in samples])
    batch["meta"] = metas
    return batch
