"""Multi-process runs on CPU (issue 8): `trainer=ddp_cpu` trains through the CLI, and
evaluation on 2 processes (`torchrun`) writes the same metric values as on 1.

Each process is a separate Python interpreter (gloo backend), started the way a user starts
them, so these tests also check the launch paths: Lightning re-running the command line for
rank 1 (which joins rank 0's run folder), and torchrun's environment for evaluation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.experiments.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

STEPS = 2
LIMIT = 5  # odd, below the tiny world's pw3d test_spin size


def _run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def ddp_run(tiny_world, body_models_root, tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, last.ckpt) of pare_tiny trained 2 steps on 2 CPU processes."""
    out = tmp_path_factory.mktemp("ddp")
    _run([
        sys.executable, "-m", "experiments", "train", "pare_tiny", "trainer=ddp_cpu",
        "--data-root", str(tiny_world), f"body_model.root={body_models_root}",
        f"output_root={out}", f"cache_root={out / 'cache'}", "data.crop_size=32",
        "data.batch_size=4", "data.num_workers=0", f"trainer.max_steps={STEPS}",
        "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "trainer.log_every_n_steps=1", "callbacks.best=null",
    ])  # fmt: skip
    (run_dir,) = (out / "pare_tiny").iterdir()  # rank 1 joined rank 0's folder
    return run_dir, run_dir / "checkpoints" / "last.ckpt"


def test_ddp_cpu_trains_through_the_cli(ddp_run):
    run_dir, last = ddp_run
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == STEPS
    assert checkpoint["run_info"]["config"]["trainer"]["strategy"] == "ddp"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "logs" / "metrics.csv").is_file()


def test_evaluation_on_two_processes_equals_one(ddp_run, tiny_world, body_models_root, tmp_path):
    _, last = ddp_run
    common = ["-m", "experiments", "eval", "--ckpt", str(last), "--benchmark", "pw3d_test",
              "--data-root", str(tiny_world), f"body_model.root={body_models_root}",
              f"cache_root={tmp_path / 'cache'}", "+data.eval_batch_size=2", "data.num_workers=0",
              "--limit", str(LIMIT)]  # fmt: skip
    _run([sys.executable, *common, "--out-root", str(tmp_path / "one")])
    torchrun = Path(sys.executable).with_name("torchrun")
    _run([str(torchrun), "--standalone", "--nproc_per_node", "2",
          *common, "--out-root", str(tmp_path / "two")])  # fmt: skip
    (one,) = (tmp_path / "one").rglob("pw3d_test.json")
    (two,) = (tmp_path / "two").rglob("pw3d_test.json")
    results_one, results_two = json.loads(one.read_text()), json.loads(two.read_text())
    # An odd count: a padding sampler would score one sample twice on 2 processes.
    assert results_one["num_samples"] == results_two["num_samples"] == LIMIT
    assert (results_one["processes"], results_two["processes"]) == (1, 2)
    assert results_two["metrics"] == pytest.approx(results_one["metrics"], rel=1e-9)
    assert results_two["baseline"]["metrics"] == pytest.approx(
        results_one["baseline"]["metrics"], rel=1e-9
    )
