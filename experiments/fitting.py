"""SMPL fitting of BodyNet's predictions (paper section 3.4) for evaluation, and its command.

    python -m experiments fit --ckpt PATH --benchmark ID [--data-root DIR] [--limit N]
        [--out-root results] [--steps N] [--device cpu|cuda] [KEY=VALUE ...]

A benchmark with `fit` (`surreal_bodynet_fit`, `_s20`, `_s10`) scores the neutral body model
fitted to each prediction (`body.fitting.fit_occupancy`: marching cubes of the predicted
occupancy at 0.5, confidence-weighted chamfer to the isosurface, the predicted `bodynet_16`
joints with weight 5, the rigid start from those joints and zero shape, Adam in place of the
paper's dogleg) instead of the raw prediction. The fit is the expensive step (about 9 s per
sample at 128^3 on two CPU cores), so its results are cached per checkpoint, data root and
split:

    <out-root>/<exp>/<checkpoint sha256[:12]>/<data tag>/fits/<dataset>_<split>.npz

holding `keys` (`<dataset>/<split>/<sample_id>#<person>`), `pose` (N, 72), `betas` (N, 10),
`transl` (N, 3), `energy` (N,) and `steps`. `fit` fills that file for a benchmark's samples
(reusing what it holds: it is `eval` of the benchmark, so it also writes the results file);
`eval` reads it and fits only the samples it lacks, adding them, so
the full set and its s20 / s10 subsets share one fit per sample and `tables` needs only
`eval`. A file fitted with another step count is not reused (and is replaced). With several
evaluation processes each fits its own share and the file is not written.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from body.fitting import FitResult, fit_occupancy
from datamodules.crops import crop_key
from experiments.benchmarks import (
    BENCHMARKS,
    BODYNET_JOINTS,
    Benchmark,
    Estimate,
    get_benchmark,
)
from experiments.checkpointing import atomic_write

log = logging.getLogger(__name__)

FIT_STEPS = 400  # body.fitting.fit_body's default: 0.5 voxel on the 128^3 mannequin test


def sample_key(meta: dict[str, Any]) -> str:
    """The cache key of one crop sample: `<dataset>/<split>/<crop_key>`."""
    return f"{meta['dataset']}/{meta['split']}/{crop_key(meta)}"


def cache_path(results_dir: Path, benchmark: Benchmark) -> Path:
    """Where the fits of a benchmark's split go, beside the checkpoint's results files."""
    return Path(results_dir) / "fits" / f"{benchmark.dataset}_{benchmark.split}.npz"


@dataclass
class FitCache:
    """Fitted (pose, betas, transl, energy) by sample key, loaded from and saved to `path`."""

    path: Path
    steps: int
    entries: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    added: int = 0

    @classmethod
    def load(cls, path: Path, steps: int) -> FitCache:
        """The cache at `path` (empty when absent or fitted with another step count); a file
        that does not read as one is a ValueError naming it."""
        cache = cls(Path(path), steps)
        if not cache.path.is_file():
            return cache
        try:
            with np.load(cache.path, allow_pickle=False) as stored:
                if int(stored["steps"]) != steps:
                    log.info("fits: %s was fitted with %d steps, not %d: refitting",
                             cache.path, int(stored["steps"]), steps)  # fmt: skip
                    return cache
                rows = zip(stored["keys"].tolist(), stored["pose"], stored["betas"],
                           stored["transl"], stored["energy"], strict=True)  # fmt: skip
                cache.entries = {key: tuple(values) for key, *values in rows}
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"{cache.path} is not a fits file ({error}); delete it") from None
        return cache

    def save(self) -> None:
        """Write every entry atomically (nothing to do when nothing was added)."""
        if not self.added:
            return
        keys = sorted(self.entries)
        columns = [np.stack([self.entries[k][c] for k in keys]) for c in range(4)]
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys), pose=columns[0], betas=columns[1],
                 transl=columns[2], energy=columns[3], steps=np.array(self.steps))  # fmt: skip
        atomic_write(self.path, lambda file: file.write(buffer.getvalue()))


class Fitter:
    """Turns a batch's BodyNet estimate into the fitted one, through the cache (docstring)."""

    def __init__(self, models: Any, cache: FitCache) -> None:
        self.model = models.get(0, torch.float32)  # the neutral body, as BodyNet fits
        self.cache = cache
        self.fitted = self.reused = 0
        self.seconds = 0.0

    def __call__(self, estimate: Estimate, batch: dict) -> Estimate:
        keys = [sample_key(meta) for meta in batch["meta"]]
        todo = [i for i, key in enumerate(keys) if key not in self.cache.entries]
        if todo:
            self._fit(estimate, batch, todo, keys)
        self.reused += len(keys) - len(todo)
        device = batch["image"].device
        pose, betas = (
            torch.as_tensor(np.stack([self.cache.entries[key][c] for key in keys]), device=device)
            for c in (0, 1)
        )
        return Estimate(pose.float(), betas.float(), estimate.extras, estimate.keypoints3d)

    def _fit(self, estimate: Estimate, batch: dict, todo: list[int], keys: list[str]) -> None:
        start = time.perf_counter()
        self.model.to(batch["image"].device)
        result = fit_estimate(self.model, estimate, batch, todo, self.cache.steps)
        assert result.final_energy is not None
        energy = result.final_energy
        for j, i in enumerate(todo):
            values = (result.pose[j], result.betas[j], result.transl[j], energy[j])
            self.cache.entries[keys[i]] = tuple(v.detach().cpu().numpy() for v in values)
        self.cache.added += len(todo)
        self.fitted += len(todo)
        self.seconds += time.perf_counter() - start


