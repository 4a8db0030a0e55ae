"""Every metric gives the same result when its updates are split across 2 processes (gloo).

One spawned group runs every case of tests/metrics/cases.py twice: updates interleaved between
the ranks (uneven counts), and all updates on rank 0 with none on rank 1 (a rank that saw no
data still takes part in the reduction). Spawning costs seconds, so there is one group only.
"""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.metrics.cases import CASES, run

WORLD_SIZE = 2
SPLITS = {
    "interleaved": lambda batches, rank: batches[rank::WORLD_SIZE],
    "all_on_rank_0": lambda batches, rank: batches if rank == 0 else [],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mismatches(actual: dict[str, float], expected: dict[str, float]) -> list[str]:
    if set(actual) != set(expected):
        return [f"keys {sorted(actual)} != {sorted(expected)}"]
    wrong = []
    for key, value in expected.items():
        same = (
            math.isnan(actual[key])
            if math.isnan(value)
            else math.isclose(actual[key], value, rel_tol=1e-9, abs_tol=1e-9)
        )
        if not same:
            wrong.append(f"{key}: {actual[key]} != {value}")
    return wrong


def worker(rank: int, port: int, expected: dict[str, dict[str, float]]) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE
    )
    torch.set_num_threads(1)
    try:
        failures = []
        for case in CASES:
            batches = case.batches(np.random.default_rng(7))
            for split_name, split in SPLITS.items():
                metric = case.make()
                for batch in split(batches, rank):
                    metric.update(**batch)
                problems = mismatches(metric.results(), expected[case.id])
                failures += [f"rank {rank}, {case.id}, {split_name}: {p}" for p in problems]
        assert not failures, "\n".join(failures)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # rank 1 computes without an update
def test_every_metric_agrees_across_two_processes() -> None:
    expected = {case.id: run(case, case.batches(np.random.default_rng(7))) for case in CASES}
    mp.spawn(worker, args=(free_port(), expected), nprocs=WORLD_SIZE, join=True)
