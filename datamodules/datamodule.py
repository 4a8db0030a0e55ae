"""Lightning DataModules of crop samples: one dataset alone, or several mixed with ratios.

`CropDataModule` takes plain arguments (the experiment YAML names them):

    train: [{dataset: surreal, split: train, ratio: 0.6}, {dataset: pw3d, split: train, ratio: 0.4}]
    val:   {pw3d_test: {dataset: pw3d, split: test_spin}}        # named validation splits
    test:  {...}                                                  # named test splits

Training samples the datasets with the configured ratios, as SPIN and PARE train (each draw
picks a dataset with probability ratio / sum of ratios, then one of its samples uniformly),
`samples_per_epoch` draws per epoch (default: the total size). A single training entry without
a ratio is plain shuffling. Validation and test splits keep their order, one DataLoader each,
in the order given (their names are `val_names` / `test_names`). An evaluation entry may add
`image_masks: true` (`CropDataset`'s original-resolution silhouettes in `meta`).

`batch_size` is the global batch; the per-device batch is batch_size / world size and must
divide exactly (ValueError otherwise). Sampling (`datamodules.sampling`): training draws are a
function of (`seed`, epoch), each with its own augmentation seed, served by torchdata's
`StatefulDataLoader`, whose position Lightning keeps in checkpoints, so a run resumed
mid-epoch continues with exactly the draws it would have made; every process takes its own
share of the draws, and evaluation splits are shared out without padding (the same metrics on
1 or N processes). Readers check the body model against the data root
(`datamodules.base.check_body_model`). Method-agnostic preparation (frame extraction, rendered
part labels) runs on first use; `python -m experiments prepare` runs it ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from datamodules.augment import Augmentation
from datamodules.base import BodyModels, ReaderOptions, reader_class
from datamodules.datasets import CropDataset, collate_crops
from datamodules.sampling import EvalSampler, SeededConcatDataset, TrainSampler


def per_device_batch_size(global_batch_size: int, world_size: int) -> int:
    """The per-device batch; ValueError unless the world size divides the global batch."""
    if global_batch_size % world_size:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by the world size "
            f"{world_size}; choose a multiple of {world_size}"
        )
    return global_batch_size // world_size


class CropDataModule(pl.LightningDataModule):
    """Crops for single-person methods (module docstring)."""

    def __init__(
        self,
        data_root: str,
        train: Sequence[Mapping] = (),
        val: Mapping[str, Mapping] | None = None,
        test: Mapping[str, Mapping] | None = None,
        crop_size: int = 224,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        augmentation: Mapping | None = None,
        box_factor: float = 1.2,
        cache_root: str | None = None,
        body_model_root: str = "body_models",
        body_model_name: str = "mannequin",
        allow_mannequin_on_real_data: bool = False,
        skip_bad_samples: bool = False,
        cache_decoded_crops: bool = False,
        target_transform: Callable[[dict], dict] | None = None,
        samples_per_epoch: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data_root = Path(data_root)
        self.train_specs, self.val_specs, self.test_specs = (
            list(train),
            dict(val or {}),
            dict(test or {}),
        )
        self.crop_size, self.box_factor = crop_size, box_factor
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers = num_workers
        self.augmentation = Augmentation(**dict(augmentation or {}))
        self.options = ReaderOptions(
            cache_root=Path(cache_root) if cache_root else None,
            body_models=BodyModels(body_model_root, body_model_name),
            allow_mannequin_on_real_data=allow_mannequin_on_real_data,
        )
        self.skip_bad_samples, self.cache_decoded_crops = skip_bad_samples, cache_decoded_crops
        self.target_transform, self.samples_per_epoch = target_transform, samples_per_epoch
        self.seed = seed
        self.datasets: dict[str, list[CropDataset]] = {}

    @property
    def val_names(self) -> list[str]:
        return list(self.val_specs)

    @property
    def test_names(self) -> list[str]:
        return list(self.test_specs)

    def build(self, spec: Mapping, train: bool) -> CropDataset:
        """A CropDataset for one {dataset, split} entry (augmented only for training)."""
        reader = reader_class(spec["dataset"])(self.data_root, spec["split"], self.options)
        return CropDataset(
            reader,
            self.crop_size,
            self.augmentation if train else None,
            self.target_transform,
            self.box_factor,
            self.skip_bad_samples,
            self.cache_decoded_crops and train,
            image_masks=bool(spec.get("image_masks", False)),
        )

    def setup(self, stage: str | None = None) -> None:
        world = self.trainer.world_size if self.trainer is not None else 1
        self.device_batch = per_device_batch_size(self.batch_size, world)
        self.device_eval_batch = max(1, self.eval_batch_size // world)
        if stage in (None, "fit") and "train" not in self.datasets:
            self.datasets["train"] = [self.build(spec, True) for spec in self.train_specs]
        for name, specs in (("val", self.val_specs), ("test", self.test_specs)):
            if name not in self.datasets and (stage in (None, "fit", "validate", name)):
                self.datasets[name] = [self.build(spec, False) for spec in specs.values()]

    def train_dataloader(self) -> StatefulDataLoader:
        parts = self.datasets["train"]
        if not parts:
            raise ValueError("CropDataModule: no training split configured (train: [...])")
        return StatefulDataLoader(
            SeededConcatDataset(parts),
            batch_size=self.device_batch,
            sampler=self._train_sampler(parts),
            num_workers=self.num_workers,
            collate_fn=collate_crops,
            drop_last=True,
            persistent_workers=False,
        )

    def _train_sampler(self, parts: list[CropDataset]) -> TrainSampler:
        """Plain shuffling for one split without a ratio, else draws with the ratios."""
        given = [spec.get("ratio") for spec in self.train_specs]
        total = sum(len(p) for p in parts)
        if len(parts) == 1 and given[0] is None and self.samples_per_epoch is None:
            return TrainSampler(total, seed=self.seed)
        ratios = [1.0 if r is None else float(r) for r in given]
        weights: list[float] = []
        for part, ratio in zip(parts, ratios, strict=True):
            weights += [ratio / max(len(part), 1)] * len(part)
        return TrainSampler(total, weights, self.samples_per_epoch or total, self.seed)

    def _eval_loaders(self, name: str) -> list[DataLoader]:
        return [
            DataLoader(
                d,
                batch_size=self.device_eval_batch,
                sampler=EvalSampler(len(d)),
                num_workers=self.num_workers,
                collate_fn=collate_crops,
            )
            for d in self.datasets[name]
        ]

    def val_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("val")

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("test")

    def smpl_annotations(self, limit: int) -> list[dict]:
        """SMPL annotations of at most `limit` training samples, evenly spaced over the
        concatenated training splits (`CropDataset.smpl_annotation`); call after `setup`."""
        return [part.smpl_annotation(index) for part, index in self._spread(limit)]

    def training_samples(self, limit: int) -> list[dict]:
        """At most `limit` full training samples (targets included), evenly spaced over the
        concatenated training splits, for baselines that need more than the annotations
        (BodyNet's constant occupancy); call after `setup`."""
        return [part[index] for part, index in self._spread(limit)]

    def _spread(self, limit: int) -> list[tuple[CropDataset, int]]:
        """(split, index) of at most `limit` positions evenly spaced over the training splits."""
        parts = self.datasets.get("train", [])
        total = sum(len(p) for p in parts)
        if total == 0:
            return []
        positions = sorted({int(i) for i in np.linspace(0, total - 1, min(limit, total))})
        result, offset, part = [], 0, 0
        for position in positions:
            while position >= offset + len(parts[part]):
                offset, part = offset + len(parts[part]), part + 1
            result.append((parts[part], position - offset))
        return result

    def skipped_samples(self) -> int:
        """Bad samples skipped so far over every split (with `skip_bad_samples`)."""
        return sum(d.skipped.value for parts in self.datasets.values() for d in parts)


class SkippedSamplesLogger(pl.Callback):
    """Logs `data/skipped_samples` (the DataModule's count) at the end of every epoch."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "skipped_samples"):
            pl_module.log("data/skipped_samples", float(datamodule.skipped_samples()))
