"""`python -m experiments eval`: score one checkpoint on one benchmark and write its results file.

    python -m experiments eval --ckpt PATH --benchmark ID [--data-root DIR] [--limit N]
        [--out-root results] [--device cpu|cuda] [KEY=VALUE ...]

The experiment comes from the checkpoint: every checkpoint the runner writes carries the
resolved config under `run_info` (experiments/run_info.py). That config is what trained the
weights and is used as it is, except for the paths, which are re-resolved from the command
line and the environment, never taken from the checkpoint (DESIGN.md): `data_root`,
`cache_root` and `body_model.root` come from `--data-root`, the overrides and the variables
`DATA_ROOT`, `CACHE_ROOT`, `BODY_MODELS` as for every command, and each value of the stored
config that was one of the old paths, or lies under one, moves with it (the config is stored
resolved, so `data.data_root` and `model.network.head.mean_params` hold copies).
`allow_mannequin_on_real_data` is likewise an evaluation-time choice (results record it).
`body_model.name` is the checkpoint's: the weights predict that model's parameters. Other
`KEY=VALUE` overrides change values of the stored config (`data.num_workers=0`); a leading
plus sets an argument it does not list (`+data.eval_batch_size=16`); group choices
(`trainer=cpu`) do not apply to a trained checkpoint.

The benchmark's split is read by the experiment's own DataModule class and data settings
(crop size, box factor, target transform) as a test split, so without augmentation, in order;
a benchmark with a `subset` (BodyNet's s10 / s20) scores those samples only; `--limit N`
scores the first N samples only (the results file says so). A benchmark that selects no
samples is refused. The model is the experiment's `model` node with the checkpoint's
`state_dict` (strict); `predict_step` gives each batch's `Prediction` (for a benchmark with
`fit`, turned into fitted SMPL parameters by `experiments.fitting`, which caches the fits),
and the baseline kept in the checkpoint (`training_mean_body` of the regressors,
`lightning_modules.common.baseline`; BodyNet's `constant_occupancy`,
`lightning_modules.bodynet.baseline`) goes through the same scoring functions
(`experiments.benchmarks`); the metrics of fields it cannot give are null, and a benchmark
needing nothing it gives (part labels) records the baseline as `none`.

Results file: `<out-root>/<exp>/<checkpoint sha256[:12]>/<data tag>/<benchmark>.json`, the data
tag being `synthetic-<sha256[:12] of SYNTHETIC.json>` on a synthetic root and `real-<sha256[:12]
of the resolved data root path>` otherwise; written atomically (temporary file, then rename).
Metric values that are undefined (a part class absent from both prediction and ground truth)
are null.

Several processes: launched by `torchrun --nproc_per_node N -m experiments eval ...` (on several
nodes, `srun` starting one `torchrun` per node; README), each process joins the process group
(gloo on CPU, NCCL on GPUs, one GPU per local rank), scores its share of the samples
(`datamodules.sampling.EvalSampler`, no padding) and the torchmetrics states are reduced
before `compute`, so the numbers equal one process's; rank 0 writes the results file.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from datamodules.base import SYNTHETIC_FILE, BodyModels, body_model_sha256
from datamodules.sampling import EvalSampler
from experiments.benchmarks import (
    Benchmark,
    Estimate,
    estimate_from_prediction,
    get_benchmark,
    score_batch,
)
from experiments.checkpointing import atomic_write, check_loadable
from experiments.config import ConfigError, load_base, resolve
from experiments.run_info import CHECKPOINT_KEY, git_state
from metrics import results_of

PATH_KEYS = ("data_root", "cache_root", "body_model.root")  # re-resolved, moved in the config
EVAL_TIME_KEYS = (*PATH_KEYS, "allow_mannequin_on_real_data")  # from the command line / env
SHORT_HASH = 12
DATA_ERRORS = (FileNotFoundError, ValueError, KeyError)  # reported as such (exit status 1)


def evaluate(
    ckpt: str | Path,
    benchmark_id: str,
    overrides: Sequence[str] = (),
    data_root: str | Path | None = None,
    limit: int | None = None,
    out_root: str | Path = "results",
    device: str | None = None,
    fit_steps: int | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Score checkpoint `ckpt` on benchmark `benchmark_id`; return (results path, results).
    `fit_steps`: iterations of the SMPL fit of `fit` benchmarks (default
    `experiments.fitting.FIT_STEPS`)."""
    from experiments.fitting import FIT_STEPS, fitter_for

    benchmark = get_benchmark(benchmark_id)
    ckpt = Path(ckpt)
    with process_group(device) as device:
        loaded = load_for_evaluation(ckpt, benchmark, overrides, data_root, limit, device)
        cfg, module, loader = loaded.cfg, loaded.module, loaded.loader
        models = BodyModels(cfg.body_model.root, cfg.body_model.name)
        rank, processes = (
            (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        )
        fitter = None
        if benchmark.fit:
            folder = results_dir(out_root, cfg.exp_name, file_sha256(ckpt),
                                 data_tag(Path(cfg.data_root)))  # fmt: skip
            fitter = fitter_for(folder, benchmark, models, fit_steps or FIT_STEPS)
        model_results, baseline_results, scored = score(
            module, loader, benchmark, models, loaded.device, fitter
        )
        if fitter is not None and processes == 1:
            fitter.cache.save()
    if scored != loaded.num_samples:
        raise RuntimeError(
            f"scored {scored} samples of {loaded.num_samples} ({processes} processes)"
        )
    root = Path(cfg.data_root)
    synthetic = (root / SYNTHETIC_FILE).is_file()
    results = {
        "experiment": cfg.exp_name,
        "benchmark": benchmark.id,
        "protocol": benchmark.protocol,
        "joint_set": benchmark.joint_set,
        "dataset": benchmark.dataset,
        "split": benchmark.split,
        "num_samples": loaded.num_samples,
        "processes": processes,
        "limit": limit,
        "checkpoint": str(ckpt),
        "checkpoint_sha256": file_sha256(ckpt),
        "data_root": str(root.resolve()),
        "data_tag": data_tag(root),
        "synthetic": synthetic,
        "allow_mannequin_on_real_data": bool(cfg.allow_mannequin_on_real_data),
        "body_model": {
            "name": cfg.body_model.name,
            "sha256": body_model_sha256(models.model_dir),
        },
        "code_revision": git_state(),
        "checkpoint_code_revision": loaded.run_info.get("git"),
        "metrics": model_results,
        "baseline": baseline_results,
        "fit": None
        if fitter is None
        else {
            "steps": fitter.cache.steps,
            "fitted": fitter.fitted,
            "reused": fitter.reused,
            "seconds": round(fitter.seconds, 1),
            "cache": str(fitter.cache.path),
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    path = results_path(out_root, results)
    if rank == 0:
        write_json_atomic(path, results)
    return path, results


@contextmanager
def process_group(device: str | None) -> Iterator[str | None]:
    """Join the process group of a `torchrun` / `srun` launch for the block and yield the
    device of this process (`device`, or cuda:<local rank> on GPUs); one process: as given."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield device
        return
    gpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if gpu:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if gpu else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


@dataclass
class Loaded:
    """What evaluating a checkpoint on a benchmark starts from (`load_for_evaluation`)."""

    cfg: DictConfig
    run_info: dict[str, Any]
    module: pl.LightningModule
    loader: DataLoader
    num_samples: int
    device: torch.device


def load_for_evaluation(
    ckpt: Path,
    benchmark: Benchmark,
    overrides: Sequence[str] = (),
    data_root: str | Path | None = None,
    limit: int | None = None,
    device: str | None = None,
) -> Loaded:
    """The checkpoint's config (paths re-resolved), its module in eval mode on `device`
    (default: cuda when available) and the benchmark's loader; shared by `eval` and the
    figure commands (experiments/figure_commands.py)."""
    checkpoint = load_checkpoint(ckpt)
    run_info = checkpoint[CHECKPOINT_KEY]
    cfg = checkpoint_config(run_info["config"], overrides, data_root)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    module = build_module(cfg, checkpoint["state_dict"], ckpt).to(torch_device)
    loader, num_samples = benchmark_loader(cfg, benchmark, limit)
    return Loaded(cfg, run_info, module, loader, num_samples, torch_device)


# ----------------------------------------------------------------------------- checkpoint


def load_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """A runner checkpoint (`state_dict` and `run_info`), read with `weights_only=True`
    (tensors memory-mapped with `mmap`)."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = check_loadable(path, mmap)
    info = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise ValueError(
            f"{path} has no '{CHECKPOINT_KEY}' with the experiment config: it was not written by "
            "`python -m experiments train`"
        )
    return checkpoint


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_config(
    stored: Mapping[str, Any], overrides: Sequence[str] = (), data_root: str | Path | None = None
) -> DictConfig:
    """The checkpoint's config with the paths re-resolved and `overrides` applied (module
    docstring); struct mode, every value plain."""
    eval_time = [o for o in overrides if _override_key(o) in (*EVAL_TIME_KEYS, "body_model.name")]
    rest = [o for o in overrides if o not in eval_time]
    base = resolve(load_base(eval_time, data_root), allow_missing=True)
    if base.body_model.name != stored["body_model"]["name"]:
        raise ConfigError(
            f"body_model.name comes from the checkpoint, which was trained with "
            f"'{stored['body_model']['name']}' (not '{base.body_model.name}')"
        )
    old = OmegaConf.create(dict(stored))
    moves = [(str(OmegaConf.select(old, k)), str(OmegaConf.select(base, k))) for k in PATH_KEYS]
    plain = relocate_paths(dict(stored), moves)
    plain = set_every(
        plain, "allow_mannequin_on_real_data", bool(base.allow_mannequin_on_real_data)
    )
    cfg = OmegaConf.create(plain)
    for key in PATH_KEYS:
        OmegaConf.update(cfg, key, OmegaConf.select(base, key))
    OmegaConf.set_struct(cfg, True)
    for override in rest:
        cfg = _apply_override(cfg, override)
    return cfg


def relocate_paths(node: Any, moves: Sequence[tuple[str, str]]) -> Any:
    """A copy of the plain config `node` where every string equal to an old path of `moves`
    ((old, new) pairs), or lying under it, is moved to the new path; longer old paths first."""
    ordered = sorted(
        (m for m in moves if m[0].strip("/") and m[0] != m[1]), key=lambda m: -len(m[0])
    )
    if isinstance(node, dict):
        return {key: relocate_paths(value, ordered) for key, value in node.items()}
    if isinstance(node, list):
        return [relocate_paths(value, ordered) for value in node]
    if isinstance(node, str):
        for old, new in ordered:
            stem = old.rstrip("/")
            if node in (old, stem):
                return new
            if node.startswith(stem + "/"):
                return new.rstrip("/") + node[len(stem) :]
    return node


def set_every(node: Any, key: str, value: Any) -> Any:
    """A copy of the plain config `node` with `key` set to `value` wherever it occurs."""
    if isinstance(node, dict):
        return {k: value if k == key else set_every(v, key, value) for k, v in node.items()}
    if isinstance(node, list):
        return [set_every(item, key, value) for item in node]
    return node


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _apply_override(cfg: DictConfig, override: str) -> DictConfig:
    if "=" not in override:
        raise ConfigError(f"Override '{override}' is not KEY=VALUE")
    key = _override_key(override)
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    adding = override.startswith("+")
    if not isinstance(parent, DictConfig) or (leaf not in parent and not adding):
        valid = ", ".join(str(k) for k in parent) if isinstance(parent, DictConfig) else "none"
        raise ConfigError(
            f"Override '{override}': the checkpoint's config has no key '{key}' (keys of "
            f"'{parent_key or 'the top level'}': {valid}); add an argument it does not list "
            f"with a leading plus: +{override}"
        )
    if leaf in parent and isinstance(parent[leaf], DictConfig):
        raise ConfigError(
            f"Override '{override}': '{key}' is a group of keys; eval changes values only "
            "(group choices such as trainer=cpu do not apply to a trained checkpoint)"
        )
    try:
        OmegaConf.set_struct(cfg, not adding)
        merged = OmegaConf.merge(cfg, OmegaConf.from_dotlist([override.lstrip("+")]))
    except OmegaConfBaseException as error:
        raise ConfigError(f"Override '{override}': {error}") from None
    assert isinstance(merged, DictConfig)
    OmegaConf.set_struct(merged, True)
    return merged


def build_module(cfg: DictConfig, state_dict: Mapping[str, Any], ckpt: Path) -> pl.LightningModule:
    """The experiment's LightningModule with the checkpoint's weights, in eval mode."""
    module = _instantiate(cfg.model, "model")
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{ckpt}: the weights do not fit the model its config builds: {error}"
        ) from None
    return module.eval()


def _instantiate(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """`instantiate(node)`; a data or file error of the constructor propagates as itself, any
    other failure (an argument the class does not take) is a ConfigError."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, DATA_ERRORS):
            raise error.__cause__ from None
        raise ConfigError(f"Cannot build the checkpoint's {what}: {error}") from None


# ----------------------------------------------------------------------------- data


def benchmark_loader(
    cfg: DictConfig, benchmark: Benchmark, limit: int | None
) -> tuple[DataLoader, int]:
    """(loader, number of samples) of the benchmark's split as the experiment's DataModule
    serves a test split (the benchmark's `subset` of it when it has one, then the first
    `limit` samples only, when given); ValueError when nothing is selected."""
    spec: dict[str, Any] = {"dataset": benchmark.dataset, "split": benchmark.split}
    if benchmark.image_masks:
        spec["image_masks"] = True
    datamodule = _instantiate(cfg.data, "data", train=[], val={}, test={benchmark.id: spec})
    datamodule.setup("test")
    loader = datamodule.test_dataloader()[0]
    size = len(loader.dataset)
    if size == 0:
        raise ValueError(
            f"benchmark {benchmark.id} selects no samples: split '{benchmark.split}' of "
            f"{benchmark.dataset} under {cfg.data_root} is empty"
        )
    positions = list(range(size))
    if benchmark.subset is not None:
        models = BodyModels(cfg.body_model.root, cfg.body_model.name)
        positions = benchmark.subset(loader.dataset, models)
        if not positions:
            raise ValueError(
                f"benchmark {benchmark.id}: its subset of '{benchmark.split}' is empty"
            )
    elif limit is None or limit >= size:
        return loader, size
    positions = positions[:limit] if limit is not None else positions
    subset = DataLoader(
        Subset(loader.dataset, positions),
        sampler=EvalSampler(len(positions)),
        batch_size=loader.batch_size,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
    )
    return subset, len(positions)


# ----------------------------------------------------------------------------- scoring


def score(
    module: pl.LightningModule,
    loader: DataLoader,
    benchmark: Benchmark,
    models: BodyModels,
    device: torch.device,
    fitter: Callable[[Estimate, dict], Estimate] | None = None,
) -> tuple[dict[str, float | None], dict[str, Any], int]:
    """(the model's metrics, the baseline's {name, metrics[, note]}, the number of samples
    scored by all processes together) over every batch; `fitter` turns each batch's estimate
    into the fitted one for benchmarks with `fit` (experiments/fitting.py)."""
    model_metrics = [m.to(device) for m in benchmark.metrics()]
    baseline, why_not = usable_baseline(module, benchmark)
    baseline_metrics = [m.to(device) for m in benchmark.metrics()]
    scored = torch.zeros((), dtype=torch.int64, device=device)
    for index, batch in enumerate(tqdm(loader, desc=f"eval {benchmark.id}", disable=None)):
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        scored += len(batch["image"])
        with torch.inference_mode():
            estimate = estimate_from_prediction(module.predict_step(batch, index))
        missing = estimate.lacks(benchmark.needs)
        if missing:
            raise ValueError(
                f"benchmark {benchmark.id} needs {', '.join(missing)}, which "
                f"{type(module).__name__}.predict_step does not give for this checkpoint"
            )
        if fitter is not None:  # SMPL fitting needs gradients: outside inference mode
            estimate = fitter(estimate, batch)
        with torch.inference_mode():
            score_batch(benchmark, model_metrics, estimate, batch, models)
            if baseline is not None:
                constant = baseline_estimate(baseline, len(batch["image"]))
                score_batch(benchmark, baseline_metrics, constant, batch, models, partial=True)
    if baseline is None:
        baseline_entry = {"name": "none", "metrics": {}, "note": why_not}
    else:
        with warnings.catch_warnings():  # a partial baseline leaves some metrics empty: null
            warnings.filterwarnings("ignore", message=r".*called before the ``update`` method")
            baseline_values = results_of(baseline_metrics)
        baseline_entry = {"name": baseline.name, "metrics": _finite(baseline_values)}
    if dist.is_initialized():
        dist.all_reduce(scored)
    return _finite(results_of(model_metrics)), baseline_entry, int(scored)


def baseline_estimate(baseline: Any, batch_size: int) -> Estimate:
    """The `Estimate` of a module's baseline for a batch (`baseline.outputs(batch_size)`)."""
    outputs = dict(baseline.outputs(batch_size))
    pose, betas = outputs.pop("pose", None), outputs.pop("betas", None)
    return Estimate(pose=pose, betas=betas, extras=outputs)


def usable_baseline(module: pl.LightningModule, benchmark: Benchmark) -> tuple[Any, str]:
    """The module's fitted baseline (`training_mean_body`, `constant_occupancy`: anything with
    `name`, `fitted` and `outputs(batch_size)`) when it gives some of what the benchmark
    needs (the metrics of what it lacks stay null), else None and why not."""
    baseline = getattr(module, "baseline", None)
    if baseline is None or not hasattr(baseline, "outputs"):
        return None, "the checkpoint holds no baseline"
    if not baseline.fitted:
        return None, f"the checkpoint's {baseline.name} baseline was never fitted"
    example = baseline_estimate(baseline, 1)
    missing = example.lacks(benchmark.needs)
    if len(missing) == len(benchmark.needs):
        return None, f"the {baseline.name} baseline predicts no {', '.join(missing)}"
    return baseline, ""


def _finite(values: Mapping[str, float]) -> dict[str, float | None]:
    """Undefined (NaN) metric values as None, so results files are strict JSON."""
    return {key: value if math.isfinite(value) else None for key, value in values.items()}


# ----------------------------------------------------------------------------- results


def data_tag(data_root: Path) -> str:
    """`synthetic-<hash of SYNTHETIC.json>` or `real-<hash of the resolved data root>`."""
    info = Path(data_root) / SYNTHETIC_FILE
    if info.is_file():
        return f"synthetic-{hashlib.sha256(info.read_bytes()).hexdigest()[:SHORT_HASH]}"
    resolved = str(Path(data_root).resolve()).encode()
    return f"real-{hashlib.sha256(resolved).hexdigest()[:SHORT_HASH]}"


def results_dir(out_root: str | Path, experiment: str, checkpoint_sha256: str, tag: str) -> Path:
    """`<out_root>/<exp>/<checkpoint sha256[:12]>/<data tag>/`: a checkpoint's outputs on one
    data root (results files, and the figure commands' folders)."""
    return Path(out_root) / experiment / checkpoint_sha256[:SHORT_HASH] / tag


def results_path(out_root: str | Path, results: Mapping[str, Any]) -> Path:
    """`<out_root>/<exp>/<checkpoint sha256[:12]>/<data tag>/<benchmark>.json`."""
    folder = results_dir(
        out_root, str(results["experiment"]), str(results["checkpoint_sha256"]),
        str(results["data_tag"]),
    )  # fmt: skip
    return folder / f"{results['benchmark']}.json"


def write_json_atomic(path: Path, content: Mapping[str, Any]) -> None:
    """Write `content` as JSON to `path` through a temporary file in the same folder."""
    text = json.dumps(content, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda file: file.write(text.encode()))


def metrics_table(results: Mapping[str, Any]) -> str:
    """The model's and the baseline's metrics side by side, one line per metric."""
    baseline = results["baseline"]
    header = ("metric", "model", baseline["name"])
    rows = [
        (key, _number(value), _number(baseline["metrics"].get(key)))
        for key, value in results["metrics"].items()
    ]
    width = max(len(row[0]) for row in [header, *rows])
    lines = [f"{header[0]:<{width}}  {header[1]:>10}  {header[2]:>18}"]
    lines += [f"{key:<{width}}  {model:>10}  {base:>18}" for key, model, base in rows]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
