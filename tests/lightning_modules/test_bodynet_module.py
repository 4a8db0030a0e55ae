"""BodyNetModule: every loss term backpropagates, frozen subnetworks stay unchanged across a
training step, stages chain through checkpoints, the part network starts from the shape
network, prediction fields, and one Lightning step of every BodyNet experiment."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from experiments.config import available_experiments, load_experiment, resolve
from lightning_modules.bodynet.module import SUBNETWORKS, BodyNetModule
from lightning_modules.bodynet.network import BodyNetNetwork
from lightning_modules.bodynet.targets import BodyNetTargets

BODYNET_EXPERIMENTS = [n for n in available_experiments() if n.startswith("bodynet")]
ALL_OCCUPANCY = {"pose2d": 1.0, "segm": 1.0, "pose3d": 1.0, "voxels": 1.0,
                 "reproj_front": 1.0, "reproj_side": 1.0}  # fmt: skip
ALL_PARTS = {"pose2d": 1.0, "segm": 1.0, "pose3d": 1.0, "parts": 1.0,
             "parts_reproj_front": 1.0, "parts_reproj_side": 1.0}  # fmt: skip
SMALL_EXPERIMENT = [
    "data.crop_size=64", "model.network.voxel_resolution=32", "model.network.features=16",
    "model.network.hourglass_depth=2", "model.network.num_stacks=1", "data.batch_size=2",
    "data.num_workers=0",
]  # fmt: skip


def _network(parts: int = 0, **inputs) -> BodyNetNetwork:
    return BodyNetNetwork(
        input_size=64, voxel_resolution=32, num_stacks=1, features=16, hourglass_depth=2,
        num_part_classes=parts, **inputs,
    )  # fmt: skip


def _module(parts: int = 0, inputs: dict | None = None, **kwargs) -> BodyNetModule:
    torch.manual_seed(0)
    weights = kwargs.pop("loss_weights", ALL_PARTS if parts else ALL_OCCUPANCY)
    optimizer = partial(torch.optim.RMSprop, lr=1e-3)
    network = _network(parts, **(inputs or {}))
    return BodyNetModule(network, optimizer, loss_weights=weights, **kwargs)


@pytest.fixture(scope="module")
def batch(tiny_world, body_models_root) -> dict:
    from datamodules.base import BodyModels, ReaderOptions, reader_class
    from datamodules.datasets import CropDataset, collate_crops

    options = ReaderOptions(body_models=BodyModels(body_models_root))
    transform = BodyNetTargets(str(body_models_root), voxel_resolution=32, part_voxels=True)
    reader = reader_class("surreal")(tiny_world, "train", options)
    dataset = CropDataset(reader, 64, target_transform=transform)
    return collate_crops([dataset[i] for i in range(4)])


@pytest.mark.parametrize("parts", [0, 7])
def test_every_loss_term_is_finite_and_reaches_the_network(batch, parts: int) -> None:
    module = _module(parts)
    terms = module.compute_losses(batch, module(batch["image"]))
    assert set(terms) == set(ALL_PARTS if parts else ALL_OCCUPANCY)
    total = sum(terms.values())
    assert isinstance(total, torch.Tensor)
    total.backward()
    assert all(math.isfinite(float(v.detach())) and float(v.detach()) > 0 for v in terms.values())
    for name in SUBNETWORKS:
        grads = [p.grad for p in module.subnetwork_parameters(name) if p.grad is not None]
        assert grads and torch.stack([g.norm() for g in grads]).sum() > 0, name


def _snapshot(module: BodyNetModule, name: str) -> list[torch.Tensor]:
    return [
        t.detach().clone() for m in module.subnetwork_modules(name) for t in m.state_dict().values()
    ]


def test_frozen_subnetworks_stay_unchanged_across_a_training_step(batch) -> None:
    module = _module(trainable=["pose3d"])  # stage (ii): 3D pose on fixed 2D pose and parts
    module.train()
    for frozen in ("pose2d", "segm", "shape"):
        assert not any(
            m.training for part in module.subnetwork_modules(frozen) for m in part.modules()
        )
        assert not any(p.requires_grad for p in module.subnetwork_parameters(frozen))
    before = {name: _snapshot(module, name) for name in SUBNETWORKS}
    optimizer = module.configure_optimizers()
    loss = sum(module.compute_losses(batch, module(batch["image"])).values())
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    optimizer.step()
    for name in SUBNETWORKS:
        after = _snapshot(module, name)
        same = all(torch.equal(a, b) for a, b in zip(before[name], after, strict=True))
        assert same == (name != "pose3d"), name  # batch-norm statistics included


def _save(module: BodyNetModule, path: Path) -> Path:
    state = {f"network.{k}": v for k, v in module.network.state_dict().items()}
    torch.save({"state_dict": state}, path)
    return path


def test_stages_chain_through_checkpoints(tmp_path: Path) -> None:
    first = _module()
    for parameter in first.network.parameters():
        parameter.data.normal_()
    path = _save(first, tmp_path / "stage.ckpt")
    second = _module(init_from=str(path), trainable=["shape"])
    second.initialise_from_checkpoints()
    for a, b in zip(
        first.network.state_dict().values(), second.network.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match=r"gone\.ckpt"):
        _module(init_from=str(tmp_path / "gone.ckpt")).initialise_from_checkpoints()
    torch.save({"state_dict": {"other.weight": torch.zeros(1)}}, tmp_path / "foreign.ckpt")
    with pytest.raises(ValueError, match=r"foreign\.ckpt"):
        _module(init_from=str(tmp_path / "foreign.ckpt")).initialise_from_checkpoints()
    (tmp_path / "truncated.ckpt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"truncated\.ckpt"):
        _module(init_from=str(tmp_path / "truncated.ckpt")).initialise_from_checkpoints()


def test_an_input_ablation_loads_only_the_subnetworks_before_it(tmp_path: Path) -> None:
    first = _module()
    for parameter in first.network.parameters():
        parameter.data.normal_()
    path = _save(first, tmp_path / "stage2.ckpt")
    ablation = _module(
        inputs={"shape_inputs": ["pose2d"]}, init_from=str(path), trainable=["shape"],
        init_subnetworks=["pose2d", "segm", "pose3d"],
    )  # fmt: skip
    untouched = {k: v.clone() for k, v in ablation.network.state_dict().items()}
    ablation.initialise_from_checkpoints()
    loaded, trained = first.network.state_dict(), ablation.network.state_dict()
    for key, value in trained.items():
        upstream = not key.startswith(("shape.", "voxel_heads."))
        assert torch.equal(value, loaded[key] if upstream else untouched[key]), key
    with pytest.raises(
        RuntimeError, match=r"shape\.inputs\.stem"
    ):  # all subnetworks: shapes differ
        _module(
            inputs={"shape_inputs": ["pose2d"]}, init_from=str(path)
        ).initialise_from_checkpoints()
    mismatched = _module(
        inputs={"pose3d_inputs": ["rgb"]}, init_from=str(path),
        init_subnetworks=["pose2d", "pose3d"],
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"stage2\.ckpt.*'pose3d\.inputs\.stem\.0\.weight'"):
        mismatched.initialise_from_checkpoints()
    with pytest.raises(ValueError, match="init_subnetworks"):
        _module(init_subnetworks=["voxels"])


def test_the_part_stage_starts_from_the_shape_stage(batch, tmp_path: Path) -> None:
    shape = _module()
    for parameter in shape.network.voxel_heads.parameters():
        parameter.data.normal_(0.0, 0.05)
    path = _save(shape, tmp_path / "shape.ckpt")
    parts = _module(parts=7, init_parts_from=str(path))
    parts.initialise_from_checkpoints()
    with torch.no_grad():
        occupancy = torch.sigmoid(shape.eval()(batch["image"]).voxels[-1])
        scores = parts.eval()(batch["image"]).voxels[-1]
    torch.testing.assert_close(1 - scores.softmax(dim=1)[:, 0], occupancy, atol=1e-5, rtol=1e-5)


def test_prediction_fields(batch) -> None:
    module = _module().eval()
    with torch.no_grad():
        prediction = module.predict_step(batch)
    assert prediction.keypoints3d.shape[:2] == (4, 1) and prediction.pose is None
    occupancy = prediction.extras["occupancy"]
    assert occupancy.shape == (4, 1, 32, 32, 32) and 0 <= occupancy.min() <= occupancy.max() <= 1
    assert prediction.extras["segm"].shape == (4, 1, 16, 16)
    from body.joint_sets import canonical_indices

    pelvis = canonical_indices("bodynet_16")[6]
    truth = batch["keypoints3d"][:, pelvis, 2]
    torch.testing.assert_close(prediction.extras["root_depth"][:, 0], truth)


def test_the_betas_regressor_learns_betas_and_predicts_no_voxels(batch) -> None:
    """Section 4.2's alternative: the betas loss reaches the regressor (and, end to end, the
    earlier subnetworks), a few steps on one batch reduce it, and prediction gives betas."""
    weights = {"pose2d": 1.0, "segm": 1.0, "pose3d": 1.0, "betas": 1.0}
    module = _module(inputs={"num_betas": 10}, loss_weights=weights)
    output = module(batch["image"])
    assert output.voxels == [] and output.betas[-1].shape == (4, 10)
    terms = module.compute_losses(batch, output)
    assert set(terms) == set(weights)
    terms["betas"].backward()
    for name in SUBNETWORKS:
        grads = [p.grad for p in module.subnetwork_parameters(name) if p.grad is not None]
        assert grads and torch.stack([g.norm() for g in grads]).sum() > 0, name
    regressor = _module(inputs={"num_betas": 10}, loss_weights={"betas": 1.0},
                        trainable=["shape"])  # fmt: skip
    optimizer = torch.optim.Adam(regressor.subnetwork_parameters("shape"), lr=1e-3)
    first = last = None
    for _ in range(20):
        optimizer.zero_grad()
        loss = regressor.compute_losses(batch, regressor(batch["image"]))["betas"]
        loss.backward()
        optimizer.step()
        first = float(loss) if first is None else first
        last = float(loss)
    assert last < 0.5 * first, (first, last)
    with torch.no_grad():
        prediction = regressor.eval().predict_step(batch)
    assert prediction.betas is not None and prediction.betas.shape == (4, 1, 10)
    assert "occupancy" not in prediction.extras and prediction.pose is None
    with pytest.raises(ValueError, match="unknown loss weights"):
        _module(inputs={"num_betas": 10}, loss_weights={"voxels": 1.0})


def test_mistakes_in_the_configuration_are_named() -> None:
    with pytest.raises(ValueError, match="voxel"):
        _module(loss_weights={"voxel": 1.0})
    with pytest.raises(ValueError, match="parts"):
        _module(loss_weights={"parts": 1.0})  # an occupancy network has no part loss
    with pytest.raises(ValueError, match="trainable"):
        _module(trainable=["pose2d", "shapes"])


def _fit_one_step(cfg, root: Path) -> tuple[BodyNetModule, pl.Trainer]:
    """The experiment's module and DataModule through one training step and one validation."""
    model = instantiate(cfg.model, _convert_="all")
    datamodule = instantiate(cfg.data, _convert_="all")
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=1, val_check_interval=1,
        num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
    )  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    return model, trainer


