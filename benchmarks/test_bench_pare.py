"""PARE benchmarks on the CPU (issue 7, "Performance").

- `test_matmul_rate`: this machine's dense matmul rate (FLOP/s) per precision, a square
  `MATMUL_SIZE` matmul of fp32 or bf16 tensors; the yardstick of the training figures.
- `test_training_throughput`: images/s of one full training step of pare_r50 and pare_hrnet32
  at batch 8, 224 x 224, in fp32 and in bf16 autocast: network forward, body model, the
  module's weighted losses (`PAREModule.compute_losses`, as `training_step` sums them), backward
  and an Adam step, on a synthetic batch. The step's FLOPs are counted once by
  `torch.utils.flop_counter` (forward and backward of network, body model and losses, 2 x
  multiply-adds; the counter skips elementwise work such as Adam's) and reported as achieved
  FLOP/s and its fraction of the matmul rate of the same precision.
- `test_3dpw_evaluation_throughput`: samples/s of the 3DPW protocol for pare_r50 at batch 32
  in fp32: `predict_step` under inference mode, then the registry's `pw3d_test` scoring
  (`experiments.benchmarks.score_batch`, protocol `spin_14`: MPJPE and PA-MPJPE on the 14 LSP
  joints of the H36M regressor, PVE, ground truth posed by the gendered body models).

Rates are means over the timed rounds (the table's mean column); the rounds are few because a
training step takes tens of seconds on two cores. The networks are untrained (`pretrained:
null`) and the batches random, which does not change their cost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

import metrics
from body import joint_sets
from datamodules.base import BodyModels
from experiments.benchmarks import estimate_from_prediction, get_benchmark, score_batch
from experiments.config import load_experiment, resolve
from lightning_modules.pare.module import PAREModule

MATMUL_SIZE = 2048
MATMUL_REPEATS = 5
MATMUL_FLOPS = 2 * MATMUL_SIZE**3  # multiply-adds count twice, as the FLOP counter does
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
TRAIN_BATCH = 8
TRAIN_ROUNDS = 2  # after the FLOP-counted step, which warms up
EVAL_BATCH = 32
CROP_SIZE = 224
PART_LABELS = 25  # 0 background, 1..24 parts


def matmul_operands(dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    shape = (MATMUL_SIZE, MATMUL_SIZE)
    a, b = (torch.randn(shape, generator=generator).to(dtype) for _ in range(2))
    return a, b


def measure_matmul_rate(dtype: torch.dtype) -> float:
    """Mean FLOP/s of `MATMUL_REPEATS` square matmuls after one warm-up."""
    a, b = matmul_operands(dtype)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(MATMUL_REPEATS):
        torch.matmul(a, b)
    return MATMUL_REPEATS * MATMUL_FLOPS / (time.perf_counter() - start)


@pytest.fixture(scope="module")
def matmul_rates() -> dict[str, float]:
    """FLOP/s per precision name: filled by `test_matmul_rate`, the denominator of the training
    benchmarks' fractions (measured on demand when the matmul benchmark did not run)."""
    return {}


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_matmul_rate(benchmark, precision, matmul_rates) -> None:
    a, b = matmul_operands(PRECISIONS[precision])
    product = benchmark.pedantic(torch.matmul, args=(a, b), rounds=MATMUL_REPEATS, warmup_rounds=1)
    matmul_rates[precision] = MATMUL_FLOPS / benchmark.stats.stats.mean
    benchmark.extra_info.update(
        size=MATMUL_SIZE, threads=torch.get_num_threads(), flops_per_s=matmul_rates[precision]
    )
    assert product.dtype == PRECISIONS[precision] and torch.isfinite(product).all()


def build_module(experiment: str, body_models_root: Path) -> PAREModule:
    cfg = resolve(load_experiment(experiment, [f"body_model.root={body_models_root}"]))
    module = instantiate(cfg.model, _convert_="all")
    assert isinstance(module, PAREModule)
    return module


