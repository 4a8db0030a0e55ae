"""Metric benchmarks on the CPU.

Goal (issue 4): PA-MPJPE over 35,515 samples x 14 joints (the size of the 3DPW test set) in one
batched call under 1 second; the figure is reported with its ratio to the tests' naive
per-sample NumPy loop (tests/metrics/references.py).
"""

from __future__ import annotations

import time

import numpy as np
import torch

import metrics
from tests.metrics import references

PW3D_TEST_SAMPLES = 35_515
GOAL_SECONDS = 1.0


def pa_mpjpe_once(preds: torch.Tensor, target: torch.Tensor) -> float:
    metric = metrics.PAMPJPE()
    metric.update(preds, target)
    return float(metric.compute())


def test_pa_mpjpe_3dpw_test_size(benchmark) -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(0, 0.3, (PW3D_TEST_SAMPLES, 14, 3)).astype(np.float32)
    preds = target + rng.normal(0, 0.05, target.shape).astype(np.float32)
    preds_t, target_t = torch.from_numpy(preds), torch.from_numpy(target)
    value = benchmark.pedantic(pa_mpjpe_once, args=(preds_t, target_t), rounds=5, warmup_rounds=1)
    start = time.perf_counter()
    expected = references.pa_mpjpe(preds.astype(np.float64), target.astype(np.float64))
    loop_seconds = time.perf_counter() - start
    batched_seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        samples=PW3D_TEST_SAMPLES,
        joints=14,
        threads=torch.get_num_threads(),
        numpy_loop_s=round(loop_seconds, 2),
        speedup_vs_loop=round(loop_seconds / batched_seconds, 1),
        goal_s=GOAL_SECONDS,
        goal_met=batched_seconds < GOAL_SECONDS,
    )
    assert abs(value - expected) < 1e-3