@pytest.fixture(scope="module")
def stage_checkpoints(tmp_path_factory) -> dict[int, Path]:
    """Checkpoints of untrained occupancy (0) and part (7) networks of SMALL_EXPERIMENT's sizes,
    for the stages that start from an earlier one."""
    root = tmp_path_factory.mktemp("stages")
    return {parts: _save(_module(parts), root / f"parts{parts}.ckpt") for parts in (0, 7)}


def _init_overrides(experiment: str, checkpoints: dict[int, Path]) -> list[str]:
    from omegaconf import OmegaConf

    model = load_experiment(experiment).model
    parts = int(model.network.num_part_classes)
    overrides = []
    if OmegaConf.is_missing(model, "init_from"):
        overrides.append(f"model.init_from={checkpoints[parts]}")
    if OmegaConf.is_missing(model, "init_parts_from"):
        overrides.append(f"model.init_parts_from={checkpoints[0]}")
    return overrides


@pytest.mark.parametrize("experiment", BODYNET_EXPERIMENTS)
def test_one_training_step_of_every_experiment(
    experiment, tiny_world, body_models_root, tmp_path, stage_checkpoints
):
    cfg = resolve(load_experiment(experiment, [
        f"body_model.root={body_models_root}", f"cache_root={tmp_path / 'cache'}",
        *SMALL_EXPERIMENT, *_init_overrides(experiment, stage_checkpoints),
    ], data_root=tiny_world))  # fmt: skip
    _, trainer = _fit_one_step(cfg, tmp_path)
    assert trainer.global_step == 1
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert cfg["callbacks"]["best"]["monitor"] in trainer.callback_metrics  # what "best" ranks by


