"""`occlusion-analysis` and `attention-maps`: the PARE paper's figures from trained checkpoints.

    python -m experiments occlusion-analysis --ckpt PATH [--ckpt PATH ...] --benchmark ID
        [--patch 40 --stride 8 --limit N --max-batch M --device D] [KEY=VALUE ...]
    python -m experiments attention-maps --ckpt PATH --benchmark ID [--limit 8]
    python -m experiments predict --ckpt PATH --benchmark ID [--limit 8]

Each checkpoint is loaded as `eval` loads it (`experiments.evaluate.load_for_evaluation`: the
experiment from the checkpoint, paths from the command line and environment) and its outputs go
beside its results files, `<out-root>/<exp>/<checkpoint sha256[:12]>/<data tag>/`, in
`occlusion_<benchmark>/` (`experiments.occlusion.write_outputs` lists the files) or
`attention_<benchmark>/` (`attention_<i>.png`, Figure 7) or `predict_<benchmark>/`
(`prediction_<i>.png`, one `experiments.panels.prediction_row` per crop: the crop, the mesh
overlaid, the side view and, for PARE, the attention summary; for BodyNet the SMPL body fitted
to the prediction in the mesh cells, then the isosurface coloured by confidence, its side view
and, for the part network, the parts; `grid.png` stacks them). The
occlusion command also draws Figure 6, the per-joint bar chart of every checkpoint given, as
`<out-root>/occlusion_<benchmark>_per_joint.png` (`--bar-chart` to choose the file); bars are
labelled `<exp> <sha256[:8]>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from experiments.benchmarks import get_benchmark
from experiments.evaluate import data_tag, file_sha256, load_for_evaluation, results_dir
from experiments.figures import attention_figures
from experiments.occlusion import (
    OcclusionModule,
    bar_chart,
    load_per_joint,
    run_occlusion_analysis,
)
from experiments.panels import prediction_rows, stack_rows


def _run_folder(out_root: str | Path, experiment: str, sha256: str, data_root: str) -> Path:
    return results_dir(out_root, experiment, sha256, data_tag(Path(data_root)))


def occlusion_analysis(
    ckpts: Sequence[str | Path],
    benchmark_id: str,
    overrides: Sequence[str] = (),
    data_root: str | Path | None = None,
    out_root: str | Path = "results",
    patch: int = 40,
    stride: int = 8,
    limit: int | None = None,
    max_batch: int | None = None,
    device: str | None = None,
    bar_chart_path: str | Path | None = None,
) -> tuple[list[Path], Path]:
    """Run the analysis for each checkpoint; return (their occlusion.json paths, bar chart)."""
    benchmark = get_benchmark(benchmark_id)
    outputs, per_model = [], {}
    for ckpt in map(Path, ckpts):
        loaded = load_for_evaluation(ckpt, benchmark, overrides, data_root, limit, device)
        sha256 = file_sha256(ckpt)  # hashed once: checkpoints are large
        folder = _run_folder(out_root, loaded.cfg.exp_name, sha256, loaded.cfg.data_root)
        json_path = run_occlusion_analysis(
            cast(OcclusionModule, loaded.module),
            loaded.loader.dataset,
            folder / f"occlusion_{benchmark.id}",
            patch=patch,
            stride=stride,
            max_batch=max_batch,
        )
        outputs.append(json_path)
        per_model[f"{loaded.cfg.exp_name} {sha256[:8]}"] = load_per_joint(json_path)
    chart = Path(bar_chart_path or Path(out_root) / f"occlusion_{benchmark.id}_per_joint.png")
    return outputs, bar_chart(per_model, chart)


def attention_maps(
    ckpt: str | Path,
    benchmark_id: str,
    overrides: Sequence[str] = (),
    data_root: str | Path | None = None,
    out_root: str | Path = "results",
    limit: int = 8,
    device: str | None = None,
) -> list[Path]:
    """Write Figure 7 (attention per joint over the crop) for the first `limit` crops."""
    ckpt = Path(ckpt)
    benchmark = get_benchmark(benchmark_id)
    loaded = load_for_evaluation(ckpt, benchmark, overrides, data_root, limit, device)
    sha256 = file_sha256(ckpt)
    folder = _run_folder(out_root, loaded.cfg.exp_name, sha256, loaded.cfg.data_root)
    return attention_figures(
        loaded.module, loaded.loader.dataset, folder / f"attention_{benchmark.id}", limit
    )


def predict(
    ckpt: str | Path,
    benchmark_id: str,
    overrides: Sequence[str] = (),
    data_root: str | Path | None = None,
    out_root: str | Path = "results",
    limit: int = 8,
    device: str | None = None,
) -> list[Path]:
    """Write overlay PNGs of the predictions on `limit` crops of the benchmark, evenly spaced
    over its split (consecutive crops are frames of one sequence: spacing shows more people)."""
    from body import BodyModel
    from geometry.drawing import save_png

    ckpt = Path(ckpt)
    benchmark = get_benchmark(benchmark_id)
    loaded = load_for_evaluation(ckpt, benchmark, overrides, data_root, None, device)
    cfg = loaded.cfg
    faces = BodyModel(cfg.body_model.root, cfg.body_model.name, "neutral").faces.to(torch.int64)
    folder = _run_folder(out_root, cfg.exp_name, file_sha256(ckpt), cfg.data_root)
    folder = folder / f"predict_{benchmark.id}"
    dataset, loader = loaded.loader.dataset, loaded.loader
    indices = spread(len(dataset), limit)  # type: ignore[arg-type]
    rows: list[np.ndarray] = []
    step = loader.batch_size or 1
    fit = body_fitter(cfg)
    for start in range(0, len(indices), step):
        batch = loader.collate_fn([dataset[i] for i in indices[start : start + step]])
        batch = {k: v.to(loaded.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        rows += prediction_rows(loaded.module, batch, faces, fit=fit)
    paths = [folder / f"prediction_{index:03d}.png" for index in range(len(rows))]
    for path, row in zip(paths, rows, strict=True):
        save_png(path, row)
    if rows:
        save_png(folder / "grid.png", stack_rows(rows))
    return paths


def body_fitter(cfg: Any) -> Any:
    """`prediction_rows`' `fit`: the vertices (B, V, 3) of the neutral body fitted to a
    volumetric prediction (BodyNet section 3.4, `experiments.fitting.fit_estimate`) or, for the
    betas regressor, its betas posed on its 3D joints (`fit_estimate_joints`); None for a
    prediction with neither."""
    from datamodules.base import BodyModels
    from experiments.benchmarks import estimate_from_prediction
    from experiments.fitting import fit_estimate, fit_estimate_joints

    model = BodyModels(cfg.body_model.root, cfg.body_model.name).get(0, torch.float32)

    def fit(prediction: Any, batch: dict) -> torch.Tensor | None:
        if "occupancy" in prediction.extras:
            fitting = fit_estimate
        elif prediction.betas is not None and prediction.keypoints3d is not None:
            fitting = fit_estimate_joints
        else:
            return None
        estimate = estimate_from_prediction(prediction)
        rows = list(range(len(batch["image"])))
        return fitting(model.to(batch["image"].device), estimate, batch, rows).vertices

    return fit


def spread(size: int, count: int) -> list[int]:
    """`count` indices evenly spaced over range(size), first and last included (all if fewer)."""
    if count >= size:
        return list(range(size))
    if count == 1:
        return [0]
    return [round(i * (size - 1) / (count - 1)) for i in range(count)]