def fit_estimate(
    model: Any, estimate: Estimate, batch: dict, rows: list[int], steps: int = FIT_STEPS
) -> FitResult:
    """`body.fitting.fit_occupancy` of the crops `rows` of a batch's BodyNet estimate (its
    occupancy, `bodynet_16` joints and root depth, the batch's crop intrinsics)."""
    assert estimate.keypoints3d is not None
    index = torch.tensor(rows, device=batch["image"].device)
    return fit_occupancy(
        model,
        estimate.extras["occupancy"][index].float(),
        estimate.keypoints3d[index][:, BODYNET_JOINTS].float(),
        BODYNET_JOINTS,
        batch["K"][index].float(),
        estimate.extras["root_depth"][index].float(),
        int(batch["image"].shape[-1]),
        steps=steps,
    )


def fitter_for(results_dir: Path, benchmark: Benchmark, models: Any, steps: int) -> Fitter:
    """The fitter of a benchmark's split with the checkpoint's cached fits."""
    return Fitter(models, FitCache.load(cache_path(results_dir, benchmark), steps))


def fit(
    ckpt: str | Path,
    benchmark_id: str,
    overrides: list[str] | tuple[str, ...] = (),
    data_root: str | Path | None = None,
    limit: int | None = None,
    out_root: str | Path = "results",
    steps: int = FIT_STEPS,
    device: str | None = None,
) -> dict[str, Any]:
    """Fit every sample of a `fit` benchmark (module docstring): `eval` of it, which fills the
    cache (and writes its results file); returns the results' `fit` entry (steps, fitted,
    reused, seconds, cache)."""
    from experiments.evaluate import evaluate

    if not get_benchmark(benchmark_id).fit:
        fitting = ", ".join(sorted(b for b, spec in BENCHMARKS.items() if spec.fit))
        raise ValueError(f"benchmark {benchmark_id} scores no fitted body; fit benchmarks: "
                         f"{fitting}")  # fmt: skip
    _, results = evaluate(ckpt, benchmark_id, overrides, data_root, limit, out_root, device,
                          fit_steps=steps)  # fmt: skip
    return dict(results["fit"])