def test_the_balancing_callback_measures_bodynets_losses(tiny_world, body_models_root, tmp_path):
    from experiments.cli import main

    overrides = [
        f"body_model.root={body_models_root}", f"cache_root={tmp_path / 'cache'}",
        f"output_root={tmp_path}", *SMALL_EXPERIMENT, "trainer.max_steps=2",
        "trainer.limit_val_batches=0", "logger=none",
        "+callbacks.balance._target_=lightning_modules.common.loss_balancing.GradientLossBalancing",
        "+callbacks.balance.steps=1",
    ]  # fmt: skip
    assert main(["train", "bodynet_tiny", "--data-root", str(tiny_world), *overrides]) == 0
    (run,) = (tmp_path / "bodynet_tiny").iterdir()
    import json

    weights = json.loads((run / "loss_weights.json").read_text())["loss_weights"]
    assert set(weights) == set(ALL_OCCUPANCY)
    assert sum(weights.values()) == pytest.approx(1.0)


def test_the_constant_baseline_picks_the_best_threshold_on_the_training_grids() -> None:
    from lightning_modules.bodynet.baseline import ConstantOccupancy

    small = torch.zeros(8, 8, 8, dtype=torch.bool)
    small[3:5, 3:5, 3:5] = True  # 8 voxels
    large = torch.zeros(8, 8, 8, dtype=torch.bool)
    large[2:6, 2:6, 2:6] = True  # 64 voxels, containing `small`
    baseline = ConstantOccupancy(8)
    baseline.fit(torch.stack([small, large, large]))
    # mean: 1 on `small`, 2/3 on the rest of `large`. Thresholds up to 0.65 give `large`
    # (IoUs 1/8, 1, 1), higher ones `small` (1, 1/8, 1/8): the first level of the best wins.
    assert baseline.fitted and float(baseline.threshold) == pytest.approx(0.05)
    assert torch.equal(baseline(2)[0], large) and baseline(2).shape == (2, 8, 8, 8)
    with pytest.raises(ValueError, match="training voxels"):
        baseline.fit(torch.zeros(0, 8, 8, 8, dtype=torch.bool))


def test_validation_reports_the_constant_baseline(tiny_world, body_models_root, tmp_path):
    cfg = resolve(load_experiment("bodynet_tiny", [
        f"body_model.root={body_models_root}", f"cache_root={tmp_path / 'cache'}",
        *SMALL_EXPERIMENT, "model.baseline_samples=4",
    ], data_root=tiny_world))  # fmt: skip
    model, trainer = _fit_one_step(cfg, tmp_path)
    assert model.baseline.fitted and model.baseline.mean.max() > 0
    value = float(trainer.callback_metrics["val/surreal_val/baseline/voxel_iou_pct"])
    assert 0 < value <= 100
