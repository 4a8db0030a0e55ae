"""`make demo` (`python -m experiments demo`): the main job, from a fresh clone, on the
synthetic world.

    python -m experiments demo [--size small] [--out-root results] [--data-root DIR]
        [KEY=VALUE ...]

Five steps, each reusing what is already there and each showing its progress:

1. the mannequin body model under `body_model.root` (generated when absent);
2. the synthetic world under `data_root` for the datasets the experiment reads (its `data.train`
   and `data.val` entries; the benchmark's dataset too), written at `--size` (`small`, the
   size meant for the demo) unless SYNTHETIC.json already lists them for this body model;
3. training `pare_tiny` (its own step count; overrides such as `trainer.max_steps=50` pass
   through) into a new run folder under `output_root`;
4. the `pare_demo` table (experiments/tables/pare_demo.yaml: the run's `pw3d_test` metrics beside
   the mean-body baseline), through `tables`, so the results files land where `make eval` finds
   and reuses them; its title says the numbers are from the synthetic world;
5. overlay PNGs of the trained model's predictions on held-out `pw3d_test` crops (`predict`).

It ends by printing where each output is. The numbers are synthetic-world numbers: they show
that the pipeline learns, not how PARE does on 3DPW.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TextIO

from omegaconf import DictConfig

from experiments.config import load_experiment, resolve

EXPERIMENT = "pare_tiny"
TABLE = "pare_demo"
BENCHMARK = "pw3d_test"
PREDICT_LIMIT = 8
# Overrides the table step accepts (paths only: tables.ALLOWED_OVERRIDES); the rest go to training.
_PATH_KEYS = ("data_root", "cache_root", "body_model.root", "output_root")


class DemoError(RuntimeError):
    """A step of the demo could not finish (the message says which and why)."""


@dataclass
class DemoOutputs:
    """Where the demo put things, and how long each step took (seconds)."""

    body_model: Path
    data_root: Path
    run_dir: Path
    tables: list[Path]
    predictions: Path | None
    seconds: dict[str, float] = field(default_factory=dict)


def datasets_read(cfg: DictConfig, benchmark_dataset: str) -> list[str]:
    """Dataset ids of the experiment's training and validation entries and the benchmark."""
    data = cfg.data
    entries = [*data.get("train", []), *(data.get("val") or {}).values()]
    ids = [entry["dataset"] for entry in entries]
    return list(dict.fromkeys([*ids, benchmark_dataset]))


def missing_datasets(data_root: Path, wanted: Sequence[str], body_model_sha256: str) -> list[str]:
    """The `wanted` datasets SYNTHETIC.json does not list for this body model."""
    from datamodules.base import read_synthetic_info

    info = read_synthetic_info(data_root) or {}
    if info.get("body_model", {}).get("sha256") != body_model_sha256:
        return list(wanted)
    present = info.get("datasets", {})
    return [dataset for dataset in wanted if dataset not in present]


def run_demo(
    overrides: Sequence[str] = (),
    data_root: str | Path | None = None,
    out_root: str | Path = "results",
    size: str = "small",
    stdout: TextIO | None = None,
) -> DemoOutputs:
    """The five steps of the module docstring; returns where their outputs are."""
    from body import ensure_body_model
    from datamodules.base import body_model_sha256
    from experiments import tables
    from experiments.benchmarks import get_benchmark
    from experiments.figure_commands import predict
    from experiments.train import train

    out = stdout or sys.stdout
    seconds: dict[str, float] = {}
    cfg = load_experiment(EXPERIMENT, overrides, data_root)
    paths = resolve(cfg, allow_missing=True)
    root, model_root = Path(paths.data_root), Path(paths.body_model.root)

    clock = partial(_step, out, seconds)
    with clock("1/5 body model"):
        model_dir = ensure_body_model(model_root, paths.body_model.name)
        _say(out, f"body model: {model_dir}")
    with clock("2/5 synthetic world"):
        benchmark = get_benchmark(BENCHMARK)
        wanted = datasets_read(paths, benchmark.dataset)
        missing = missing_datasets(root, wanted, body_model_sha256(model_dir))
        if missing:
            from datamodules.synthetic.world import write_world

            _say(out, f"writing {', '.join(missing)} ({size}) under {root}")
            write_world(root, size, missing, 0, model_root, paths.body_model.name)
        else:
            _say(out, f"reusing {', '.join(wanted)} under {root}")
    with clock(f"3/5 training {EXPERIMENT}"):
        run_dir = train(cfg)
        _say(out, f"run folder: {run_dir}")
    with clock(f"4/5 table {TABLE}"):
        path_overrides = [o for o in overrides if o.split("=", 1)[0] in _PATH_KEYS]
        ctx = tables.build_context(path_overrides, data_root, out_root)
        built, written = tables.regenerate([TABLE], ctx)
        if ctx.counts.errors or ctx.counts.not_trained:
            raise DemoError(f"the {TABLE} table could not score {run_dir}: see the lines above")
        _say(out, tables.render_markdown(built[0]))
    with clock(f"5/5 predictions on {BENCHMARK}"):
        checkpoint = run_dir / "checkpoints" / "last.ckpt"
        eval_paths = [o for o in path_overrides if not o.startswith("output_root=")]
        pngs = predict(checkpoint, BENCHMARK, eval_paths, data_root, out_root, PREDICT_LIMIT)
        folder = pngs[0].parent if pngs else None
    outputs = DemoOutputs(model_dir, root, run_dir, written, folder, seconds)
    _say(out, report(outputs))
    return outputs


def report(outputs: DemoOutputs) -> str:
    """The closing lines: where everything is, and the time of each step."""
    lines = [
        "demo finished (synthetic world: not a real benchmark)",
        f"  body model      {outputs.body_model}",
        f"  data            {outputs.data_root}",
        f"  run folder      {outputs.run_dir}  (checkpoints/, logs/metrics.csv, images/)",
        *(f"  table           {path}" for path in outputs.tables),
        f"  predictions     {outputs.predictions}",
        "  time            "
        + ", ".join(f"{name} {value:.0f} s" for name, value in outputs.seconds.items()),
    ]
    return "\n".join(lines)


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


@contextmanager
def _step(out: TextIO, seconds: dict[str, float], name: str) -> Iterator[None]:
    """Print the step's name; record its duration under the name without its number."""
    _say(out, f"== demo {name}")
    start = time.perf_counter()
    yield
    seconds[name.split(" ", 1)[1]] = time.perf_counter() - start