def synthetic_batch(batch_size: int, crop_size: int) -> dict[str, Tensor]:
    """A crop batch with every key `PAREModule.compute_losses` reads, all ground truth present."""
    generator = torch.Generator().manual_seed(0)
    keypoints = len(joint_sets.CANONICAL_NAMES)
    ones = torch.ones(batch_size, keypoints, 1)
    pixels = torch.rand(batch_size, keypoints, 2, generator=generator) * (crop_size - 1)
    positions = torch.randn(batch_size, keypoints, 3, generator=generator) * 0.3
    present = torch.ones(batch_size, dtype=torch.bool)
    return {
        "image": torch.randn(batch_size, 3, crop_size, crop_size, generator=generator),
        "keypoints3d": torch.cat([positions, ones], dim=-1),  # (B, K, 4) metres + confidence
        "keypoints2d": torch.cat([pixels, ones], dim=-1),  # (B, K, 3) crop pixels + confidence
        "pose": torch.randn(batch_size, 72, generator=generator) * 0.2,
        "betas": torch.randn(batch_size, 10, generator=generator) * 0.5,
        "part_segm": torch.randint(
            0, PART_LABELS, (batch_size, crop_size, crop_size), generator=generator
        ),
        "has_smpl": present,
        "has_keypoints3d": present,
        "has_part_segm": present,
    }


def make_training_step(
    module: PAREModule, batch: dict[str, Tensor], precision: str
) -> Callable[[], float]:
    """One optimiser step of `module` on `batch` (forward and losses under the precision's
    autocast, backward and Adam outside it, as Lightning's bf16-mixed does); returns the loss."""
    optimizer = module.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            terms = module.compute_losses(batch, module(batch["image"]))
            loss = sum(module.loss_weights[name] * value for name, value in terms.items())
        assert isinstance(loss, Tensor)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("experiment", ["pare_r50", "pare_hrnet32"])
def test_training_throughput(
    benchmark, experiment, precision, body_models_root, matmul_rates
) -> None:
    if precision not in matmul_rates:
        matmul_rates[precision] = measure_matmul_rate(PRECISIONS[precision])
    matmul_rate = matmul_rates[precision]
    torch.manual_seed(0)
    module = build_module(experiment, body_models_root).train()
    step = make_training_step(module, synthetic_batch(TRAIN_BATCH, CROP_SIZE), precision)
    with FlopCounterMode(display=False) as counter:
        step()  # also the warm-up round
    step_flops = counter.get_total_flops()
    loss = benchmark.pedantic(step, rounds=TRAIN_ROUNDS, iterations=1)
    seconds = benchmark.stats.stats.mean
    achieved = step_flops / seconds
    benchmark.extra_info.update(
        batch=TRAIN_BATCH,
        crop=CROP_SIZE,
        threads=torch.get_num_threads(),
        images_per_s=TRAIN_BATCH / seconds,
        step_gflops=step_flops / 1e9,
        achieved_flops_per_s=achieved,
        matmul_flops_per_s=matmul_rate,
        fraction_of_matmul=achieved / matmul_rate,
    )
    assert torch.isfinite(torch.tensor(loss)) and loss > 0


def test_3dpw_evaluation_throughput(benchmark, body_models_root) -> None:
    torch.manual_seed(0)
    module = build_module("pare_r50", body_models_root).eval()
    pw3d = get_benchmark("pw3d_test")
    models = BodyModels(body_models_root, "mannequin")
    batch = synthetic_batch(EVAL_BATCH, CROP_SIZE)
    batch["gender"] = torch.arange(EVAL_BATCH) % 2 + 1  # 3DPW's subjects: male 1, female 2

    def evaluate() -> dict[str, float]:
        pw3d_metrics = pw3d.metrics()
        with torch.inference_mode():
            estimate = estimate_from_prediction(module.predict_step(batch))
            score_batch(pw3d, pw3d_metrics, estimate, batch, models)
        return metrics.results_of(pw3d_metrics)

    results = benchmark.pedantic(evaluate, rounds=2, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        batch=EVAL_BATCH,
        crop=CROP_SIZE,
        threads=torch.get_num_threads(),
        samples_per_s=EVAL_BATCH / benchmark.stats.stats.mean,
    )
    assert {"mpjpe_mm", "pa_mpjpe_mm", "pve_mm"} <= set(results)
    assert all(0 < value < float("inf") for value in results.values())
