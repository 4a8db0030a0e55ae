"""BodyNet's benchmarks: the scorers on hand-made batches (a perfect prediction scores
perfectly, a baseline scores only what it predicts), BodyNet's s10 / s20 selection, the fits
cache, and `eval` / `fit` end to end on the tiny world (the constant_occupancy baseline beside
the model, fits computed once and reused by eval and by the subsets)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import metrics
from experiments import benchmarks
from experiments.benchmarks import BODYNET_JOINTS, Estimate, get_benchmark, score_batch
from experiments.fitting import FitCache

SMALL = [
    "data.crop_size=64", "model.network.voxel_resolution=32", "model.network.features=16",
    "model.network.hourglass_depth=2", "model.network.num_stacks=1", "data.batch_size=2",
    "data.num_workers=0", "model.baseline_samples=4",
]  # fmt: skip


def _perfect_batch(side: int = 64, resolution: int = 8) -> tuple[dict, Estimate]:
    """A batch of two crops and the estimate that equals its ground truth."""
    torch.manual_seed(0)
    voxels = torch.rand(2, resolution, resolution, resolution) > 0.7
    keypoints3d = torch.zeros(2, 100, 4)
    keypoints3d[:, BODYNET_JOINTS, :3] = torch.rand(2, 16, 3) + torch.tensor([0.0, 0.0, 4.0])
    keypoints3d[:, BODYNET_JOINTS, 3] = 1.0
    keypoints2d = torch.zeros(2, 100, 3)
    pixels = torch.randint(4, side - 4, (2, 16, 2)).float()
    keypoints2d[:, BODYNET_JOINTS, :2] = pixels
    keypoints2d[:, BODYNET_JOINTS, 2] = 1.0
    heatmaps = torch.zeros(2, 16, side // 4, side // 4)
    cells = ((pixels + 0.5) / 4 - 0.5).round().long()
    for b in range(2):
        for j in range(16):
            heatmaps[b, j, cells[b, j, 1], cells[b, j, 0]] = 1.0
    segm = torch.randint(0, 15, (2, side // 4, side // 4))
    batch = {
        "image": torch.zeros(2, 3, side, side),
        "has_bodynet_voxels": torch.tensor([True, True]),
        "bodynet_voxels": voxels,
        "keypoints3d": keypoints3d,
        "has_keypoints3d": torch.tensor([True, True]),
        "keypoints2d": keypoints2d,
        "has_part_segm": torch.tensor([True, True]),
        "bodynet_segm": segm,
    }
    estimate = Estimate(
        keypoints3d=keypoints3d[..., :3],
        extras={"occupancy": voxels.float(), "heatmaps2d": heatmaps, "segm": segm},
    )
    return batch, estimate


def test_a_perfect_prediction_scores_perfectly_on_the_volume_protocol() -> None:
    batch, estimate = _perfect_batch()
    benchmark = get_benchmark("surreal_bodynet")
    found = benchmark.metrics()
    score_batch(benchmark, found, estimate, batch, models=None)  # type: ignore[arg-type]
    results = metrics.results_of(found)
    assert results["voxel_iou_pct"] == pytest.approx(100.0)
    assert results["mpjpe_mm"] == pytest.approx(0.0, abs=1e-4)
    assert results["pckh_bodynet_pct"] == pytest.approx(100.0)
    assert results["part_segm/mean_iou_pct"] == pytest.approx(100.0)


def test_pckh_uses_bodynets_normaliser_inclusively() -> None:
    """A 2D error of exactly half the normaliser (side / 10 / 2 = 3.2 px at 64) counts."""
    metric = metrics.PCKh(inclusive=True, name="pckh_bodynet_pct")
    target = torch.zeros(1, 2, 2)
    preds = torch.tensor([[[3.2, 0.0], [3.3, 0.0]]])
    metric.update(preds, target, torch.ones(1, 2, dtype=torch.bool), torch.tensor([6.4]))
    assert float(metric.compute()) == pytest.approx(50.0)


def test_a_baseline_scores_only_what_it_predicts() -> None:
    batch, estimate = _perfect_batch()
    benchmark = get_benchmark("surreal_bodynet")
    found = benchmark.metrics()
    occupancy_only = Estimate(extras={"occupancy": estimate.extras["occupancy"]})
    with pytest.raises(ValueError, match="needs"):
        score_batch(benchmark, found, occupancy_only, batch, None)  # type: ignore[arg-type]
    score_batch(benchmark, found, occupancy_only, batch, None, partial=True)  # type: ignore[arg-type]
    results = metrics.results_of(found)
    assert results["voxel_iou_pct"] == pytest.approx(100.0)
    assert math.isnan(results["mpjpe_mm"]) and math.isnan(results["part_segm/mean_iou_pct"])


def test_the_part_protocol_scores_the_part_argmax() -> None:
    labels = torch.randint(0, 7, (2, 4, 4, 4))
    scores = torch.nn.functional.one_hot(labels, 7).permute(0, 4, 1, 2, 3).float()
    batch = {"has_bodynet_voxels": torch.tensor([True, True]), "bodynet_part_voxels": labels}
    benchmark = get_benchmark("surreal_bodynet_parts")
    found = benchmark.metrics()
    score_batch(benchmark, found, Estimate(extras={"part_occupancy": scores}), batch, None)  # type: ignore[arg-type]
    results = metrics.results_of(found)
    assert results["part_voxel_iou/foreground_pct"] == pytest.approx(100.0)
    assert results["part_voxel_iou/head_pct"] == pytest.approx(100.0)


class _Annotated:
    """A dataset stand-in with SMPL annotations only."""

    def __init__(self, betas: list[float]) -> None:
        self.betas = betas

    def __len__(self) -> int:
        return len(self.betas) + 1

    def smpl_annotation(self, index: int) -> dict:
        if index == len(self.betas):  # one sample without SMPL: never selected
            return {"pose": np.zeros(72), "betas": np.zeros(10), "gender": -1, "has_smpl": False}
        betas = np.zeros(10)
        betas[0] = self.betas[index]
        pose = np.zeros(72)
        pose[0] = math.pi
        return {"pose": pose, "betas": betas, "gender": 0, "has_smpl": True}


def test_s10_and_s20_are_the_samples_farthest_from_the_mean_shape(body_models_root) -> None:
    from datamodules.base import BodyModels

    dataset = _Annotated([0.1, -3.0, 0.5, 2.5, 0.0, -0.2, 1.0, 0.3, -0.4, 0.05])
    models = BodyModels(body_models_root)
    assert benchmarks.shape_extremes(0.1)(dataset, models) == [1]
    assert benchmarks.shape_extremes(0.2)(dataset, models) == [1, 3]
    assert get_benchmark("surreal_bodynet_fit_s20").subset is not None


def test_the_fits_cache_round_trips_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    cache = FitCache(tmp_path / "fits" / "surreal_val_bodynet.npz", steps=50)
    values = (np.zeros(72), np.ones(10), np.zeros(3), np.array(1.5))
    cache.entries["surreal/val_bodynet/a#0"] = values
    cache.added = 1
    cache.save()
    again = FitCache.load(cache.path, steps=50)
    assert list(again.entries) == ["surreal/val_bodynet/a#0"]
    np.testing.assert_array_equal(again.entries["surreal/val_bodynet/a#0"][1], np.ones(10))
    assert FitCache.load(cache.path, steps=400).entries == {}  # other settings: refitted
    cache.path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"surreal_val_bodynet\.npz"):
        FitCache.load(cache.path, steps=50)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_world, body_models_root) -> Path:
    from experiments.config import load_experiment
    from experiments.train import train

    out = tmp_path_factory.mktemp("bodynet_eval")
    cfg = load_experiment("bodynet_tiny", [
        f"body_model.root={body_models_root}", f"output_root={out}", "logger=none",
        "trainer.max_steps=2", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *SMALL,
    ], data_root=tiny_world)  # fmt: skip
    return train(cfg) / "checkpoints" / "last.ckpt"


def test_eval_scores_the_volume_benchmark_beside_the_constant_baseline(
    checkpoint, tiny_world, body_models_root, tmp_path
) -> None:
    from experiments.evaluate import evaluate

    _, results = evaluate(checkpoint, "surreal_bodynet", [f"body_model.root={body_models_root}"],
                          tiny_world, out_root=tmp_path)  # fmt: skip
    model, baseline = results["metrics"], results["baseline"]
    assert results["synthetic"] and results["num_samples"] > 0
    assert 0.0 <= model["voxel_iou_pct"] <= 100.0 and model["mpjpe_mm"] > 0
    assert baseline["name"] == "constant_occupancy"
    assert baseline["metrics"]["voxel_iou_pct"] is not None
    assert baseline["metrics"]["mpjpe_mm"] is None  # the constant grid predicts no joints


def test_fit_then_eval_reuses_the_fits_for_the_set_and_its_subsets(
    checkpoint, tiny_world, body_models_root, tmp_path, capsys
) -> None:
    from experiments.cli import main
    from experiments.evaluate import evaluate

    paths = [f"body_model.root={body_models_root}"]
    status = main(["fit", "--ckpt", str(checkpoint), "--benchmark", "surreal_bodynet_fit",
                   "--steps", "5", "--out-root", str(tmp_path), "--data-root", str(tiny_world),
                   *paths])  # fmt: skip
    assert status == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "reused 0" in line and "fits/occupancy_surreal_val_bodynet.npz" in line
    _, full = evaluate(checkpoint, "surreal_bodynet_fit", paths, tiny_world, out_root=tmp_path,
                       fit_steps=5)  # fmt: skip
    assert full["fit"]["fitted"] == 0 and full["fit"]["reused"] == full["num_samples"]
    assert full["metrics"]["pve_mm"] > 0 and full["baseline"]["metrics"]["pve_mm"] is None
    _, s20 = evaluate(checkpoint, "surreal_bodynet_fit_s20", paths, tiny_world,
                      out_root=tmp_path, fit_steps=5)  # fmt: skip
    assert s20["num_samples"] == math.ceil(0.2 * full["num_samples"])
    assert s20["fit"]["fitted"] == 0
    with pytest.raises(ValueError, match="scores no fitted body"):
        from experiments.fitting import fit

        fit(checkpoint, "surreal_bodynet", paths, tiny_world, out_root=tmp_path)


def test_smplifypp_fits_the_networks_inputs_into_its_own_cache(
    checkpoint, tiny_world, body_models_root, tmp_path
) -> None:
    from experiments.evaluate import evaluate

    paths = [f"body_model.root={body_models_root}"]
    _, results = evaluate(checkpoint, "surreal_smplifypp", paths, tiny_world, out_root=tmp_path,
                          fit_steps=5)  # fmt: skip
    assert set(results["metrics"]) == {"pve_mm"} and results["metrics"]["pve_mm"] > 0
    assert results["fit"]["fitted"] == results["num_samples"] > 0
    assert results["fit"]["cache"].endswith("fits/inputs_surreal_val_bodynet.npz")
    _, again = evaluate(checkpoint, "surreal_smplifypp_s10", paths, tiny_world,
                        out_root=tmp_path, fit_steps=5)  # fmt: skip
    assert again["fit"]["fitted"] == 0 and again["fit"]["reused"] == again["num_samples"]
    # The voxel fit of the same checkpoint is another objective: nothing of SMPLify++'s reused.
    _, voxels = evaluate(checkpoint, "surreal_bodynet_fit_s10", paths, tiny_world,
                         out_root=tmp_path, fit_steps=5)  # fmt: skip
    assert voxels["fit"]["fitted"] == voxels["num_samples"]
    with pytest.raises(ValueError, match=r"surreal_betas_fit needs betas, which BodyNetModule"):
        evaluate(checkpoint, "surreal_betas_fit", paths, tiny_world, out_root=tmp_path,
                 fit_steps=5)  # fmt: skip


def test_the_betas_regressor_is_scored_with_its_betas_posed_on_its_joints(
    tmp_path_factory, tiny_world, body_models_root, tmp_path
) -> None:
    from experiments.config import load_experiment
    from experiments.evaluate import evaluate
    from experiments.train import train

    paths = [f"body_model.root={body_models_root}"]
    cfg = load_experiment("bodynet_tiny", [
        *paths, f"output_root={tmp_path_factory.mktemp('betas')}", "logger=none",
        "model.network.num_betas=10",
        "~model.loss_weights.voxels", "~model.loss_weights.reproj_front",
        "~model.loss_weights.reproj_side", "+model.loss_weights.betas=1.0",
        "trainer.max_steps=2", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *SMALL,
    ], data_root=tiny_world)  # fmt: skip
    checkpoint = train(cfg) / "checkpoints" / "last.ckpt"
    _, results = evaluate(checkpoint, "surreal_betas_fit", paths, tiny_world, out_root=tmp_path,
                          fit_steps=5)  # fmt: skip
    assert results["metrics"]["pve_mm"] > 0
    assert results["fit"]["fitted"] == results["num_samples"] > 0
    with np.load(results["fit"]["cache"]) as fits:
        betas = fits["betas"]
    assert np.abs(betas).sum() > 0 and len(np.unique(betas.round(6), axis=0)) == len(betas)
    with pytest.raises(ValueError, match="occupancy"):  # it predicts no voxels to fit
        evaluate(checkpoint, "surreal_bodynet_fit", paths, tiny_world, out_root=tmp_path)


def test_fit_occupancy_recovers_a_voxelized_body(neutral_model) -> None:
    """The whole section 3.4 step on a grid of the true body (voxel centres inside the mesh)
    and the true joints: the fit lands within a voxel of the truth from the rigid start."""
    from body.fitting import fit_occupancy
    from geometry.volumes import bodynet_grid_vertices, voxelize_interior

    resolution, side = 64, 256
    K = torch.tensor([[450.0, 0.0, 127.5], [0.0, 450.0, 127.5], [0.0, 0.0, 1.0]])
    torch.manual_seed(1)
    pose = torch.zeros(1, 72)
    pose[0, 0] = math.pi
    pose[0, 3:] = 0.2 * torch.randn(69)
    betas = torch.tensor([[1.5, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    body = neutral_model(pose, betas, torch.tensor([[0.0, 0.1, 4.0]]))
    root = float(body.keypoints[0, BODYNET_JOINTS[6], 2])
    grid_vertices = bodynet_grid_vertices(body.vertices[0], K, root, side, resolution)
    grid = voxelize_interior(grid_vertices, neutral_model.faces, resolution, (0.0,) * 3,
                             (float(resolution),) * 3)  # fmt: skip
    joints = body.keypoints[:, BODYNET_JOINTS]
    result = fit_occupancy(neutral_model, grid.float()[None], joints, BODYNET_JOINTS, K[None],
                           torch.tensor([root]), side, steps=150)  # fmt: skip
    fitted = bodynet_grid_vertices(result.vertices[0], K, root, side, resolution)
    error = (fitted - grid_vertices).norm(dim=-1).mean()
    assert error < 1.0, float(error)  # voxels


def test_predict_draws_the_fitted_body_and_the_isosurface(
    checkpoint, tiny_world, body_models_root, tmp_path
) -> None:
    from PIL import Image

    from experiments.figure_commands import predict
    from experiments.panels import PANEL_SIZE

    paths = predict(checkpoint, "surreal_bodynet", [f"body_model.root={body_models_root}"],
                    tiny_world, out_root=tmp_path, limit=2)  # fmt: skip
    assert len(paths) == 2 and (paths[0].parent / "grid.png").is_file()
    row = np.asarray(Image.open(paths[0]))
    # crop | fitted body over the crop | its side view | isosurface over the crop | side view
    assert row.shape == (PANEL_SIZE, 5 * PANEL_SIZE, 3)
    crop, body = row[:, :PANEL_SIZE].astype(int), row[:, PANEL_SIZE : 2 * PANEL_SIZE]
    assert np.abs(body.astype(int) - crop).sum() > 0  # the fitted body is drawn


# ----------------------------------------------------------------------------- UP-3D (Table 3)


def test_the_front_view_goes_back_into_the_image_through_the_crop() -> None:
    torch.manual_seed(3)
    image = torch.rand(40, 40) > 0.5
    shift = np.array([[1.0, 0.0, -10.0], [0.0, 1.0, -10.0], [0.0, 0.0, 1.0]])  # crop 10..29
    front = image[10:30, 10:30].float()  # a 20-pixel crop, one cell per pixel
    placed = benchmarks.image_silhouette(front, shift, 20, (40, 40))
    expected = torch.zeros_like(image)
    expected[10:30, 10:30] = image[10:30, 10:30]
    assert torch.equal(placed, expected)
    # A 20-pixel crop of image pixels 0..39 (u_crop = (u + 0.5) / 2 - 0.5) on 10 cells: cell i
    # holds image pixels 4i .. 4i + 3; pixels 40..47 lie beyond the crop.
    half = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]])
    cells = torch.rand(10, 10) > 0.5
    placed = benchmarks.image_silhouette(cells.float(), half, 20, (48, 48))
    upsampled = cells.repeat_interleave(4, 0).repeat_interleave(4, 1)
    inner = torch.zeros(40, dtype=torch.bool)  # 1.5 pixels from a cell border at least
    inner[1::4], inner[2::4] = True, True
    interior = inner[:, None] & inner[None, :]
    assert torch.equal(placed[:40, :40][interior], upsampled[interior])
    assert not placed[40:, :].any() and not placed[:, 40:].any()  # beyond the crop: background


@pytest.fixture(scope="module")
def up3d_world(tmp_path_factory, body_models_root) -> Path:
    from datamodules.synthetic.world import write_world

    root = tmp_path_factory.mktemp("up3d_world")
    write_world(root, "tiny", ["up3d"], seed=0, body_model_root=body_models_root, progress=False)
    return root


def test_the_true_voxels_score_the_manual_silhouettes_well(up3d_world, body_models_root) -> None:
    from datamodules.base import BodyModels, ReaderOptions, reader_class
    from datamodules.datasets import CropDataset, collate_crops
    from lightning_modules.bodynet.targets import BodyNetTargets

    models = BodyModels(body_models_root)
    reader = reader_class("up3d")(up3d_world, "lsp_test", ReaderOptions(body_models=models))
    transform = BodyNetTargets(str(body_models_root), voxel_resolution=32)
    dataset = CropDataset(reader, 64, target_transform=transform, image_masks=True)
    batch = collate_crops([dataset[i] for i in range(len(dataset))])
    with_masks = [m["image_mask"] is not None for m in batch["meta"]]
    assert any(with_masks) and batch["has_bodynet_voxels"].all()  # fits voxelized (f = 5000)
    assert (batch["bodynet_root_depth"] > 1.0).all()  # the fits' root depth, for decoding
    benchmark = get_benchmark("up3d_t1")
    voxels = batch["bodynet_voxels"].float()
    truth = Estimate(extras={"occupancy": voxels})
    empty = Estimate(extras={"occupancy": torch.zeros_like(voxels)})
    moved = Estimate(extras={"occupancy": torch.roll(voxels, shifts=(3, 3), dims=(2, 3))})
    scores = {}
    for name, estimate in (("truth", truth), ("empty", empty), ("moved", moved)):
        fresh = benchmark.metrics()
        score_batch(benchmark, fresh, estimate, batch, models, partial=True)
        scores[name] = metrics.results_of(fresh)
    # The projected voxels of the fit against the masks (the synthetic world's "manual" masks
    # are the fit's render): 62 and 77 % IoU on its two LSP images at 32^3 cells over 64-pixel
    # crops (the conservative voxelization is larger than the mesh; 86 and 93 % at 128^3 over
    # 256 pixels), far above the same grids moved by 3 cells (misalignment would show here).
    iou = scores["truth"]["silhouette/iou_fg_pct"]
    assert iou > 60.0 and iou > scores["moved"]["silhouette/iou_fg_pct"] + 15.0, scores
    assert scores["empty"]["silhouette/iou_fg_pct"] == 0.0
    assert scores["truth"]["silhouette/accuracy_pct"] > scores["empty"]["silhouette/accuracy_pct"]


def test_eval_scores_up3d_t1_with_the_fit(checkpoint, up3d_world, body_models_root, tmp_path):
    from experiments.evaluate import evaluate

    paths = [f"body_model.root={body_models_root}"]
    _, results = evaluate(checkpoint, "up3d_t1", paths, up3d_world, out_root=tmp_path,
                          fit_steps=5)  # fmt: skip
    model = results["metrics"]
    assert results["synthetic"] and results["num_samples"] >= 2
    for key in ("accuracy_pct", "iou_fg_pct", "f1_fg_pct", "f1_mean_pct"):
        assert 0.0 <= model[f"silhouette/{key}"] <= 100.0
    assert model["pve_mm"] > 0 and results["fit"]["fitted"] == results["num_samples"]
    assert results["baseline"]["metrics"]["silhouette/accuracy_pct"] is not None
