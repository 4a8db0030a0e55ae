"""`chain`: BodyNet's staged training end to end at reduced size on the tiny world. Each stage
starts from the last checkpoint of the one it names, and the subnetworks a stage freezes leave
it exactly as they entered it (weights and batch-norm statistics)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from experiments.chains import load_chain, run_chain
from experiments.config import ConfigError

SMALL = [
    "data.crop_size=64", "model.network.voxel_resolution=32", "model.network.features=16",
    "model.network.hourglass_depth=2", "model.network.num_stacks=1", "data.batch_size=2",
    "data.num_workers=0", "trainer.max_steps=1", "trainer.limit_val_batches=1",
    "trainer.val_check_interval=1", "trainer.num_sanity_val_steps=0", "logger=none",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
]  # fmt: skip
PREFIXES = {
    "pose2d": ("network.pose2d.",), "segm": ("network.segm.",), "pose3d": ("network.pose3d.",),
    "shape": ("network.shape.", "network.voxel_heads."),
}  # fmt: skip
# What each stage trains (the rest must come through unchanged from the stage it starts from).
TRAINED = {
    "bodynet_stage2_pose3d": {"pose3d"},
    "bodynet_stage3_voxels": {"shape"},
    "bodynet_stage4_reproj": {"shape"},
    "bodynet_stage5_end2end": {"pose2d", "segm", "pose3d", "shape"},
    "bodynet_parts": {"shape"},
    "bodynet_parts_reproj": {"shape"},
    "bodynet_stage4_reproj_fv": {"shape"},
    "bodynet_end2end_fv": {"pose2d", "segm", "pose3d", "shape"},
    "bodynet_end2end_no_intermediate": {"pose2d", "segm", "pose3d", "shape"},
    "bodynet_end2end_no_intermediate_fv": {"pose2d", "segm", "pose3d", "shape"},
    **{f"bodynet_shape_from_{inputs}": {"shape"}
       for inputs in ("pose2d", "rgb", "segm", "pose3d", "segm_pose3d")},
    **{f"bodynet_pose3d_from_{inputs}": {"pose3d"}
       for inputs in ("rgb", "pose2d", "segm", "pose2d_segm")},
    "bodynet_betas_regression": {"shape"},
    "bodynet_up3d_finetune": {"pose2d", "segm", "pose3d", "shape"},
}  # fmt: skip
# Input ablations and the betas regressor: the subnetwork whose inputs or kind change starts
# fresh (its weights differ in shape).
REINITIALISED = {"bodynet_parts": "shape", "bodynet_betas_regression": "shape", **{
    name: next(iter(trained)) for name, trained in TRAINED.items() if "_from_" in name
}}  # fmt: skip


def _state(run: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    return checkpoint["state_dict"]


def _same(a: dict, b: dict, subnetwork: str) -> bool:
    keys = [k for k in a if k.startswith(PREFIXES[subnetwork])]
    assert keys
    return all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in keys)


@pytest.mark.slow
def test_the_bodynet_chain_trains_every_stage_from_the_one_before(
    tiny_world, body_models_root, tmp_path
) -> None:
    paths = [f"body_model.root={body_models_root}", f"cache_root={tmp_path / 'cache'}",
             f"output_root={tmp_path / 'checkpoints'}"]  # fmt: skip
    runs = run_chain("bodynet", [*paths, *SMALL], tiny_world)
    stages = load_chain("bodynet")
    assert list(runs) == [stage["experiment"] for stage in stages]
    for stage in stages[1:]:
        name = stage["experiment"]
        ((key, source),) = stage["init"].items()
        config = yaml.safe_load((runs[name] / "config.yaml").read_text())
        assert config["model"][key.split(".")[1]] == str(runs[source] / "checkpoints/last.ckpt")
        before, after = _state(runs[source]), _state(runs[name])
        for subnetwork in PREFIXES:
            if REINITIALISED.get(name) == subnetwork:
                continue  # the part network's output layer (1 -> 7 classes), an input ablation's
            frozen = subnetwork not in TRAINED[name]
            assert _same(before, after, subnetwork) == frozen, (name, subnetwork)


def test_a_chain_refuses_a_stage_that_names_a_later_one(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"stages": [
        {"experiment": "bodynet_stage2_pose3d", "init": {"model.init_from": "bodynet_tiny"}},
        {"experiment": "bodynet_tiny"},
    ]}))  # fmt: skip
    with pytest.raises(ConfigError, match=r"stages\[0\].*bodynet_tiny"):
        load_chain(str(path))
    with pytest.raises(ConfigError, match="bodynet"):
        load_chain("bodynett")
