"""SMPL fitting of BodyNet's predictions (paper sections 3.4 and 4.2) for evaluation, and its
command.

    python -m experiments fit --ckpt PATH --benchmark ID [--data-root DIR] [--limit N]
        [--out-root results] [--steps N] [--device cpu|cuda] [KEY=VALUE ...]

A benchmark with `fit` scores the neutral body model fitted to each prediction instead of the
raw prediction; `fit` names the objective (`OBJECTIVES`):

- `occupancy` (`surreal_bodynet_fit`, `_s20`, `_s10`; section 3.4): `body.fitting.fit_occupancy`,
  marching cubes of the predicted occupancy at 0.5, confidence-weighted chamfer to the
  isosurface, the predicted `bodynet_16` joints with weight 5, the rigid start from those joints
  and zero shape, Adam in place of the paper's dogleg;
- `inputs` (`surreal_smplifypp`, ...; SMPLify++ of section 4.2 and appendix D):
  `body.fitting.fit_inputs` to the network's predicted silhouette (segmentation argmax not
  background, at the heatmap resolution), 2D joints (heatmap argmax) and 3D joints;
- `joints` (`surreal_betas_fit`, ...; the shape-parameter regression of section 4.2):
  `body.fitting.fit_joints`, the pose that puts the body with the *predicted* betas on the
  predicted 3D joints.

The fit is the expensive step (about 9 s per sample at 128^3 on two CPU cores for
`occupancy`), so its results are cached per checkpoint, data root, objective and split:

    <out-root>/<exp>/<checkpoint sha256[:12]>/<data tag>/fits/<objective>_<dataset>_<split>.npz

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from body.fitting import FitResult, fit_inputs, fit_joints, fit_occupancy
from datamodules.crops import crop_key
from experiments.benchmarks import (
    BENCHMARKS,
    BODYNET_JOINTS,
    Benchmark,
    Estimate,
    get_benchmark,
)
from experiments.checkpointing import atomic_write
from lightning_modules.bodynet.targets import decode_heatmaps2d

log = logging.getLogger(__name__)

FIT_STEPS = 400  # body.fitting.fit_body's default: 0.5 voxel on the 128^3 mannequin test


def sample_key(meta: dict[str, Any]) -> str:
    """The cache key of one crop sample: `<dataset>/<split>/<crop_key>`."""
    return f"{meta['dataset']}/{meta['split']}/{crop_key(meta)}"


def cache_path(results_dir: Path, benchmark: Benchmark) -> Path:
    """Where the fits of a benchmark's objective and split go, beside the checkpoint's results
    files."""
    name = f"{benchmark.fit}_{benchmark.dataset}_{benchmark.split}.npz"
    return Path(results_dir) / "fits" / name


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

    def __init__(self, models: Any, cache: FitCache, objective: str = "occupancy") -> None:
        if objective not in OBJECTIVES:
            known = sorted(OBJECTIVES)
            raise ValueError(f"unknown fitting objective {objective!r}; known: {known}")
        self.model = models.get(0, torch.float32)  # the neutral body, as BodyNet fits
        self.cache = cache
        self.objective = objective
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
        fitting = OBJECTIVES[self.objective]
        result = fitting(self.model, estimate, batch, todo, self.cache.steps)
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
    index = _rows(batch, rows)
    return fit_occupancy(
        model,
        estimate.extras["occupancy"][index].float(),
        _joints(estimate, index),
        BODYNET_JOINTS,
        batch["K"][index].float(),
        estimate.extras["root_depth"][index].float(),
        int(batch["image"].shape[-1]),
        steps=steps,
    )


def fit_estimate_inputs(
    model: Any, estimate: Estimate, batch: dict, rows: list[int], steps: int = FIT_STEPS
) -> FitResult:
    """SMPLify++ (`body.fitting.fit_inputs`) of the crops `rows`: the predicted silhouette
    (`extras.segm` > 0), 2D joints (`extras.heatmaps2d` argmax) and 3D joints."""
    index = _rows(batch, rows)
    crop_size = int(batch["image"].shape[-1])
    heatmaps = estimate.extras["heatmaps2d"][index].float()
    return fit_inputs(
        model,
        estimate.extras["segm"][index] > 0,
        _joints(estimate, index),
        decode_heatmaps2d(heatmaps, crop_size),
        BODYNET_JOINTS,
        batch["K"][index].float(),
        estimate.extras["root_depth"][index].float(),
        crop_size,
        steps=steps,
    )


def fit_estimate_joints(
    model: Any, estimate: Estimate, batch: dict, rows: list[int], steps: int = FIT_STEPS
) -> FitResult:
    """`body.fitting.fit_joints` of the crops `rows`: the predicted betas, posed on the
    predicted 3D joints."""
    assert estimate.betas is not None
    index = _rows(batch, rows)
    betas = estimate.betas[index].float()
    return fit_joints(model, _joints(estimate, index), BODYNET_JOINTS, betas, steps=steps)


def _rows(batch: dict, rows: list[int]) -> Tensor:
    return torch.tensor(rows, device=batch["image"].device)


def _joints(estimate: Estimate, index: Tensor) -> Tensor:
    assert estimate.keypoints3d is not None
    return estimate.keypoints3d[index][:, BODYNET_JOINTS].float()


Objective = Callable[[Any, Estimate, dict, list[int], int], FitResult]
OBJECTIVES: dict[str, Objective] = {
    "occupancy": fit_estimate,
    "inputs": fit_estimate_inputs,
    "joints": fit_estimate_joints,
}


def fitter_for(results_dir: Path, benchmark: Benchmark, models: Any, steps: int) -> Fitter:
    """The fitter of a benchmark's objective and split with the checkpoint's cached fits."""
    assert benchmark.fit is not None
    cache = FitCache.load(cache_path(results_dir, benchmark), steps)
    return Fitter(models, cache, benchmark.fit)


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
