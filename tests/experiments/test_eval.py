"""The benchmark registry and `python -m experiments eval`: protocol scoring against hand
computations, and train-then-eval end to end on the tiny synthetic 3DPW."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from experiments.benchmarks import (
    BENCHMARKS,
    Estimate,
    get_benchmark,
    score_part_segm,
    score_spin_14,
)
from experiments.cli import main
from experiments.evaluate import benchmark_loader, relocate_paths
from geometry.rotations import axis_angle_to_matrix
from metrics import results_of

# SPIN's constants, written out here so the test does not reuse the code under test.
H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
SCHEMA = {"experiment", "benchmark", "protocol", "joint_set", "num_samples", "checkpoint_sha256",
          "checkpoint", "data_root", "data_tag", "synthetic", "body_model", "code_revision",
          "metrics", "baseline", "config", "date", "limit"}  # fmt: skip
MESH_KEYS = {"mpjpe_mm", "pa_mpjpe_mm", "pve_mm"}


# ----------------------------------------------------------------------------- registry


def test_registry_lists_the_3dpw_benchmarks_with_fresh_metrics():
    assert {"pw3d_test", "pw3d_occ", "pw3d_test_parts"} <= set(BENCHMARKS)
    test, occ = get_benchmark("pw3d_test"), get_benchmark("pw3d_occ")
    assert (test.dataset, test.split, occ.split) == ("pw3d", "test_spin", "occ")
    first, second = test.metrics(), test.metrics()
    assert [m.name for m in first] == ["mpjpe_mm", "pa_mpjpe_mm", "pve_mm"]
    assert all(a is not b for a, b in zip(first, second, strict=True))


def test_unknown_benchmark_names_the_valid_ids(capsys):
    with pytest.raises(ValueError, match=r"Did you mean 'pw3d_test'.*pw3d_occ, pw3d_test"):
        get_benchmark("pw3d_tset")
    assert main(["eval", "--ckpt", "missing.ckpt", "--benchmark", "nope"]) == 2
    assert "pw3d_test_parts" in capsys.readouterr().err


def test_a_corrupt_checkpoint_exits_1_naming_the_file(tmp_path, capsys):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint at all")
    assert main(["eval", "--ckpt", str(broken), "--benchmark", "pw3d_test"]) == 1
    assert "broken.ckpt" in capsys.readouterr().err
    assert main(["eval", "--ckpt", str(tmp_path / "absent.ckpt"), "--benchmark", "pw3d_test"]) == 1
    assert "absent.ckpt" in capsys.readouterr().err


def test_paths_of_the_stored_config_move_with_the_new_roots():
    stored = {"data_root": "/old/world", "cache_root": "/old/world/.cache",
              "data": {"data_root": "/old/world", "cache_root": "/old/world/.cache",
                       "files": ["/old/world/3dpw/x.pkl", "/old/worldwide"]},
              "head": {"mean_params": "/old/bm/mannequin/extras/smpl_mean_params.npz"}}  # fmt: skip
    moves = [("/old/world", "/new/w"), ("/old/world/.cache", "/fast/cache"), ("/old/bm", "bm")]
    moved = relocate_paths(stored, moves)
    assert moved["data"] == {"data_root": "/new/w", "cache_root": "/fast/cache",
                             "files": ["/new/w/3dpw/x.pkl", "/old/worldwide"]}  # fmt: skip
    assert moved["head"]["mean_params"] == "bm/mannequin/extras/smpl_mean_params.npz"
    assert stored["data"]["data_root"] == "/old/world"  # the input is not edited


class EmptyDataModule:
    """A DataModule whose test split selects nothing."""

    def __init__(self, train, val, test) -> None:
        self.test = test

    def setup(self, stage: str) -> None:
        pass

    def test_dataloader(self) -> list[DataLoader]:
        return [DataLoader([])]


def test_a_benchmark_that_selects_no_samples_is_refused():
    data = {"_target_": f"{__name__}.EmptyDataModule", "train": [], "val": {}, "test": {}}
    cfg = OmegaConf.create({"data_root": "/data/real", "data": data})
    with pytest.raises(ValueError, match=r"pw3d_occ selects no samples: split 'occ'.*/data/real"):
        benchmark_loader(cfg, get_benchmark("pw3d_occ"), limit=None)


# ----------------------------------------------------------------------------- protocols


@pytest.fixture(scope="module")
def body_models(body_models_root):
    from datamodules.base import BodyModels

    return BodyModels(body_models_root, "mannequin")


def _ground_truth(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(count, 72, generator=generator, dtype=torch.float64)
    betas = torch.randn(count, 10, generator=generator, dtype=torch.float64)
    return pose, betas


def _spin_14(estimate: Estimate, batch: dict, models) -> dict[str, float]:
    scored = get_benchmark("pw3d_test").metrics()
    score_spin_14(scored, estimate, batch, models)
    return results_of(scored)


def _h36m_regressor(models) -> np.ndarray:
    return np.load(models.get("neutral").model_dir / "extras" / "J_regressor_h36m.npy")


def test_spin_14_of_the_ground_truth_itself_is_zero(body_models):
    pose, betas = _ground_truth(3)
    gender = torch.tensor([0, 0, -1])
    batch = {"pose": pose, "betas": betas, "gender": gender, "has_smpl": torch.ones(3, dtype=bool)}
    result = _spin_14(Estimate(pose, betas), batch, body_models)
    assert set(result) == MESH_KEYS
    assert all(abs(value) < 1e-6 for value in result.values()), result


def test_spin_14_of_a_turned_body_matches_a_hand_computation(body_models):
    """The prediction's global orientation turned by 40 degrees about y: SMPL turns the mesh
    about its root joint J0, so PA-MPJPE is 0 and MPJPE / PVE follow in NumPy from the
    ground-truth mesh. A sample without SMPL ground truth, predicted far off, is skipped."""
    pose, betas = _ground_truth(2, seed=1)
    turn = axis_angle_to_matrix(torch.tensor([0.0, math.radians(40.0), 0.0], dtype=torch.float64))
    rotmats = axis_angle_to_matrix(pose.reshape(2, 24, 3))
    turned = rotmats.clone()
    turned[:, 0] = turn @ rotmats[:, 0]
    turned[1] = torch.eye(3, dtype=torch.float64)  # the sample without ground truth
    pred_betas = betas.clone()
    pred_betas[1] = 10.0 * betas[1]
    batch = {"pose": pose, "betas": betas, "gender": torch.tensor([0, 0]),
             "has_smpl": torch.tensor([True, False])}  # fmt: skip
    result = _spin_14(Estimate(turned, pred_betas), batch, body_models)

    body = body_models.get("neutral", torch.float64)(pose[:1], betas[:1])
    vertices, root = body.vertices[0].numpy(), body.joints[0, 0].numpy()
    rotation = turn.numpy()
    turned_vertices = (vertices - root) @ rotation.T + root
    regressor = _h36m_regressor(body_models)
    joints, turned_joints = regressor @ vertices, regressor @ turned_vertices
    relative = joints[H36M_TO_J14] - joints[0]
    turned_relative = turned_joints[H36M_TO_J14] - turned_joints[0]
    mpjpe = 1000 * np.linalg.norm(turned_relative - relative, axis=-1).mean()
    pve = 1000 * np.linalg.norm(turned_vertices - vertices, axis=-1).mean()
    assert mpjpe > 20 and pve > 20  # a real difference, not a degenerate case
    assert result["mpjpe_mm"] == pytest.approx(mpjpe, rel=1e-6)
    assert result["pve_mm"] == pytest.approx(pve, rel=1e-6)
    assert result["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)


def test_spin_14_ground_truth_uses_the_sample_gender(body_models):
    """Female ground truth against the same parameters through the neutral model."""
    pose, betas = _ground_truth(1, seed=2)
    batch = {"pose": pose, "betas": betas, "gender": torch.tensor([2]),
             "has_smpl": torch.tensor([True])}  # fmt: skip
    result = _spin_14(Estimate(pose, betas), batch, body_models)
    neutral = body_models.get("neutral", torch.float64)(pose, betas).vertices[0].numpy()
    female = body_models.get("female", torch.float64)(pose, betas).vertices[0].numpy()
    pve = 1000 * np.linalg.norm(neutral - female, axis=-1).mean()
    assert pve > 5
    assert result["pve_mm"] == pytest.approx(pve, rel=1e-6)


def test_part_segm_upsamples_the_labels_and_scores_iou_per_part(body_models):
    """2 x 2 labels upsampled to a 4 x 4 crop, IoUs counted by hand (label k is SMPL part
    k - 1: 1 hips, 2 leftUpLeg, 3 rightUpLeg)."""
    labels = torch.tensor([[[1, 2], [0, 0]]])  # (B, h, w), person axis already dropped
    target = torch.zeros(1, 4, 4, dtype=torch.int64)
    target[0, :2, :2] = 1  # hips: exactly the predicted top-left quadrant
    target[0, :2, 2:] = 2  # leftUpLeg: the top-right quadrant ...
    target[0, 0, 2:] = 3  # ... half of which is rightUpLeg in the ground truth
    batch = {"part_segm": target, "has_part_segm": torch.tensor([True])}
    scored = get_benchmark("pw3d_test_parts").metrics()
    score_part_segm(scored, Estimate(extras={"part_segm": labels}), batch, body_models)
    result = results_of(scored)
    assert result["part_segm/iou_background_pct"] == pytest.approx(100.0)
    assert result["part_segm/iou_hips_pct"] == pytest.approx(100.0)
    assert result["part_segm/iou_leftUpLeg_pct"] == pytest.approx(50.0)  # 2 of 4 pixels
    assert result["part_segm/iou_rightUpLeg_pct"] == pytest.approx(0.0)
    assert math.isnan(result["part_segm/iou_head_pct"])  # absent: left out of the mean
    assert result["part_segm/mean_iou_pct"] == pytest.approx(50.0)


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory, body_models_root):
    """The tiny synthetic 3DPW and a pare_tiny checkpoint trained 2 steps on it."""
    from datamodules.synthetic.world import write_world
    from experiments.config import load_experiment
    from experiments.train import train

    root = tmp_path_factory.mktemp("eval")
    world = root / "world"
    write_world(world, "tiny", ("pw3d",), seed=0, body_model_root=body_models_root,
                progress=False)  # fmt: skip
    cfg = load_experiment("pare_tiny", [
        f"body_model.root={body_models_root}", f"cache_root={root / 'train_cache'}",
        f"output_root={root / 'checkpoints'}", "data.train=[{dataset: pw3d, split: train}]",
        "data.batch_size=4", "data.num_workers=0", "trainer.max_steps=2",
        "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "logger=none",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "+model.baseline_samples=50",
    ], data_root=world)  # fmt: skip
    run_dir = train(cfg)
    return {"root": root, "world": world, "ckpt": run_dir / "checkpoints" / "last.ckpt"}


def _eval(trained, body_models_root, benchmark: str, *extra: str) -> list[str]:
    root = trained["root"]
    return ["eval", "--ckpt", str(trained["ckpt"]), "--benchmark", benchmark,
            "--data-root", str(trained["world"]), "--out-root", str(root / "results"),
            f"body_model.root={body_models_root}", f"cache_root={root / 'eval_cache'}",
            "data.num_workers=0", *extra]  # fmt: skip


def _split_size(world: Path, body_models_root: Path, split: str) -> int:
    from datamodules.base import BodyModels, ReaderOptions, reader_class
    from datamodules.datasets import CropDataset

    options = ReaderOptions(body_models=BodyModels(body_models_root), render_part_labels=False)
    return len(CropDataset(reader_class("pw3d")(world, split, options), 64))


@pytest.mark.slow
def test_eval_writes_the_results_of_a_trained_checkpoint(trained, body_models_root, capsys):
    assert main(_eval(trained, body_models_root, "pw3d_test")) == 0
    out = capsys.readouterr().out.splitlines()
    path = Path(out[0])
    results = json.loads(path.read_text())
    assert SCHEMA <= set(results)

    sha = hashlib.sha256(trained["ckpt"].read_bytes()).hexdigest()
    info = (trained["world"] / "SYNTHETIC.json").read_bytes()
    tag = f"synthetic-{hashlib.sha256(info).hexdigest()[:12]}"
    assert path == trained["root"] / "results" / "pare_tiny" / sha[:12] / tag / "pw3d_test.json"
    assert (results["checkpoint_sha256"], results["data_tag"], results["synthetic"]) == (
        sha, tag, True,
    )  # fmt: skip
    assert (results["experiment"], results["benchmark"]) == ("pare_tiny", "pw3d_test")
    assert (results["protocol"], results["joint_set"], results["limit"]) == (
        "spin_14", "lsp_14", None,
    )  # fmt: skip
    assert results["num_samples"] == _split_size(trained["world"], body_models_root, "test_spin")
    assert (
        results["body_model"]["name"] == "mannequin" and len(results["body_model"]["sha256"]) == 64
    )
    assert set(results["code_revision"]) == {"revision", "dirty", "changes_sha256"}

    assert set(results["metrics"]) == MESH_KEYS
    assert all(math.isfinite(v) and v > 0 for v in results["metrics"].values())
    assert results["baseline"]["name"] == "training_mean_body"
    assert set(results["baseline"]["metrics"]) == MESH_KEYS
    assert all(math.isfinite(v) and v > 0 for v in results["baseline"]["metrics"].values())

    # Paths come from this command line, not from the checkpoint.
    eval_cache = str(trained["root"] / "eval_cache")
    assert results["config"]["cache_root"] == eval_cache
    assert results["config"]["data"]["cache_root"] == eval_cache
    assert any(line.startswith("mpjpe_mm") for line in out)


@pytest.mark.slow
def test_eval_of_part_segmentation_with_a_limit(trained, body_models_root, capsys):
    command = _eval(trained, body_models_root, "pw3d_test_parts", "--limit", "3")
    assert main([*command, "+data.eval_batch_size=2"]) == 0
    results = json.loads(Path(capsys.readouterr().out.splitlines()[0]).read_text())
    assert (results["num_samples"], results["limit"], results["joint_set"]) == (3, 3, None)
    assert 0 <= results["metrics"]["part_segm/mean_iou_pct"] <= 100
    assert results["baseline"]["name"] == "none" and results["baseline"]["metrics"] == {}
    assert "part_segm" in results["baseline"]["note"]


@pytest.mark.slow
def test_eval_refuses_overrides_the_checkpoint_config_lacks(trained, body_models_root, capsys):
    assert main(_eval(trained, body_models_root, "pw3d_test", "data.crop_sise=32")) == 2
    error = capsys.readouterr().err
    assert "data.crop_sise" in error and "crop_size" in error
    assert main(_eval(trained, body_models_root, "pw3d_test", "body_model.name=smpl")) == 2
    assert "trained with 'mannequin'" in capsys.readouterr().err


def _figure_args(trained, body_models_root, command: str, *extra: str) -> list[str]:
    root = trained["root"]
    return [command, "--ckpt", str(trained["ckpt"]), "--benchmark", "pw3d_test",
            "--data-root", str(trained["world"]), "--out-root", str(root / "results"),
            f"body_model.root={body_models_root}", f"cache_root={root / 'eval_cache'}",
            "data.num_workers=0", *extra]  # fmt: skip


@pytest.mark.slow
def test_occlusion_analysis_command_writes_maps_meshes_and_the_bar_chart(
    trained, body_models_root, capsys
):
    # The same checkpoint twice stands for the several models Figure 6 compares.
    extra = ("--ckpt", str(trained["ckpt"]), "--limit", "2", "--patch", "16", "--stride", "16")
    args = _figure_args(trained, body_models_root, "occlusion-analysis", *extra)
    assert main(args) == 0
    folder, _, chart = (Path(line) for line in capsys.readouterr().out.splitlines())
    assert folder.name == "occlusion_pw3d_test" and folder.parent.parent.parent.name == "pare_tiny"
    for name in ("occlusion.json", "joint_heatmaps.png", "aggregate.png", "vertex_sensitivity.png"):
        assert (folder / name).stat().st_size > 0, name
    numbers = json.loads((folder / "occlusion.json").read_text())
    assert numbers["patch"] == 16 and numbers["stride"] == 16
    assert chart.name == "occlusion_pw3d_test_per_joint.png" and chart.stat().st_size > 0


@pytest.mark.slow
def test_attention_maps_command_writes_one_figure_per_crop(trained, body_models_root, capsys):
    assert main(_figure_args(trained, body_models_root, "attention-maps", "--limit", "2")) == 0
    folder = Path(capsys.readouterr().out.splitlines()[-1])
    assert sorted(p.name for p in folder.glob("*.png")) == [
        "attention_0000.png",
        "attention_0001.png",
    ]
