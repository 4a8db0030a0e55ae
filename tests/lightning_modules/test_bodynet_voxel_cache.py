"""BodyNet's voxel cache on the tiny synthetic SURREAL: `prepare --targets bodynet_voxels`
stores exactly the on-the-fly grids of the un-augmented crops, `BodyNetTargets(cache_root=...)`
uses them only for those crops, a second prepare rebuilds nothing, and a stale or mismatched
entry is an error naming it."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.augment import Augmentation
from datamodules.base import BodyModels, ReaderOptions, reader_class
from datamodules.cache import PrepareContext, target_for
from datamodules.datasets import CropDataset
from experiments.cli import main
from lightning_modules.bodynet import targets as bodynet_targets
from lightning_modules.bodynet import voxel_cache
from lightning_modules.bodynet.targets import BodyNetTargets

RESOLUTION, SIDE = 32, 64  # bodynet_tiny's grid and crop (the step's default crop is 2 R)
SPLITS = ("train", "val", "test", "val_bodynet")


def _context(world: Path, cache_root: Path, body_models_root: Path, **options) -> PrepareContext:
    return PrepareContext(world, cache_root, body_models_root, "mannequin", options, False)


@pytest.fixture(scope="module")
def prepared(tiny_world, body_models_root, tmp_path_factory) -> tuple[Path, str]:
    """(cache root, summary) after one prepare of every SURREAL split at 32^3."""
    cache_root = tmp_path_factory.mktemp("voxel_cache")
    context = _context(tiny_world, cache_root, body_models_root, voxel_resolution=RESOLUTION)
    return cache_root, target_for("surreal", voxel_cache.STEP)(context)


def _dataset(world: Path, cache_root: Path, body_models_root: Path, split: str, **augment):
    options = ReaderOptions(cache_root=cache_root, body_models=BodyModels(body_models_root))
    reader = reader_class("surreal")(world, split, options)
    return CropDataset(reader, SIDE, Augmentation(**augment) if augment else None)


def _entry(world: Path, cache_root: Path, body_models_root: Path, split: str) -> Path:
    reader = reader_class("surreal")(world, split, ReaderOptions(cache_root=cache_root))
    models = BodyModels(body_models_root)
    return voxel_cache.entry_for(reader, cache_root, RESOLUTION, SIDE, models)


def _transforms(world, cache_root, body_models_root) -> tuple[BodyNetTargets, BodyNetTargets]:
    """(with the cache, without it) at 32^3."""
    root = str(body_models_root)
    cached = BodyNetTargets(
        root, voxel_resolution=RESOLUTION, cache_root=str(cache_root), data_root=str(world)
    )
    return cached, BodyNetTargets(root, voxel_resolution=RESOLUTION)


def _num_samples(world: Path, cache_root: Path, body_models_root: Path) -> int:
    return sum(len(_dataset(world, cache_root, body_models_root, split)) for split in SPLITS)


def test_prepare_packs_every_split_at_r3_over_8_bytes(prepared, tiny_world, body_models_root):
    cache_root, summary = prepared
    total = _num_samples(tiny_world, cache_root, body_models_root)
    assert summary.startswith(f"{total} samples") and "at 32^3 in 64 px crops" in summary
    assert summary.endswith("built train, val, test, val_bodynet")
    for split in SPLITS:
        entry = _entry(tiny_world, cache_root, body_models_root, split)
        voxels = np.load(entry / "voxels.npy")
        count = len(_dataset(tiny_world, cache_root, body_models_root, split))
        assert voxels.shape == (count, RESOLUTION**3 // 8) and voxels.dtype == np.uint8
        assert np.load(entry / "has_voxels.npy").all()
        assert json.loads((entry / "meta.json").read_text())["resolution"] == RESOLUTION


def test_cached_grids_equal_the_on_the_fly_grids(prepared, tiny_world, body_models_root):
    cache_root, _ = prepared
    cached, _ = _transforms(tiny_world, cache_root, body_models_root)
    models = cached.models()
    for split in SPLITS:
        dataset = _dataset(tiny_world, cache_root, body_models_root, split)
        for index in range(len(dataset)):
            sample = dataset[index]
            grid = cached.cache.grid(sample, models)
            assert grid is not None, (split, index)
            expected = bodynet_targets.sample_voxels(models, sample, RESOLUTION)
            assert torch.equal(grid, expected), (split, index)
            assert grid.sum() > 100  # a body, not an empty grid


def test_the_transform_uses_the_cache_for_unaugmented_and_colour_jittered_crops(
    prepared, tiny_world, body_models_root, monkeypatch
):
    cache_root, _ = prepared
    cached, on_the_fly = _transforms(tiny_world, cache_root, body_models_root)
    jittered = _dataset(tiny_world, cache_root, body_models_root, "val", names=["color"])
    expected = [on_the_fly(jittered[(i, 7)])["bodynet_voxels"] for i in range(3)]

    def no_voxelization(*args, **kwargs):
        raise AssertionError("voxelized although the cache holds this crop")

    monkeypatch.setattr(bodynet_targets, "body_voxels", no_voxelization)
    for index in range(3):
        out = cached(jittered[(index, 7)])
        assert torch.equal(out["bodynet_voxels"], expected[index]) and out["has_bodynet_voxels"]


@pytest.mark.parametrize(
    "augment",
    [
        {"names": ["jitter"]},
        {"names": ["scale"]},
        {"names": ["rotation"], "rotation_prob": 1.0},
        {"names": ["flip"], "flip_prob": 1.0},
    ],
    ids=["shift", "scale", "rotation", "flip"],
)
def test_augmented_crops_are_voxelized_on_the_fly(prepared, tiny_world, body_models_root, augment):
    cache_root, _ = prepared
    cached, on_the_fly = _transforms(tiny_world, cache_root, body_models_root)
    plain = _dataset(tiny_world, cache_root, body_models_root, "val")[0]
    sample = _dataset(tiny_world, cache_root, body_models_root, "val", **augment)[(0, 3)]
    assert cached.cache.grid(sample, cached.models()) is None
    voxels = cached(sample)["bodynet_voxels"]
    assert torch.equal(voxels, on_the_fly(sample)["bodynet_voxels"])
    assert not torch.equal(voxels, cached(plain)["bodynet_voxels"])  # the test can fail


def test_a_second_prepare_builds_nothing(prepared, tiny_world, body_models_root):
    cache_root, _ = prepared
    entries = [_entry(tiny_world, cache_root, body_models_root, split) for split in SPLITS]
    stamps = [(entry / "voxels.npy").stat().st_mtime_ns for entry in entries]
    context = _context(tiny_world, cache_root, body_models_root, voxel_resolution=RESOLUTION)
    summary = target_for("surreal", voxel_cache.STEP)(context)
    assert "already built, nothing to do" in summary
    assert [(entry / "voxels.npy").stat().st_mtime_ns for entry in entries] == stamps


def test_a_missing_resolution_names_the_option(tiny_world, body_models_root, tmp_path):
    context = _context(tiny_world, tmp_path, body_models_root)
    with pytest.raises(ValueError, match=r"--voxel-resolution"):
        target_for("surreal", voxel_cache.STEP)(context)
    with pytest.raises(ValueError, match=r"cache_root needs data_root"):
        BodyNetTargets(str(body_models_root), cache_root=str(tmp_path))


def test_a_mismatched_or_stale_entry_is_an_error_naming_it(
    prepared, tiny_world, body_models_root, tmp_path
):
    cache_root = tmp_path / "cache"
    shutil.copytree(prepared[0], cache_root)
    entry = _entry(tiny_world, cache_root, body_models_root, "val")
    sample = _dataset(tiny_world, cache_root, body_models_root, "val")[0]
    cached, _ = _transforms(tiny_world, cache_root, body_models_root)
    stranger = {**sample, "meta": {**sample["meta"], "sample_id": "val/run0/nobody/0000"}}
    with pytest.raises(ValueError, match=rf"{re.escape(str(entry))}: no row for sample"):
        cached(stranger)
    meta = json.loads((entry / "meta.json").read_text())
    (entry / "meta.json").write_text(json.dumps({**meta, "resolution": 64}))
    cached, _ = _transforms(tiny_world, cache_root, body_models_root)
    with pytest.raises(ValueError, match=rf"{re.escape(str(entry))}: holds 64\^3 voxels"):
        cached(sample)


def test_the_transform_pickles_without_its_open_entries(prepared, tiny_world, body_models_root):
    cached, _ = _transforms(tiny_world, prepared[0], body_models_root)
    cached(_dataset(tiny_world, prepared[0], body_models_root, "val_bodynet")[0])
    assert cached.cache._splits
    assert pickle.loads(pickle.dumps(cached)).cache._splits == {}


def test_pack_round_trips_and_takes_r3_over_8_bytes() -> None:
    grid = torch.rand(RESOLUTION, RESOLUTION, RESOLUTION) > 0.7
    packed = voxel_cache.pack(grid)
    assert packed.shape == (RESOLUTION**3 // 8,) and voxel_cache.packed_size(128) == 256 * 1024
    assert torch.equal(voxel_cache.unpack(packed, RESOLUTION), grid)


def test_the_cli_prepares_the_tiny_world_once(tiny_world, body_models_root, tmp_path, capsys):
    argv = [
        "prepare", "surreal", "--targets", "bodynet_voxels", "--voxel-resolution", "32",
        "--data-root", str(tiny_world), f"body_model.root={body_models_root}",
        f"cache_root={tmp_path / 'cache'}",
    ]  # fmt: skip
    total = _num_samples(tiny_world, tmp_path / "cache", body_models_root)
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert f"surreal bodynet_voxels: {total} samples" in first and "built train" in first, first
    assert (
        len(
            list(
                (tmp_path / "cache" / voxel_cache.STEP).glob(
                    f"v{voxel_cache.CACHE_VERSION}/*/COMPLETE"
                )
            )
        )
        == 4
    )
    assert main(argv) == 0
    assert "already built, nothing to do" in capsys.readouterr().out
    assert main(argv[:4] + argv[6:]) == 1
    assert "--voxel-resolution" in capsys.readouterr().err
